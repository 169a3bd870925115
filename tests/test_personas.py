"""Specification of the census-calibrated persona sampler.

Every statistical check compares the sampled population with the shipped source tables (OEWS,
CPS, UCI Adult), never with an earlier output of the sampler. Sampling tolerances are a few
binomial standard errors; wage checks allow for the percentile interpolation.
"""

from __future__ import annotations

import functools
import math
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import torch

from llm_economist.personas import (
    GB2_ACS_2023,
    MIN_HOURLY_WAGE,
    Population,
    gb2_mean,
    gb2_sample,
    load_tables,
    occupation_phrase,
    persona_text,
    persona_texts,
    sample_population,
)
from llm_economist.personas.population import EDUCATION_LEVELS, MARRIED_EARNERS_ALONE, SPOUSE_CORRELATIONS, category_levels
from llm_economist.personas import population as population_module
from llm_economist.personas.population import PERCENTILE_Z, TABLE_FILES, cell_log_wage, wage_from_score

N = 400_000
SEED = 7


@pytest.fixture(scope="module")
def tables():
    return load_tables()


@pytest.fixture(scope="module")
def pop() -> Population:
    return sample_population(N, SEED)


@pytest.fixture(scope="module")
def people(pop) -> pd.DataFrame:
    return pop.table


def binomial_tol(p, n, k: float = 4.0):
    return k * np.sqrt(np.asarray(p) * (1 - np.asarray(p)) / n) + 1e-4


def shares(series: pd.Series) -> pd.Series:
    return series.value_counts(normalize=True)


def adult_by_group(tables) -> pd.DataFrame:
    """Adult records attached to each SOC major group through the shipped mapping."""
    return tables.adult_workers.merge(tables.adult_soc_map, on="adult_occupation")


# ----------------------------------------------------------------------------- structure

def test_table_has_documented_columns_and_types(pop, people):
    expected = {
        "agent_id": "int64", "age": "int16", "sex": "category", "education": "category",
        "occupation_code": "category", "occupation": "category", "occupation_group": "category",
        "state": "category", "household_id": "int64", "household_size": "int8",
        "marital_status": "category", "children": "int8", "credit_children": "int8", "hourly_wage": "float64",
    }
    for col, dtype in expected.items():
        assert str(people[col].dtype) == dtype, col
    assert pop.n == N
    assert people.index.equals(pd.RangeIndex(N))
    assert (people.agent_id.to_numpy() == np.arange(N)).all()
    assert people.notna().all().all()


def test_categories_use_the_documented_vocabularies(people, tables):
    assert set(people.state.cat.categories) == set(tables.states.state)
    assert len(tables.states) == 51
    assert set(people.sex.cat.categories) == {"female", "male"}
    assert set(people.marital_status.cat.categories) == {"married", "single"}
    assert people.occupation_code.str.fullmatch(r"\d\d-\d\d\d\d").all()
    titles = dict(zip(tables.occupations.occupation_code, tables.occupations.occupation))
    assert (people.occupation.astype(str) == people.occupation_code.astype(str).map(titles)).all()
    groups = dict(zip(tables.occupations.occupation_code, tables.occupations.occupation_group))
    assert (people.occupation_group.astype(str) == people.occupation_code.astype(str).map(groups)).all()


def test_wage_tensor_matches_the_table(pop, people):
    w = pop.wage()
    assert w.dtype == torch.float64 and w.shape == (N,)
    assert np.array_equal(w.numpy(), people.hourly_wage.to_numpy())
    assert pop.wage(dtype=torch.float32, device="cpu").dtype == torch.float32


def test_wages_are_floored_at_the_federal_minimum(people):
    assert people.hourly_wage.min() >= MIN_HOURLY_WAGE
    assert np.isfinite(people.hourly_wage).all()


def test_subset_keeps_rows_and_reindexes(pop):
    sub = pop.subset([5, 2, 9])
    assert sub.n == 3 and sub.table.index.equals(pd.RangeIndex(3))
    assert list(sub.table.agent_id) == [5, 2, 9]


# ----------------------------------------------------------------------------- OEWS

