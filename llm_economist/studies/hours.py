"""The distribution of weekly hours against UCI Adult's, the only shipped source of hours
(`scripts/adult_hours_moments.py`): the moments a calibration of the workers' tastes for leisure
targets (`economy.disutility_spread`, `disutility_wage_slope`, `disutility_types`,
`disutility_by_schooling`, `disutility_by_age`, `disutility_type_shares_by_age`), each with the
tolerance it is fitted within, and the measurement a fit and its test share.

Rational workers on a census sample, psi and the fixed costs of working calibrated as a run
calibrates them, respond to the 2024 US taxes. Moments among those who work: the shares under 35 h,
under 20 h and at 50 h or more, the mean hours of the top quarter of earners (Adult's over-$50k
share) over the others', mean hours by schooling and by age band over all (the personas and
Adult record both; a stand-in for hours by wage quintile, which Adult cannot give), and the shares
under 35 h without a high-school diploma, among the young (16-24) and among the old (65+).
"""

from __future__ import annotations

import torch

from ..config import EconomyConfig
from ..factory import calibrated_preferences, population_units
from ..mechanisms import make_mechanism
from ..personas import AGE_BANDS, SCHOOLING_GROUPS, sample_population, taste_groups
from ..population_model import PopulationModel
from ..workers import RationalWorkers

# UCI Adult (1994 CPS extract), weighted by fnlwgt, records with an occupation.
ADULT_HOURS = {"share_under_35_hours": 0.155, "share_under_20_hours": 0.0426, "share_50_hours_or_more": 0.1996,
               "income_over_50k_hours_ratio": 1.1635, "hours_ratio_less_than_high_school": 0.9137,
               "hours_ratio_high_school": 1.0023, "hours_ratio_some_college_or_associate": 0.9773,
               "hours_ratio_bachelors_or_more": 1.0691, "hours_ratio_16-24": 0.8193, "hours_ratio_25-34": 1.0356,
               "hours_ratio_35-44": 1.0661, "hours_ratio_45-54": 1.0622, "hours_ratio_55-64": 1.0065, "hours_ratio_65+": 0.7595,
               "share_under_35_hours_less_than_high_school": 0.2528, "share_under_35_hours_16-24": 0.4064,
               "share_under_35_hours_65+": 0.5049}
TOP_SHARE = 0.2465  # Adult's share of workers with income over $50k
TOLERANCES = {"share_under_35_hours": 0.02, "share_under_20_hours": 0.015, "share_50_hours_or_more": 0.02,
              "income_over_50k_hours_ratio": 0.05, "hours_ratio_less_than_high_school": 0.04, "hours_ratio_high_school": 0.04,
              "hours_ratio_some_college_or_associate": 0.04, "hours_ratio_bachelors_or_more": 0.04,
              **{f"hours_ratio_{band}": 0.04 for band in AGE_BANDS},
              "share_under_35_hours_16-24": 0.04, "share_under_35_hours_65+": 0.05, "share_under_35_hours_less_than_high_school": 0.04}
PAYROLL_RATE = 0.0765
PHASE_IN_MARGIN = 0.05  # a marginal rate this far below the payroll tax: a credit is phasing in


def hours_moments(economy: EconomyConfig, n_agents: int, seed: int) -> dict[str, float]:
    """The targeted moments, and beside them the share not working and the share of workers in a
    credit's phase-in, on `n_agents` census workers."""
    population = sample_population(n_agents, seed=seed)
    units, wage = population_units(population), population.wage()
    groups = taste_groups(population)
    prefs, calibration = calibrated_preferences(economy, wage, seed, units, groups)
    model = PopulationModel(wage, prefs, RationalWorkers(prefs), units=units)
    us = make_mechanism("us_tax_2024")
    policy = us.compile(us.initial())
    outcome = model.respond(policy)
    rates = model.resolve(policy, outcome).schedule.marginal_rate(outcome.income)
    working = outcome.hours > 0
    hours, income = outcome.hours[working], outcome.income[working]
    top = income >= torch.quantile(income, 1 - TOP_SHARE)
    working_groups = {trait: groups[trait][working.numpy()] for trait in ("schooling", "age_band")}
    among = lambda trait, group: hours[torch.from_numpy(working_groups[trait] == group)]  # noqa: E731
    share = lambda mask: float(mask.double().mean())  # noqa: E731
    found = {"share_not_working": share(~working), "share_under_35_hours": share(hours < 35), "share_under_20_hours": share(hours < 20),
             "share_50_hours_or_more": share(hours >= 50), "income_over_50k_hours_ratio": float(hours[top].mean() / hours[~top].mean())}
    for trait, named in (("schooling", SCHOOLING_GROUPS), ("age_band", AGE_BANDS)):
        for group in named:
            found[f"hours_ratio_{group}"] = float(among(trait, group).mean() / hours.mean())
    for trait, group in (("schooling", "less_than_high_school"), ("age_band", "16-24"), ("age_band", "65+")):
        found[f"share_under_35_hours_{group}"] = share(among(trait, group) < 35)
    found["credit_phase_in_share"] = share(rates[working] < PAYROLL_RATE - PHASE_IN_MARGIN)
    found["psi"] = calibration["psi"]
    return {k: round(v, 4) for k, v in found.items()}


def misses(found: dict[str, float]) -> dict[str, float]:
    """Each targeted moment's miss from Adult in its tolerance (within it: at most 1 in size)."""
    return {k: (found[k] - ADULT_HOURS[k]) / tolerance for k, tolerance in TOLERANCES.items()}
