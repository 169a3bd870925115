"""How the distribution of weekly hours moves with the workers' tastes for leisure
(`economy.disutility_spread`, `economy.disutility_wage_slope`), against UCI Adult's
(`scripts/adult_hours_moments.py`); prints one JSON line per setting.

    python experiments/households/hours_distribution.py [N_AGENTS] [SEED]

Rational workers on a census sample, psi calibrated (median 40 h) under the 2024 US taxes,
as a run calibrates them. Moments among those who work: the share under 35 h, the share at
50 h or more, and the mean hours of the top quarter of earners (Adult's over-$50k share, 24.65%)
over the others'.
"""

from __future__ import annotations

import json
import sys
from itertools import product

import torch

from llm_economist.config import EconomyConfig
from llm_economist.factory import calibrated_preferences, population_units
from llm_economist.mechanisms import make_mechanism
from llm_economist.personas import sample_population
from llm_economist.population_model import PopulationModel
from llm_economist.workers import RationalWorkers

ADULT = {"share_under_35_hours": 0.155, "share_50_hours_or_more": 0.1996, "income_over_50k_hours_ratio": 1.1635,
         "share_income_over_50k": 0.2465}


def moments(economy: EconomyConfig, n: int = 4_000, seed: int = 0) -> dict[str, float]:
    population = sample_population(n, seed=seed)
    units, wage = population_units(population), population.wage()
    prefs, _ = calibrated_preferences(economy, wage, seed, units)
    model = PopulationModel(wage, prefs, RationalWorkers(prefs), units=units)
    us = make_mechanism("us_tax_2024")
    outcome = model.respond(us.compile(us.initial()))
    working = outcome.hours > 0
    hours, income = outcome.hours[working], outcome.income[working]
    top = income >= torch.quantile(income, 1 - ADULT["share_income_over_50k"])
    return {"share_under_35_hours": round(float((hours < 35).double().mean()), 4),
            "share_50_hours_or_more": round(float((hours >= 50).double().mean()), 4),
            "income_over_50k_hours_ratio": round(float(hours[top].mean() / hours[~top].mean()), 4)}


def main(n: int = 4_000, seed: int = 0) -> None:
    print(json.dumps({"adult": ADULT}))
    for slope, spread in product((0.0, 0.2, 0.4, 0.6), (0.0, 0.1, 0.2, 0.3)):
        economy = EconomyConfig(disutility_wage_slope=slope, disutility_spread=spread)
        print(json.dumps({"disutility_wage_slope": slope, "disutility_spread": spread, **moments(economy, n, seed)}), flush=True)


if __name__ == "__main__":
    main(*(int(x) for x in sys.argv[1:]))