def test_state_shares_match_oews_employment(people, tables):
    so = tables.state_occupation
    truth = so.groupby("state").employment.sum() / so.employment.sum()
    got = shares(people.state.astype(str)).reindex(truth.index, fill_value=0.0)
    assert (np.abs(got - truth) <= binomial_tol(truth, N)).all()
    # The sampling frame covers ~99% of jobs, so shares also match the published state totals.
    totals = tables.groups.query("group_code == '00-0000' and state != 'US'").set_index("state").employment
    published = totals / totals.sum()
    assert (np.abs(got - published.reindex(got.index)) <= binomial_tol(published.reindex(got.index), N) + 0.002).all()


def test_occupation_group_shares_match_oews_employment(people, tables):
    so = tables.state_occupation.merge(tables.occupations, on="occupation_code")
    truth = so.groupby("group_code").employment.sum() / so.employment.sum()
    got = shares(people.occupation_group_code.astype(str)).reindex(truth.index, fill_value=0.0)
    assert (np.abs(got - truth) <= binomial_tol(truth, N)).all()
    national = tables.groups.query("state == 'US' and group_code != '00-0000'").set_index("group_code").employment
    published = national / national.sum()
    assert (np.abs(got - published.reindex(got.index)) <= binomial_tol(published.reindex(got.index), N) + 0.005).all()


def test_quantile_function_passes_through_published_percentiles(tables):
    so = tables.state_occupation
    pct = so[["p10", "p25", "p50", "p75", "p90"]].to_numpy(float)
    full = ~np.isnan(pct).any(axis=1)
    log_q, slopes = cell_log_wage(pct[full])
    cells = np.repeat(np.arange(full.sum()), 5)
    z = np.tile(PERCENTILE_Z, full.sum())
    got = wage_from_score(z, cells, log_q, slopes).reshape(-1, 5)
    assert np.allclose(got, np.maximum(pct[full], MIN_HOURLY_WAGE), rtol=1e-9)
    zz = np.linspace(-5, 5, 201)
    grid = wage_from_score(np.tile(zz, 50), np.repeat(np.arange(50), len(zz)), log_q, slopes).reshape(50, -1)
    assert (np.diff(grid, axis=1) >= 0).all()


def test_median_wage_by_occupation_group_matches_oews(people, tables):
    published = tables.groups.query("state == 'US'").set_index("group_code").p50
    got = people.groupby("occupation_group_code", observed=True).hourly_wage.median()
    rel = got / published.reindex(got.index) - 1
    assert rel.abs().max() < 0.05, rel.sort_values()


def test_national_wage_percentiles_match_oews_all_occupations(people, tables):
    published = tables.groups.query("state == 'US' and group_code == '00-0000'").iloc[0]
    for q, col in [(0.10, "p10"), (0.25, "p25"), (0.50, "p50"), (0.75, "p75"), (0.90, "p90")]:
        assert people.hourly_wage.quantile(q) == pytest.approx(published[col], rel=0.04), col


def test_median_wage_by_state_matches_oews(people, tables):
    published = tables.groups.query("group_code == '00-0000' and state != 'US'").set_index("state").p50
    by_state = people.groupby("state", observed=True).hourly_wage
    got, count = by_state.median(), by_state.size()
    sd_log = np.log(people.hourly_wage).std()
    tol = 0.04 + 4 * 1.2533 * sd_log / np.sqrt(count)  # interpolation bias + 4 SE of a median
    rel = np.log(got / published.reindex(got.index))
    assert (rel.abs() < tol).all(), rel.sort_values()


def test_high_wage_state_pays_more_than_low_wage_state(people, tables):
    published = tables.groups.query("group_code == '00-0000' and state != 'US'").set_index("state").p50
    high, low = published.idxmax(), published.idxmin()
    median = people.groupby("state", observed=True).hourly_wage.median()
    assert median[high] > 1.25 * median[low]
    assert median.rank().corr(published.reindex(median.index).rank()) > 0.9  # Spearman


