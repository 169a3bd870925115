"""How spouses who both earn are matched in the CPS: the correlations of their ages and of their
log wage earnings, and the share of married workers whose spouse earns nothing, from the tax
units the persona tables are built from (taxcalc 6.8.0 `cps.csv.gz`, CPS ASEC 2012-2014, weighted
by `s006`). `personas.population.SPOUSE_MATCHING` is set so sampled couples match the first two.

    /tmp/taxcalc/bin/python scripts/cps_spouse_moments.py    # where taxcalc 6.8.0 is installed
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import taxcalc


def weighted_correlation(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    cov = np.average((x - mx) * (y - my), weights=w)
    return float(cov / np.sqrt(np.average((x - mx) ** 2, weights=w) * np.average((y - my) ** 2, weights=w)))


def main() -> None:
    units = pd.read_csv(Path(taxcalc.__file__).parent / "cps.csv.gz")
    married = units[units.MARS == 2]
    both = married[(married.e00200p > 0) & (married.e00200s > 0)]
    one = married[(married.e00200p > 0) != (married.e00200s > 0)]
    workers_alone, workers_paired = one.s006.sum(), 2 * both.s006.sum()
    print(json.dumps({
        "spouse_log_earnings_correlation": round(weighted_correlation(np.log(both.e00200p), np.log(both.e00200s), both.s006), 3),
        "spouse_age_correlation": round(weighted_correlation(both.age_head, both.age_spouse, both.s006), 3),
        "married_earners_with_no_earning_spouse": round(workers_alone / (workers_alone + workers_paired), 3),
        "two_earner_couples": len(both),
    }))


if __name__ == "__main__":
    main()
