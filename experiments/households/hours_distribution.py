"""How the distribution of weekly hours moves with the workers' tastes for leisure, against UCI
Adult's (`llm_economist/studies/hours.py`), and the tastes fitted to it; prints JSON lines.

    python experiments/households/hours_distribution.py grid [N_AGENTS] [SEED]
    python experiments/households/hours_distribution.py fit [N_AGENTS] [SEED] [EVALUATIONS]
    python experiments/households/hours_distribution.py check [N_AGENTS] [SEEDS]

Rational workers on a census sample, psi and the fixed costs of working calibrated jointly as a
run calibrates them, with the README's participation settings (19% not working, participation
elasticity 0.25). `grid` prints log-normal tastes (`economy.disutility_spread`,
`economy.disutility_wage_slope`) on a grid; `fit` finds those two, two further types of worker
(`economy.disutility_types`: a long-hours and a short-hours type, the short-hours type's share
set apart for the young and the old: `economy.disutility_type_shares_by_age`), a multiple of the taste for
each schooling group but high school (`economy.disutility_by_schooling`) and for each age band
outside the prime ages 35-54 (`economy.disutility_by_age`) that bring the targeted moments
within their tolerances, by Nelder-Mead on the squared misses in tolerances with the sample's
random numbers held fixed, starting from the shipped fit; `check` measures one taste and the
shipped fit (`experiments/configs/adult_hours.yaml`) on fresh samples, seeds 1 to SEEDS.
"""

from __future__ import annotations

import json
import sys
from itertools import product

import numpy as np
from scipy.optimize import minimize

from llm_economist.config import EconomyConfig
from llm_economist.planner_factory import load_config
from llm_economist.studies.hours import ADULT_HOURS, TOLERANCES, hours_moments, misses

FITTED = "experiments/configs/adult_hours.yaml"
PARTICIPATION = {"share_not_working": 0.19, "extensive_elasticity": 0.25}
TASTES = ("disutility_spread", "disutility_wage_slope", "disutility_types", "disutility_by_schooling", "disutility_by_age",
          "disutility_type_shares_by_age")
SHIFTED = ("less_than_high_school", "some_college_or_associate", "bachelors_or_more")  # high school keeps 1
AGES_SHIFTED = ("16-24", "25-34", "55-64", "65+")  # the prime ages 35-54 keep 1
SHORT_TYPE_BY_AGE = ("16-24", "65+")  # bands with a short-hours type's share of their own (students, the retired)
N_TYPES = 2


def miss(found: dict[str, float]) -> float:
    """Sum of squared misses, each in its tolerance: under 8 means every moment within it on average."""
    return sum(m * m for m in misses(found).values())


def economy_of(x: np.ndarray) -> EconomyConfig:
    """Tastes from (spread, slope, each further type's share and log multiple, each shifted
    schooling group's and age band's log multiple, then the short-hours type's share in each of
    SHORT_TYPE_BY_AGE)."""
    spread, slope, *rest = (float(v) for v in x)
    cut = np.cumsum([2 * N_TYPES, len(SHIFTED), len(AGES_SHIFTED)])
    types, schooling, ages, short = rest[: cut[0]], rest[cut[0]: cut[1]], rest[cut[1]: cut[2]], rest[cut[2]:]
    pairs = [[float(np.clip(share, 1e-3, 0.45)), float(np.exp(log_multiple))] for share, log_multiple in zip(types[::2], types[1::2])]
    return EconomyConfig(**PARTICIPATION, disutility_spread=abs(spread), disutility_wage_slope=slope, disutility_types=pairs,
                         disutility_by_schooling={g: float(np.exp(v)) for g, v in zip(SHIFTED, schooling)},
                         disutility_by_age={band: float(np.exp(v)) for band, v in zip(AGES_SHIFTED, ages)},
                         disutility_type_shares_by_age={band: [pairs[0][0], float(np.clip(v, 1e-3, 0.45))]
                                                        for band, v in zip(SHORT_TYPE_BY_AGE, short)})


def shipped() -> EconomyConfig:
    return load_config(FITTED).economy


def grid(n: int = 4_000, seed: int = 0) -> None:
    for slope, spread in product((0.0, 0.2, 0.4, 0.6), (0.0, 0.1, 0.2, 0.3)):
        economy = EconomyConfig(**PARTICIPATION, disutility_wage_slope=slope, disutility_spread=spread)
        print(json.dumps({"disutility_wage_slope": slope, "disutility_spread": spread, **hours_moments(economy, n, seed)}), flush=True)


def fit(n: int = 2_000, seed: int = 0, evaluations: int = 600) -> None:
    def objective(x: np.ndarray) -> float:
        found = hours_moments(economy_of(x), n, seed)
        print(json.dumps({"x": [round(float(v), 4) for v in x], "miss": round(miss(found), 3), **found}), flush=True)
        return miss(found)

    e = shipped()
    start = np.array([e.disutility_spread, e.disutility_wage_slope,
                      *(v for share, multiple in e.disutility_types for v in (share, np.log(multiple))),
                      *(np.log(e.disutility_by_schooling.get(g, 1.0)) for g in SHIFTED),
                      *(np.log(e.disutility_by_age.get(band, 1.0)) for band in AGES_SHIFTED),
                      *(e.disutility_type_shares_by_age.get(band, [s for s, _ in e.disutility_types])[1] for band in SHORT_TYPE_BY_AGE)])
    steps = [0.05, 0.1, 0.05, 0.3, 0.02, 0.3, 0.15, 0.1, 0.1, 0.2, 0.1, 0.1, 0.2, 0.1, 0.1]
    simplex = start + np.vstack([np.zeros(len(start)), np.diag(steps)])
    best = minimize(objective, start, method="Nelder-Mead", options={"maxfev": evaluations, "xatol": 0.005, "fatol": 0.05, "initial_simplex": simplex})
    print(json.dumps({"fitted": economy_of(best.x).model_dump(include=set(TASTES)), "miss": round(float(best.fun), 3)}))


def check(n: int = 4_000, seeds: int = 3) -> None:
    print(json.dumps({"adult": ADULT_HOURS, "tolerances": TOLERANCES}))
    for economy, name in ((EconomyConfig(**PARTICIPATION), "one taste"), (shipped(), "fitted")):
        for seed in range(1, seeds + 1):
            found = hours_moments(economy, n, seed)
            print(json.dumps({"tastes": name, "seed": seed, "miss": round(miss(found), 3), **found}), flush=True)


if __name__ == "__main__":
    mode, *rest = sys.argv[1:] or ["grid"]
    {"grid": grid, "fit": fit, "check": check}[mode](*(int(x) for x in rest))