def test_occupation_explains_most_log_wage_variance(people, tables):
    log_w = np.log(people.hourly_wage)
    between = log_w.groupby(people.occupation_code, observed=True).transform("mean").var() / log_w.var()
    # The same share implied by the OEWS cells: spread of occupation medians against the
    # within-cell spread (p10-p90 of a normal is 2.563 sd) plus the spread across states.
    so = tables.state_occupation.dropna()
    w = so.employment.to_numpy(float)
    log_med = np.log(so.p50.to_numpy())
    occ_mean = (pd.Series(log_med * w).groupby(so.occupation_code.values).sum()
                / pd.Series(w).groupby(so.occupation_code.values).sum()).reindex(so.occupation_code).to_numpy()
    b = np.average((occ_mean - np.average(log_med, weights=w)) ** 2, weights=w)
    within = np.average(((np.log(so.p90) - np.log(so.p10)) / 2.5631) ** 2, weights=w)
    across_states = np.average((log_med - occ_mean) ** 2, weights=w)
    expected = b / (b + within + across_states)
    assert between > 0.5
    assert between == pytest.approx(expected, abs=0.05)


# ----------------------------------------------------------------------------- CPS

def test_age_band_shares_match_cps_wage_earners(people, tables):
    ages = tables.cps_worker_ages
    truth = ages.groupby("age_band").weight.sum() / ages.weight.sum()
    got = shares(people.age_band.astype(str)).reindex(truth.index, fill_value=0.0)
    assert (np.abs(got - truth) <= binomial_tol(truth, N)).all()
    edges = {"16-24": (16, 24), "25-34": (25, 34), "35-44": (35, 44), "45-54": (45, 54),
             "55-64": (55, 64), "65+": (65, 200)}
    lo = people.age_band.astype(str).map(lambda b: edges[b][0])
    hi = people.age_band.astype(str).map(lambda b: edges[b][1])
    assert ((people.age >= lo) & (people.age <= hi)).all()


def test_married_share_matches_cps_given_state_and_age_band(people, tables):
    cps = tables.cps_workers
    cell = cps.groupby(["state", "age_band"]).weight.sum()
    married = cps[cps.marital_status == "married"].groupby(["state", "age_band"]).weight.sum()
    p_married = (married / cell).fillna(0.0)
    mix = people.groupby(["age_band", "state"], observed=True).size()
    for band, sub in mix.groupby(level=0):
        weights = sub.droplevel(0)
        expected = float((weights * p_married.xs(band, level="age_band").reindex(weights.index)).sum() / weights.sum())
        got = float((people.marital_status[people.age_band == band] == "married").mean())
        assert abs(got - expected) <= binomial_tol(expected, weights.sum()), band


@pytest.mark.parametrize("column", ["children", "credit_children"])
def test_children_match_cps_given_state_and_age_band(people, tables, column):
    cps = tables.cps_workers
    mean_kids = (cps.assign(k=cps[column] * cps.weight).groupby(["state", "age_band"]).k.sum()
                 / cps.groupby(["state", "age_band"]).weight.sum())
    mix = people.groupby(["state", "age_band"], observed=True).size()
    expected = float((mix * mean_kids.reindex(mix.index)).sum() / mix.sum())
    assert people[column].mean() == pytest.approx(expected, rel=0.03)


def test_children_under_17_are_fewer_where_parents_are_older(people, tables):
    """The child tax credit's children (under 17) are a share of all children that falls with the
    parent's age, as in the CPS: a 50-year-old's children are more often 17 than a 30-year-old's."""
    cps = tables.cps_workers
    share = lambda t, w: (t.credit_children * w).sum() / (t.children * w).sum()  # noqa: E731
    assert (people.credit_children <= people.children).all()
    got = {}
    for band in ("25-34", "45-54"):
        rows = cps[cps.age_band == band]
        got[band] = share(people[people.age_band == band], 1.0)
        assert got[band] == pytest.approx(share(rows, rows.weight), abs=0.02), band
    assert got["45-54"] < got["25-34"] - 0.05


