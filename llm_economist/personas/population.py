"""Census-calibrated worker populations sampled from the shipped OEWS, CPS and Adult tables.

One agent is one wage earner. ``sample_population(n, seed)`` draws, all vectorised:

1. state x detailed occupation with probability proportional to OEWS employment;
2. the hourly wage from that cell's OEWS percentiles (see ``cell_log_wage``);
3. age band, sex and education from UCI Adult given the SOC major group, raked so the
   age-band margin equals the CPS wage earners' (see ``rake``), then single-year age from
   the CPS age distribution within the band;
4. marital status, filing status, household size, children (and how many are under 17) and
   whether the spouse works from the CPS tax-unit table given state and age band;
5. two-earner households: married agents whose spouse works are paired woman with man within
   their state, by rank of a key of age, wage and noise weighted so spouses' ages and wages
   correlate as in CPS couples (`SPOUSE_CORRELATIONS`).

``income_model="gb2"`` keeps all of that and replaces the wages with draws from the GB2 fit to
ACS 2023 annual income divided by 2080 hours, assigned by the rank of the census wage (a rank
copula), so the occupation and state gradients survive; these wages keep the GB2 law exactly,
with no minimum-wage floor. Provenance of every table: ``data/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

__all__ = [
    "Population",
    "sample_population",
    "gb2_sample",
    "gb2_mean",
    "GB2Params",
    "GB2_ACS_2023",
    "PersonaTables",
    "load_tables",
    "INCOME_MODELS",
    "MIN_HOURLY_WAGE",
    "EDUCATION_LEVELS",
    "category_levels",
    "state_name",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
REBUILD_COMMAND = "python scripts/rebuild_persona_tables.py"

INCOME_MODELS = ("census", "gb2")
# Couples in the CPS (taxcalc's cps.csv.gz, married filing jointly, both earning; weighted):
# spouses' ages correlate 0.886 and their log wage earnings 0.114 (`scripts/cps_spouse_moments.py`).
SPOUSE_CORRELATIONS = {"age": 0.886, "log_earnings": 0.114}
# Of the earners married filing jointly, 25.9% have a spouse who earns nothing (the same source).
MARRIED_EARNERS_ALONE = 0.259
# Weights of the standardised log wage and of noise against the standardised age in the key
# spouses are matched on (`spouse_key`), found by grid search to give those correlations (with
# hourly wages standing for earnings) on large samples.
SPOUSE_MATCHING = (0.25, 0.15)
MIN_HOURLY_WAGE = 7.25  # federal minimum wage, $/h
HOURS_PER_YEAR = 2080.0  # 52 weeks x 40 hours, the OEWS annual <-> hourly convention
OEWS_TOP_CODE = 115.0  # $/h; state percentiles at or above it are not published
# Largest log-wage spread per standard deviation beyond p10 / p90 of a cell. The national
# all-occupation p75-p90 segment has 0.77; a cap of 1.0 only binds for a few very wide cells.
MAX_TAIL_SLOPE = 1.0

AGE_BANDS = ("16-24", "25-34", "35-44", "45-54", "55-64", "65+")
SEXES = ("female", "male")
# In order of attainment (the column is an ordered categorical).
EDUCATION_LEVELS = (
    "less than high school", "high school", "some college", "associate degree",
    "bachelor's degree", "master's degree", "professional degree", "doctorate",
)
MARITAL_STATUSES = ("married", "single")
# Schooling in four groups, as hours and tastes for leisure are read by it (the rest: bachelor's or more).
SCHOOLING_GROUPS = ("less_than_high_school", "high_school", "some_college_or_associate", "bachelors_or_more")
_SCHOOLING_OF = {"less than high school": "less_than_high_school", "high school": "high_school",
                 "some college": "some_college_or_associate", "associate degree": "some_college_or_associate"}
FILING_STATUSES = ("single", "married_joint", "married_separate", "head_of_household")
PERCENTILE_COLUMNS = ("p10", "p25", "p50", "p75", "p90")
# Standard-normal scores of the published percentiles: Phi^-1(0.10, 0.25, 0.50, 0.75, 0.90).
PERCENTILE_Z = np.array([-1.2815515655446004, -0.6744897501960817, 0.0,
                         0.6744897501960817, 1.2815515655446004])


# ----------------------------------------------------------------------------- GB2

@dataclass(frozen=True)
class GB2Params:
    """Generalised beta of the second kind, R gamlss parameterisation.

    y = mu * (B / (1 - B)) ** (1 / sigma),  B ~ Beta(nu, tau).
    """

    mu: float
    sigma: float
    nu: float
    tau: float


# Fit to ACS 2023 annual income used by the LLM Economist reference study.
GB2_ACS_2023 = GB2Params(mu=72402.78, sigma=2.07211, nu=0.486519, tau=1.14104)


def gb2_sample(n: int, rng: np.random.Generator, params: GB2Params = GB2_ACS_2023) -> np.ndarray:
    """Draw ``n`` annual incomes from GB2(mu, sigma, nu, tau).

    B / (1 - B) with B ~ Beta(nu, tau) is drawn as G_nu / G_tau with independent unit-scale
    gamma variates, the same beta-prime law without the cancellation in 1 - B near 1.
    """
    n = _check_n(n)
    g_nu = rng.standard_gamma(params.nu, size=n)
    g_tau = rng.standard_gamma(params.tau, size=n)
    return params.mu * (g_nu / g_tau) ** (1.0 / params.sigma)


def gb2_mean(params: GB2Params = GB2_ACS_2023) -> float:
    """E[y] = mu * B(nu + 1/sigma, tau - 1/sigma) / B(nu, tau), finite when tau > 1/sigma."""
    a = 1.0 / params.sigma
    if params.tau <= a:
        return math.inf
    log_beta = lambda p, q: math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q)  # noqa: E731
    return params.mu * math.exp(log_beta(params.nu + a, params.tau - a) - log_beta(params.nu, params.tau))


# ----------------------------------------------------------------------------- tables

TABLE_FILES = {
    "states": "states.csv",
    "soc_major_groups": "soc_major_groups.csv",
    "occupations": "oews_occupations.csv.gz",
    "state_occupation": "oews_state_occupation.csv.gz",
    "national_occupation": "oews_national_occupation.csv.gz",
    "groups": "oews_groups.csv.gz",
    "cps_workers": "cps_workers.csv.gz",
    "cps_worker_ages": "cps_worker_ages.csv",
    "adult_workers": "adult_workers.csv.gz",
    "adult_soc_map": "adult_soc_map.csv",
    "bls_sex_by_group": "bls_sex_by_group.csv",
}

_WAGE_DTYPES = {p: "float64" for p in PERCENTILE_COLUMNS} | {"wage_from_annual": "int8", "topcoded": "int8"}
TABLE_DTYPES = {
    "states": {"fips": "int64", "state": "str", "state_name": "str"},
    "soc_major_groups": {"group_code": "str", "occupation_group": "str"},
    "occupations": {"occupation_code": "str", "occupation": "str", "group_code": "str",
                    "occupation_group": "str"},
    "state_occupation": {"state": "str", "occupation_code": "str", "employment": "int64"} | _WAGE_DTYPES,
    "national_occupation": {"occupation_code": "str", "employment": "int64"} | _WAGE_DTYPES,
    "groups": {"state": "str", "group_code": "str", "employment": "int64"} | _WAGE_DTYPES,
    "cps_workers": {"state": "str", "age_band": "str", "marital_status": "str", "filing_status": "str",
                    "household_size": "int64", "children": "int64", "spouse_works": "int8",
                    "credit_children": "int64", "weight": "float64", "records": "int64"},
    "cps_worker_ages": {"age": "int64", "age_band": "str", "weight": "float64", "records": "int64"},
    "adult_workers": {"adult_occupation": "str", "sex": "str", "education": "str", "age_band": "str",
                      "weight": "float64", "records": "int64"},
    "adult_soc_map": {"group_code": "str", "adult_occupation": "str"},
    "bls_sex_by_group": {"group_code": "str", "bls_group": "str", "bls_group_women_share": "float64"},
}


@dataclass(frozen=True)
class PersonaTables:
    """The shipped source tables, typed; see ``data/README.md`` for each one's derivation."""

    states: pd.DataFrame
    soc_major_groups: pd.DataFrame
    occupations: pd.DataFrame
    state_occupation: pd.DataFrame
    national_occupation: pd.DataFrame
    groups: pd.DataFrame
    cps_workers: pd.DataFrame
    cps_worker_ages: pd.DataFrame
    adult_workers: pd.DataFrame
    adult_soc_map: pd.DataFrame
    bls_sex_by_group: pd.DataFrame


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_tables(data_dir: str | Path | None = None) -> PersonaTables:
    """Read and check the persona tables in ``data_dir`` (default: the shipped ``data/``).

    Raises FileNotFoundError naming a missing file and ValueError naming a corrupt one.
    """
    return _load_tables(str(Path(data_dir if data_dir is not None else DATA_DIR).resolve()))


