"""Couples who both work file one return: each spouse's hours are its best response to the
other's earnings, and with a convex return the couple lands on its joint optimum."""

import pytest
import torch

from llm_economist.economy import Preferences
from llm_economist.economy.utility import labour_disutility
from llm_economist.factory import population_units
from llm_economist.mechanisms import make_mechanism
from llm_economist.personas import sample_population
from llm_economist.population_model import PopulationModel
from llm_economist.workers import RationalWorkers

D = torch.float64
PREFS = Preferences(elasticity=0.33, psi=0.0143, max_hours=80.0)
GRID = torch.linspace(0.0, 80.0, 1601, dtype=D)  # 0.05 h apart


def settled(**options):
    population = sample_population(400, seed=3)
    population = population.subset(population_units(population).couples.numpy())  # the couples alone
    wage, units = population.wage(), population_units(population)
    model = PopulationModel(wage, PREFS, RationalWorkers(PREFS), units=units)
    mechanism = make_mechanism("us_tax_2024", **options)
    policy = mechanism.compile(mechanism.initial())
    return model, policy, model.respond(policy)


def household_tax(policy, model, income):
    """(..., N) the tax of each worker's whole unit (its return and both spouses' payroll)."""
    taxes = model.resolve(policy, None).levy(income)[0]
    partner = model.units.partner
    return taxes + torch.where(partner >= 0, taxes[..., partner.clamp(min=0)], 0.0)


def test_each_spouse_works_its_best_response_to_the_others_earnings():
    """Under the full 2024 taxes (EITC, payroll: a non-convex return), a brute-force search over
    each spouse's own hours, its partner's earnings fixed, finds nothing better than the hours
    the couple settled on; the gain is what working adds to the couple's take-home pay."""
    model, policy, outcome = settled()
    units, wage = model.units, model.wage
    assert bool(units.couples.all()) and len(wage) >= 80
    for turn in (0, 1):
        moving = units.couples & ~units.waiting(turn)
        income = outcome.income.expand(len(GRID), -1).clone()
        income[:, moving] = 52.0 * wage[moving] * GRID.unsqueeze(-1)
        surplus = income - household_tax(policy, model, income) - labour_disutility(GRID.unsqueeze(-1), PREFS.psi, PREFS.elasticity)
        best = surplus[:, moving].max(dim=0).values
        z = outcome.income.unsqueeze(0)
        own = (z - household_tax(policy, model, z) - labour_disutility(outcome.hours, PREFS.psi, PREFS.elasticity))[0, moving]
        assert (own >= best - 1e-6 * best.abs()).all()


def test_with_a_convex_return_the_couple_reaches_its_joint_optimum_off_the_kinks():
    """Without the EITC and payroll tax the return is convex, so where the couple's income is not
    at a kink its fixed point is the hours pair that maximises the couple's take-home pay less
    both disutilities: brute force over both spouses' hours finds no better pair. A couple bunched
    at a kink can settle on any split of that income each spouse accepts alone (both face the
    lower rate below and the higher above), a little short of the best split."""
    model, policy, outcome = settled(eitc=False, payroll=False)
    units, wage = model.units, model.wage
    first = torch.nonzero(units.partner > torch.arange(len(wage))).squeeze(-1)
    second = units.partner[first]
    grid = GRID[::4]  # 0.2 h
    h1, h2 = torch.meshgrid(grid, grid, indexing="ij")
    h1, h2 = h1.reshape(-1, 1), h2.reshape(-1, 1)
    income = outcome.income.expand(len(h1), -1).clone()
    income[:, first], income[:, second] = 52.0 * wage[first] * h1, 52.0 * wage[second] * h2
    v = lambda h: labour_disutility(h, PREFS.psi, PREFS.elasticity)  # noqa: E731
    surplus = income[:, first] + income[:, second] - household_tax(policy, model, income)[:, first] - v(h1) - v(h2)
    best = surplus.max(dim=0).values
    z = outcome.income.unsqueeze(0)
    own = (z[:, first] + z[:, second] - household_tax(policy, model, z)[:, first] - v(outcome.hours[first]) - v(outcome.hours[second]))[0]
    together = outcome.income[first] + outcome.income[second]
    kinks = model.resolve(policy, outcome).joint.combined.cutoffs[units.filing[first]]  # the return's, by filing group
    at_kink = ((together.unsqueeze(-1) - kinks).abs() < 0.5).any(dim=-1)
    assert 0 < int(at_kink.sum()) < len(first) // 4
    assert (own >= best - 1e-9 * best.abs())[~at_kink].all()
    assert (own >= best * (1 - 1e-3))[at_kink].all()