def test_households_are_consistent(people):
    size = people.groupby("household_id").size()
    assert size.max() <= 2
    assert (np.sort(people.household_id.unique()) == np.arange(len(size))).all()
    assert (people.earners.to_numpy() == size.reindex(people.household_id).to_numpy()).all()
    pairs = people[people.household_id.map(size) == 2].sort_values(["household_id", "agent_id"])
    a, b = pairs.iloc[0::2].reset_index(drop=True), pairs.iloc[1::2].reset_index(drop=True)
    assert len(a) > 0.1 * N / 2
    assert (a.marital_status == "married").all() and (b.marital_status == "married").all()
    assert (a.state == b.state).all()
    assert (a.sex != b.sex).all()
    assert (a.household_size == b.household_size).all() and (a.children == b.children).all()
    assert (a.credit_children == b.credit_children).all()
    assert (people.household_size[people.marital_status == "married"] >= 2).all()
    adults = np.where(people.marital_status == "married", 2, 1)
    assert (people.household_size >= adults + people.children).all()
    assert np.median(np.abs(a.age.astype(int) - b.age.astype(int))) <= 5


def test_spouses_are_as_alike_as_cps_couples():
    """At 50,000 agents (about 10,000 couples), spouses' ages and log wages correlate as those of
    CPS couples who both earn (`SPOUSE_CORRELATIONS`, from scripts/cps_spouse_moments.py), within
    about two standard errors, and as many joint filers earn alone as in the CPS; pairing by age
    alone gave 0.98 and 0.04. (A small population has few couples in each state to choose among,
    so its spouses are less alike.)"""
    table = sample_population(50_000, seed=11).table
    pairs = table[table.earners == 2].sort_values(["household_id", "agent_id"])
    a, b = pairs.iloc[0::2], pairs.iloc[1::2]
    assert len(a) > 6_000
    age = np.corrcoef(a.age.astype(float), b.age.astype(float))[0, 1]
    wage = np.corrcoef(np.log(a.hourly_wage.to_numpy()), np.log(b.hourly_wage.to_numpy()))[0, 1]
    assert age == pytest.approx(SPOUSE_CORRELATIONS["age"], abs=0.015)
    assert wage == pytest.approx(SPOUSE_CORRELATIONS["log_earnings"], abs=0.03)
    joint = table[table.filing_status == "married_joint"]
    assert (joint.earners == 1).mean() == pytest.approx(MARRIED_EARNERS_ALONE, abs=0.015)


# ----------------------------------------------------------------------------- Adult

def test_women_in_each_bls_occupation_group_match_the_bls_table(people, tables):
    """Each BLS occupation group's share of women is the table's (BLS CPS 2022), not Adult's 1994
    one; within a group, how women spread over its SOC major groups follows Adult."""
    bls = tables.bls_sex_by_group.set_index("group_code")
    group = people.occupation_group_code.astype(str).map(bls.bls_group)
    got = (people.sex == "female").groupby(group).mean()
    expected = bls.groupby("bls_group").bls_group_women_share.first().reindex(got.index)
    count = group.value_counts().reindex(got.index)
    assert (np.abs(got - expected) <= binomial_tol(expected, count)).all()
    assert got.max() - got.min() > 0.6  # office support against construction
    assert (people.sex == "female").mean() == pytest.approx(0.47, abs=0.02)  # BLS: 46.8% of the employed
    adult = tables.adult_workers
    assert (adult.weight * (adult.sex == "female")).sum() / adult.weight.sum() < 0.33  # Adult's 1994 records


def test_education_within_occupation_group_sex_and_band_matches_adult(people, tables):
    """P(bachelor's | group, sex, band) is Adult's, mixed with the sample's own cells."""
    keys = ["group_code", "sex", "age_band"]
    adult = adult_by_group(tables)
    cell = adult.groupby(keys).weight.sum()
    p = (adult[adult.education == "bachelor's degree"].groupby(keys).weight.sum() / cell).fillna(0.0)
    sample = people.assign(group_code=people.occupation_group_code.astype(str), sex=people.sex.astype(str),
                           age_band=people.age_band.astype(str))
    expected_each = p.reindex(pd.MultiIndex.from_frame(sample[keys])).fillna(0.0).to_numpy()
    expected = pd.Series(expected_each).groupby(sample.group_code.to_numpy()).mean()
    got = (sample.education == "bachelor's degree").groupby(sample.group_code).mean()
    count = sample.group_code.value_counts().reindex(expected.index)
    assert (np.abs(got.reindex(expected.index) - expected) <= binomial_tol(expected, count)).all()