@lru_cache(maxsize=4)
def _load_tables(data_dir: str) -> PersonaTables:
    root = Path(data_dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"persona data file {manifest_path} is missing; rebuild with `{REBUILD_COMMAND}`")
    try:
        checksums = json.loads(manifest_path.read_text())["tables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"persona data file {manifest_path} is corrupt ({exc}); "
                         f"rebuild with `{REBUILD_COMMAND}`") from exc
    frames = {}
    for key, name in TABLE_FILES.items():
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"persona data file {path} is missing; rebuild with `{REBUILD_COMMAND}`")
        if checksums.get(name) != _sha256(path):
            raise ValueError(f"persona data file {path} is corrupt: its SHA-256 does not match manifest.json; "
                             f"rebuild with `{REBUILD_COMMAND}`")
        dtypes = TABLE_DTYPES[key]
        try:
            df = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={p: [""] for p in dtypes})
        except Exception as exc:  # any parse failure is a corrupt file to the caller
            raise ValueError(f"persona data file {path} is corrupt ({exc}); "
                             f"rebuild with `{REBUILD_COMMAND}`") from exc
        missing = set(dtypes) - set(df.columns)
        if missing or df.empty:
            raise ValueError(f"persona data file {path} is corrupt: missing columns {sorted(missing)} "
                             f"or no rows; rebuild with `{REBUILD_COMMAND}`")
        frames[key] = df
    return PersonaTables(**frames)