# ----------------------------------------------------------------------------- determinism

def test_same_seed_gives_identical_population():
    a = sample_population(20_000, 123).table
    b = sample_population(20_000, 123).table
    assert a.equals(b)
    assert all(a[c].dtype == b[c].dtype for c in a.columns)


def test_different_seeds_give_different_populations():
    a = sample_population(5_000, 1).table
    b = sample_population(5_000, 2).table
    assert not a.hourly_wage.equals(b.hourly_wage)


def test_single_agent_population():
    p = sample_population(1, 0)
    assert p.n == 1 and p.table.household_id.iloc[0] == 0


def test_category_levels_are_the_categories_of_every_sampled_table():
    levels = category_levels()
    for table in (sample_population(1, 0).table, sample_population(50, 3, "gb2").table):
        categorical = [name for name in table if isinstance(table[name].dtype, pd.CategoricalDtype)]
        assert sorted(levels) == sorted(categorical)
        for name in categorical:
            assert table[name].cat.categories.equals(pd.Index(levels[name])), name
    assert levels["education"] == EDUCATION_LEVELS


def test_million_agents_sample_quickly():
    start = time.perf_counter()
    p = sample_population(1_000_000, 0)
    assert p.n == 1_000_000
    assert time.perf_counter() - start < 30


# ----------------------------------------------------------------------------- GB2

@functools.lru_cache(maxsize=None)
def _beta_median(a: float, b: float) -> float:
    """Median of Beta(a, b) by bisection on a quadrature of its CDF.

    With x = s ** (1 / a) the CDF is  int_0^{m^a} (1 - s^(1/a))^(b-1) ds / (a B(a, b)),
    whose integrand is bounded for a < 1 < b.
    """
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    def cdf(m):
        s = np.linspace(0.0, m**a, 20_001)
        f = (1.0 - s ** (1.0 / a)) ** (b - 1.0)
        return np.trapezoid(f, s) / (a * math.exp(log_beta))

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < 0.5 else (lo, mid)
    return 0.5 * (lo + hi)


def test_gb2_mean_matches_closed_form():
    p = GB2_ACS_2023
    y = gb2_sample(2_000_000, np.random.default_rng(11))
    a = 1.0 / p.sigma
    log_b = lambda x, z: math.lgamma(x) + math.lgamma(z) - math.lgamma(x + z)  # noqa: E731
    mean = p.mu * math.exp(log_b(p.nu + a, p.tau - a) - log_b(p.nu, p.tau))
    second = p.mu**2 * math.exp(log_b(p.nu + 2 * a, p.tau - 2 * a) - log_b(p.nu, p.tau))
    se = math.sqrt(second - mean**2) / math.sqrt(len(y))
    assert gb2_mean() == pytest.approx(mean, rel=1e-12)
    assert abs(y.mean() - mean) < 5 * se


def test_gb2_median_matches_numerical_median():
    p = GB2_ACS_2023
    y = gb2_sample(2_000_000, np.random.default_rng(12))
    m = _beta_median(p.nu, p.tau)
    median = p.mu * (m / (1 - m)) ** (1 / p.sigma)
    assert np.median(y) == pytest.approx(median, rel=0.005)


def test_gb2_population_keeps_census_wage_ranks():
    census = sample_population(50_000, 5).table
    gb2 = sample_population(50_000, 5, income_model="gb2").table
    assert census.drop(columns="hourly_wage").equals(gb2.drop(columns="hourly_wage"))
    ordered = gb2.hourly_wage.to_numpy()[np.argsort(census.hourly_wage.to_numpy(), kind="stable")]
    assert (np.diff(ordered) >= 0).all()
    p = GB2_ACS_2023
    m = _beta_median(p.nu, p.tau)
    median_hourly = p.mu * (m / (1 - m)) ** (1 / p.sigma) / 2080.0
    assert gb2.hourly_wage.median() == pytest.approx(median_hourly, rel=0.03)
    assert gb2.hourly_wage.mean() == pytest.approx(gb2_mean() / 2080.0, rel=0.05)
    assert gb2.hourly_wage.min() > 0


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10", None])
def test_bad_n_is_rejected(n):
    with pytest.raises(ValueError, match="n must be"):
        sample_population(n, 0)