# ----------------------------------------------------------------------------- wage model

def cell_log_wage(percentiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots and slopes of the log-wage quantile function for each OEWS cell.

    log w(z) is piecewise linear in the standard-normal score z through the five published
    percentiles (z = PERCENTILE_Z), so each segment is a log-normal piece and the whole map is
    monotone. Below p10 and above p90 it continues with the end segment's slope, capped at
    MAX_TAIL_SLOPE: log-normal tails that a wide p75-p90 gap (e.g. athletes) cannot blow up.
    ``percentiles``: (C, 5) hourly wages. Returns log knots (C, 5) and slopes (C, 6) in log
    dollars per unit z, for z < p10's score, the four inner segments, and z > p90's score.
    """
    log_q = np.log(np.maximum(percentiles, MIN_HOURLY_WAGE))
    log_q = np.maximum.accumulate(log_q, axis=1)  # guards against rounding inversions
    inner = np.diff(log_q, axis=1) / np.diff(PERCENTILE_Z)
    low = np.minimum(inner[:, :1], MAX_TAIL_SLOPE)
    high = np.minimum(inner[:, -1:], MAX_TAIL_SLOPE)
    return log_q, np.concatenate([low, inner, high], axis=1)


def wage_from_score(z: np.ndarray, cell: np.ndarray, log_q: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """Hourly wage for standard-normal scores ``z`` in cells ``cell``, floored at $7.25."""
    seg = np.searchsorted(PERCENTILE_Z, z)  # 0 below p10 ... 5 above p90
    knot = np.maximum(seg - 1, 0)
    log_w = log_q[cell, knot] + (z - PERCENTILE_Z[knot]) * slopes[cell, seg]
    return np.maximum(np.exp(log_w), MIN_HOURLY_WAGE)


def fill_topcoded(state_pct: np.ndarray, national_pct: np.ndarray) -> np.ndarray:
    """Replace top-coded (NaN) state percentiles by the occupation's national ones.

    BLS publishes national percentiles above the $115/h state top code. A filled knot is at
    least $115 and at least the knot below it. Where the national value is also missing the
    knot continues the previous one with the median upper slope of fully published cells.
    """
    pct = state_pct.copy()
    top = np.isnan(pct)
    if not top.any():
        return pct
    pct[top] = national_pct[top]
    full = ~np.isnan(state_pct).any(axis=1)
    _, slopes = cell_log_wage(state_pct[full])
    default_slope = float(np.median(slopes[:, -2]))
    dz = np.diff(PERCENTILE_Z)
    for j in range(pct.shape[1]):
        col = top[:, j]
        if not col.any():
            continue
        prev = pct[:, j - 1] if j > 0 else np.full(len(pct), OEWS_TOP_CODE)
        guess = prev * math.exp(default_slope * dz[j - 1]) if j > 0 else prev
        filled = np.where(np.isnan(pct[:, j]), guess, pct[:, j])
        filled = np.maximum(filled, np.maximum(prev, OEWS_TOP_CODE))
        pct[col, j] = filled[col]
    return pct


# ----------------------------------------------------------------------------- compiled frame

def rake(joint: np.ndarray, margins: list[tuple[np.ndarray, np.ndarray]], iters: int = 500, tol: float = 1e-12) -> np.ndarray:
    """Iterative proportional fitting of a joint table (any shape) to margins.

    Each margin is (the class 0..M-1 of every cell of ``joint``, the M classes' target totals).
    The result's cells in each class sum to its target; the conditional law within each
    intersection of classes is unchanged.
    """
    flat = (joint / joint.sum()).ravel()
    margins = [(cls.ravel(), target) for cls, target in margins]
    for _ in range(iters):
        for cls, target in margins:
            total = np.bincount(cls, weights=flat, minlength=len(target))
            flat = flat * np.where(total > 0, target / np.where(total > 0, total, 1), 0)[cls]
        if max(np.abs(np.bincount(cls, weights=flat, minlength=len(target)) - target).max() for cls, target in margins) < tol:
            break
    return flat.reshape(joint.shape)


def _stacked_cdf(weights: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative weights within each group, offset by the group index.

    Rows are sorted by ``group``; searching ``group + u`` (u uniform on [0, 1)) in the result
    draws a row of that group with probability proportional to its weight.
    """
    totals = np.bincount(group, weights=weights)
    cum = np.cumsum(weights)
    start = np.concatenate([[0.0], np.cumsum(totals)])[group]
    within = (cum - start) / totals[group]
    last = np.r_[group[1:] != group[:-1], True]
    within[last] = 1.0
    return group + within


@dataclass(frozen=True)
class _Frame:
    """Arrays the sampler indexes; built once per data folder."""

    states: tuple[str, ...]
    state_names: dict[str, str]
    occupation_codes: tuple[str, ...]
    occupation_titles: tuple[str, ...]
    group_codes: tuple[str, ...]
    group_titles: tuple[str, ...]
    cell_cdf: np.ndarray  # (C,) cumulative employment share
    cell_state: np.ndarray  # (C,) index into states
    cell_occupation: np.ndarray  # (C,) index into occupation_codes
    occupation_group: np.ndarray  # (O,) index into group_codes
    log_q: np.ndarray  # (C, 5)
    slopes: np.ndarray  # (C, 6) lower tail, four inner segments, upper tail
    demo_cdf: np.ndarray  # (G * K,) stacked over groups; K = bands x sexes x education
    age_cdf: np.ndarray  # stacked over bands
    age_values: np.ndarray
    cps_cdf: np.ndarray  # stacked over state x band
    cps_marital: np.ndarray
    cps_filing: np.ndarray
    cps_household: np.ndarray
    cps_children: np.ndarray
    cps_credit_children: np.ndarray
    cps_spouse_works: np.ndarray


def _index(values: pd.Series, levels, what: str) -> np.ndarray:
    pos = pd.Index(levels).get_indexer(values)
    if (pos < 0).any():
        bad = sorted(set(values[pos < 0].astype(str)))[:5]
        raise ValueError(f"persona table {what} has unknown values {bad}; rebuild with `{REBUILD_COMMAND}`")
    return pos


@lru_cache(maxsize=4)
def _frame(data_dir: str) -> _Frame:
    t = _load_tables(data_dir)
    states = tuple(t.states.state)
    occ = t.occupations
    groups = tuple(t.soc_major_groups.group_code)

    # State x occupation cells with employment weights and wage knots.
    so = t.state_occupation
    cell_state = _index(so.state, states, "oews_state_occupation.state")
    cell_occ = _index(so.occupation_code, occ.occupation_code, "oews_state_occupation.occupation_code")
    nat = t.national_occupation.set_index("occupation_code").reindex(so.occupation_code)
    pct = fill_topcoded(so[list(PERCENTILE_COLUMNS)].to_numpy(float), nat[list(PERCENTILE_COLUMNS)].to_numpy(float))
    log_q, slopes = cell_log_wage(pct)
    emp = so.employment.to_numpy(float)
    cell_cdf = np.cumsum(emp) / emp.sum()
    cell_cdf[-1] = 1.0
    occ_group = _index(occ.group_code, groups, "oews_occupations.group_code")

    # Adult (band, sex, education) given SOC major group, raked to the CPS age-band margin.
    G, B, S, E = len(groups), len(AGE_BANDS), len(SEXES), len(EDUCATION_LEVELS)
    ad = t.adult_workers
    k = (_index(ad.age_band, AGE_BANDS, "adult_workers.age_band") * S
         + _index(ad.sex, SEXES, "adult_workers.sex")) * E + _index(ad.education, EDUCATION_LEVELS,
                                                                   "adult_workers.education")
    by_category = {}
    for cat, sub in ad.assign(_k=k).groupby("adult_occupation"):
        by_category[cat] = np.bincount(sub._k, weights=sub.weight, minlength=B * S * E)
    cond = np.zeros((G, B * S * E))
    for g, code in enumerate(groups):
        cats = t.adult_soc_map.adult_occupation[t.adult_soc_map.group_code == code]
        if cats.empty or not set(cats) <= set(by_category):
            raise ValueError(f"persona table adult_soc_map.csv has no usable Adult category for {code}; "
                             f"rebuild with `{REBUILD_COMMAND}`")
        cond[g] = sum(by_category[c] for c in cats)
        cond[g] /= cond[g].sum()
    group_share = np.bincount(occ_group[cell_occ], weights=emp, minlength=G) / emp.sum()
    ages = t.cps_worker_ages
    age_band_idx = _index(ages.age_band, AGE_BANDS, "cps_worker_ages.age_band")
    band_share = np.bincount(age_band_idx, weights=ages.weight, minlength=B) / ages.weight.sum()
    # Margins: each group's employment, each band's share of the CPS wage earners, and the women
    # and men of each BLS occupation group, its employment times its share of women.
    bls = t.bls_sex_by_group.set_index("group_code").reindex(list(groups))
    if bls.bls_group_women_share.isna().any() or not bls.bls_group_women_share.between(0, 1).all():
        raise ValueError(f"persona table bls_sex_by_group.csv has no share of women in [0, 1] for some SOC major group; "
                         f"rebuild with `{REBUILD_COMMAND}`")
    bls_group = pd.factorize(bls.bls_group)[0]
    women = np.bincount(bls_group, weights=group_share * bls.bls_group_women_share.to_numpy())
    men = np.bincount(bls_group, weights=group_share) - women
    sex_target = np.stack([women, men], axis=1).ravel()  # (BLS group, sex) in SEXES order
    cell_group, cell_band, cell_sex, _ = np.indices((G, B, S, E)).reshape(4, G, B * S * E)
    joint = rake(group_share[:, None] * cond, [(cell_band, band_share), (cell_group, group_share),
                                                (bls_group[cell_group] * S + cell_sex, sex_target)])
    demo_w = joint.ravel()
    demo_cdf = _stacked_cdf(np.where(demo_w > 0, demo_w, 0.0), np.repeat(np.arange(G), B * S * E))

    order = np.argsort(age_band_idx, kind="stable")
    age_cdf = _stacked_cdf(ages.weight.to_numpy(float)[order], age_band_idx[order])
    age_values = ages.age.to_numpy()[order]

    # CPS household attributes given state x age band; a missing cell borrows the national band.
    cw = t.cps_workers
    key = _index(cw.state, states, "cps_workers.state") * B + _index(cw.age_band, AGE_BANDS, "cps_workers.age_band")
    cw = cw.assign(_key=key)
    present = set(np.unique(key))
    fill = []
    for s in range(len(states)):
        for b in range(B):
            if s * B + b not in present:
                band_rows = cw[cw.age_band == AGE_BANDS[b]]
                fill.append(band_rows.assign(_key=s * B + b))
    if fill:
        cw = pd.concat([cw, *fill], ignore_index=True)
    cw = cw.sort_values("_key", kind="stable").reset_index(drop=True)
    cps_cdf = _stacked_cdf(cw.weight.to_numpy(float), cw._key.to_numpy())

    return _Frame(
        states=states,
        state_names=dict(zip(t.states.state, t.states.state_name)),
        occupation_codes=tuple(occ.occupation_code),
        occupation_titles=tuple(occ.occupation),
        group_codes=groups,
        group_titles=tuple(t.soc_major_groups.occupation_group),
        cell_cdf=cell_cdf,
        cell_state=cell_state,
        cell_occupation=cell_occ,
        occupation_group=occ_group,
        log_q=log_q,
        slopes=slopes,
        demo_cdf=demo_cdf,
        age_cdf=age_cdf,
        age_values=age_values,
        cps_cdf=cps_cdf,
        cps_marital=_index(cw.marital_status, MARITAL_STATUSES, "cps_workers.marital_status"),
        cps_filing=_index(cw.filing_status, FILING_STATUSES, "cps_workers.filing_status"),
        cps_household=cw.household_size.to_numpy(),
        cps_children=cw.children.to_numpy(),
        cps_credit_children=cw.credit_children.to_numpy(),
        cps_spouse_works=cw.spouse_works.to_numpy().astype(bool),
    )


# ----------------------------------------------------------------------------- population

@dataclass(frozen=True)
class Population:
    """A sampled population: one row per agent, index 0..N-1.

    Columns: agent_id, age, age_band, sex, education, occupation_code, occupation,
    occupation_group_code, occupation_group, state, household_id, earners (agents in the
    household, 1 or 2), household_size, marital_status, filing_status, children (under 18),
    credit_children (those of them under 17, whom the child tax credit counts),
    hourly_wage ($/h).
    """

    table: pd.DataFrame

    @property
    def n(self) -> int:
        return len(self.table)

    def wage(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        """Hourly wage of every agent, shape (N,)."""
        return torch.tensor(self.table["hourly_wage"].to_numpy(), dtype=dtype, device=device)

    def subset(self, idx) -> "Population":
        """The agents at positions ``idx`` (ints or a boolean mask), re-indexed 0..M-1.

        ``agent_id`` and ``household_id`` keep their original values, so a partner left out of
        the subset shows as a household with one member present.
        """
        return Population(self.table.iloc[np.asarray(idx)].reset_index(drop=True))


def schooling_groups(education: pd.Series) -> np.ndarray:
    """(N,) each worker's schooling group (`SCHOOLING_GROUPS`) from its education level."""
    return education.astype(str).map(lambda e: _SCHOOLING_OF.get(e, "bachelors_or_more")).to_numpy()


def taste_groups(population: Population) -> dict[str, np.ndarray]:
    """(N,) arrays of each worker's observed groups that tastes for leisure may shift with: its
    schooling group (`SCHOOLING_GROUPS`) and its age band (`AGE_BANDS`)."""
    return {"schooling": schooling_groups(population.table.education), "age_band": population.table.age_band.astype(str).to_numpy()}


def household_sample(population: Population, agents: int, seed: int) -> np.ndarray:
    """Positions of about `agents` workers in whole households, every household (so every worker)
    drawn with the same chance, `agents` / N: households sorted by their mean log wage, one taken
    every N / `agents` from a random start (systematic sampling, a stratified sample along the wage
    distribution). A spouse is never left out, so couples file as in the population."""
    _, member_of = np.unique(population.table["household_id"].to_numpy(), return_inverse=True)
    sizes = np.bincount(member_of)
    mean_log_wage = np.bincount(member_of, weights=np.log(population.table["hourly_wage"].to_numpy())) / sizes
    order = np.argsort(mean_log_wage, kind="stable")
    every = population.n / agents
    picked = order[np.arange(np.random.default_rng(seed).random() * every, len(order), every).astype(np.int64)]
    return np.flatnonzero(np.isin(member_of, picked))


def _check_integer(name: str, value, minimum: int) -> int:
    """`value` as an int >= minimum (bools refused), or ValueError naming the argument."""
    message = f"{name} must be an integer >= {minimum}, got {value!r}"
    if isinstance(value, bool):
        raise ValueError(message)
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(message) from None
    if value < minimum:
        raise ValueError(message)
    return value


def _check_n(n) -> int:
    return _check_integer("n", n, 1)


def _check_seed(seed) -> int:
    return _check_integer("seed", seed, 0)


def _pair_spouses(state: np.ndarray, female: np.ndarray, key: np.ndarray, flagged: np.ndarray, married: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pair married agents woman with man inside each state, closest in `key` rank.

    Each state gets as many couples as half its agents whose CPS tax unit has a working spouse
    (`flagged`): the CPS counts both earners of a couple, one of each sex. Sex is drawn apart
    from the household, so a state may hold fewer flagged women than flagged men (or the
    reverse); its couples then take the flagged of each sex first and married agents of the
    scarcer sex at random after them. Returns (women, men) agent positions.
    """
    cand = np.flatnonzero(married)
    if len(cand) == 0:
        return cand, cand
    s, f = state[cand], female[cand].astype(np.int64)
    cell = s * 2 + f
    first = flagged[cand].astype(np.int64)
    order = np.lexsort((rng.random(len(cand)), -first, cell))  # flagged first within (state, sex)
    counts = np.bincount(cell, minlength=2 * (state.max() + 1))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(cand), np.int64)
    rank[order] = np.arange(len(cand)) - starts[cell[order]]
    wanted = np.bincount(s, weights=first, minlength=state.max() + 1) / 2
    couples = np.minimum(np.round(wanted).astype(np.int64), np.minimum(counts[0::2], counts[1::2]))
    keep = rank < couples[s]
    cand, s, f = cand[keep], s[keep], f[keep]
    order = np.lexsort((cand, key[cand], f, s))
    ordered, fo = cand[order], f[order]
    return ordered[fo == 1], ordered[fo == 0]


def spouse_key(age: np.ndarray, wage: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """What spouses are matched on: age, log wage and noise, standardised and weighted so that
    spouses' ages and log wages correlate as in the CPS (`SPOUSE_MATCHING`)."""
    wage_weight, noise_weight = SPOUSE_MATCHING
    log_wage = np.log(wage)
    return ((age - age.mean()) / max(age.std(), 1e-12) + wage_weight * (log_wage - log_wage.mean()) / max(log_wage.std(), 1e-12)
            + noise_weight * noise)


def sample_population(n: int, seed: int, income_model: str = "census") -> Population:
    """Sample ``n`` census-calibrated worker personas, deterministically for ``seed``.

    income_model: "census" (OEWS wages by state x occupation) or "gb2" (GB2 fit to ACS 2023
    annual income / 2080, assigned by census-wage rank). Census wages are floored at the federal
    minimum, $7.25; GB2 wages are not, so they follow the fitted law exactly (about 22% of its
    draws are below $7.25 x 2080 a year).
    """
    n = _check_n(n)
    seed = _check_seed(seed)
    if income_model not in INCOME_MODELS:
        raise ValueError(f"income_model must be one of {INCOME_MODELS}, got {income_model!r}")
    fr = _frame(str(DATA_DIR.resolve()))
    rng = np.random.default_rng(seed)

    # 1-2. State x occupation by employment, then the wage within the cell.
    cell = np.searchsorted(fr.cell_cdf, rng.random(n), side="right")
    state = fr.cell_state[cell]
    occupation = fr.cell_occupation[cell]
    group = fr.occupation_group[occupation]
    wage = wage_from_score(rng.standard_normal(n), cell, fr.log_q, fr.slopes)

    # 3. Age band, sex, education given the major group; single-year age given the band.
    K = len(AGE_BANDS) * len(SEXES) * len(EDUCATION_LEVELS)
    demo = np.searchsorted(fr.demo_cdf, group + rng.random(n), side="right") - group * K
    band, rest = np.divmod(demo, len(SEXES) * len(EDUCATION_LEVELS))
    sex, education = np.divmod(rest, len(EDUCATION_LEVELS))
    age = fr.age_values[np.searchsorted(fr.age_cdf, band + rng.random(n), side="right")]

    # 4. Household attributes given state x age band.
    row = np.searchsorted(fr.cps_cdf, state * len(AGE_BANDS) + band + rng.random(n), side="right")
    marital = fr.cps_marital[row]
    filing = fr.cps_filing[row]
    household_size = fr.cps_household[row].copy()
    children = fr.cps_children[row].copy()
    credit_children = fr.cps_credit_children[row].copy()

    # 5. Two-earner households; the pair shares the household facts of its lower agent id.
    female = sex == SEXES.index("female")
    key = spouse_key(age.astype(np.float64), wage, rng.standard_normal(n))
    married_joint = filing == FILING_STATUSES.index("married_joint")
    women, men = _pair_spouses(state, female, key, fr.cps_spouse_works[row], married_joint, rng)
    household = np.arange(n)
    first, second = np.minimum(women, men), np.maximum(women, men)
    household[second] = first
    household_size[second] = household_size[first]
    children[second] = children[first]
    credit_children[second] = credit_children[first]
    filing[second] = filing[first]
    household_id = np.unique(household, return_inverse=True)[1]
    earners = np.ones(n, np.int8)
    earners[first] = earners[second] = 2

    if income_model == "gb2":
        annual = np.sort(gb2_sample(n, rng))
        wage_rank = np.empty(n, np.int64)
        wage_rank[np.argsort(wage, kind="stable")] = np.arange(n)
        wage = annual[wage_rank] / HOURS_PER_YEAR

    levels = _category_levels(fr)

    def cat(name: str, codes: np.ndarray, ordered: bool = False) -> pd.Categorical:
        return pd.Categorical.from_codes(codes, categories=list(levels[name]), ordered=ordered)

    table = pd.DataFrame({
        "agent_id": np.arange(n, dtype=np.int64),
        "age": age.astype(np.int16),
        "age_band": cat("age_band", band, ordered=True),
        "sex": cat("sex", sex),
        "education": cat("education", education, ordered=True),
        "occupation_code": cat("occupation_code", occupation),
        "occupation": cat("occupation", occupation),
        "occupation_group_code": cat("occupation_group_code", group),
        "occupation_group": cat("occupation_group", group),
        "state": cat("state", state),
        "household_id": household_id.astype(np.int64),
        "earners": earners,
        "household_size": np.minimum(household_size, np.iinfo(np.int8).max).astype(np.int8),
        "marital_status": cat("marital_status", marital),
        "filing_status": cat("filing_status", filing),
        "children": np.minimum(children, np.iinfo(np.int8).max).astype(np.int8),
        "credit_children": np.minimum(credit_children, np.iinfo(np.int8).max).astype(np.int8),
        "hourly_wage": wage.astype(np.float64),
    })
    return Population(table)


def _category_levels(fr: _Frame) -> dict[str, tuple[str, ...]]:
    return {
        "age_band": AGE_BANDS,
        "sex": SEXES,
        "education": EDUCATION_LEVELS,
        "occupation_code": fr.occupation_codes,
        "occupation": fr.occupation_titles,
        "occupation_group_code": fr.group_codes,
        "occupation_group": fr.group_titles,
        "state": fr.states,
        "marital_status": MARITAL_STATUSES,
        "filing_status": FILING_STATUSES,
    }


def category_levels() -> dict[str, tuple[str, ...]]:
    """Every level of each categorical column of a sampled population's table, in code order: the
    full sets the tables define, whichever of them one sample happens to draw."""
    return _category_levels(_frame(str(DATA_DIR.resolve())))


def state_name(abbreviation: str) -> str:
    """Full name of a state from its USPS abbreviation (the 50 states and DC)."""
    names = _frame(str(DATA_DIR.resolve())).state_names
    if abbreviation not in names:
        raise ValueError(f"state must be a USPS abbreviation of the 50 states or DC, got {abbreviation!r}")
    return names[abbreviation]