@pytest.mark.parametrize("seed", [-1, 1.5, "x", None])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed must be"):
        sample_population(10, seed)


def test_unknown_income_model_is_rejected():
    with pytest.raises(ValueError, match="income_model"):
        sample_population(10, 0, income_model="pareto")


def test_bad_gb2_n_is_rejected():
    with pytest.raises(ValueError, match="n must be"):
        gb2_sample(0, np.random.default_rng(0))


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    copy = tmp_path / "data"
    shutil.copytree(population_module.DATA_DIR, copy)
    monkeypatch.setattr(population_module, "DATA_DIR", copy)
    return copy


def test_missing_table_raises_file_not_found(data_copy):
    (data_copy / TABLE_FILES["state_occupation"]).unlink()
    with pytest.raises(FileNotFoundError, match="oews_state_occupation.csv.gz"):
        sample_population(10, 0)


def test_missing_manifest_raises_file_not_found(data_copy):
    (data_copy / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        sample_population(10, 0)


def test_corrupt_table_raises_value_error(data_copy):
    path = data_copy / TABLE_FILES["cps_workers"]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cps_workers.csv.gz.*corrupt"):
        sample_population(10, 0)


# ----------------------------------------------------------------------------- persona text

STATE_NAMES = {"TX": "Texas", "CA": "California"}


def test_persona_text_reads_like_the_documented_example():
    row = {"age": 34, "marital_status": "married", "sex": "female", "state": "TX",
           "education": "bachelor's degree", "occupation": "Registered Nurses", "hourly_wage": 41.2,
           "household_size": 3, "children": 1}
    assert persona_text(row) == ("A 34-year-old married woman in Texas with a bachelor's degree, working as a "
                                 "registered nurse and earning about $41 an hour; household of 3 with 1 child.")


def test_persona_text_mentions_every_field(people):
    for row in people.head(50).itertuples(index=False):
        text = persona_text(row)
        assert f"{row.age}-year-old" in text
        assert str(row.marital_status) in text
        assert {"female": "woman", "male": "man"}[str(row.sex)] in text
        assert f"${row.hourly_wage:,.0f} an hour" in text
        assert occupation_phrase(str(row.occupation)) in text
        if row.household_size > 1 or row.children > 0:
            assert f"of {row.household_size} with" in text
        if row.children:
            assert f"{row.children} child" in text
        if row.earners == 2:
            assert "two-earner household" in text


def test_persona_texts_match_row_by_row_and_are_deterministic(pop, people):
    sub = pop.subset(np.arange(3000))
    texts = persona_texts(sub)
    assert texts == persona_texts(sub)
    assert texts == [persona_text(r) for r in sub.table.itertuples(index=False)]
    for abbr, name in STATE_NAMES.items():
        i = int(np.flatnonzero(sub.table.state.astype(str).to_numpy() == abbr)[0])
        assert f" in {name} " in texts[i]


@pytest.mark.parametrize("title, phrase", [
    ("Registered Nurses", "a registered nurse"),
    ("Accountants and Auditors", "an accountant and auditor"),
    ("Cooks, Restaurant", "a restaurant cook"),
    ("Elementary School Teachers, Except Special Education", "an elementary school teacher"),
    ("Secretaries and Administrative Assistants, Except Legal, Medical, and Executive",
     "a secretary and administrative assistant"),
    ("First-Line Supervisors of Retail Sales Workers", "a first-line supervisor of retail sales workers"),
    ("Nurse Midwives", "a nurse midwife"),
])
def test_occupation_titles_become_singular_phrases(title, phrase):
    assert occupation_phrase(title) == phrase
