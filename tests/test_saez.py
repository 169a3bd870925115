"""The Saez baseline against its closed form, the grid optimum and the analytic elasticity."""

import pytest
import torch

from llm_economist.economy import (
    Policy,
    Preferences,
    TaxSchedule,
    calibrate_psi,
    marginal_welfare_weights,
    pareto_parameter,
    saez_bracket_rates,
    saez_top_rate,
)
from llm_economist.mechanisms import make_mechanism
from llm_economist.planners import GridPlanner, SaezPlanner, estimate_elasticity
from llm_economist.planners.saez import MIN_ELASTICITY
from llm_economist.workers import BoundedRationalWorkers, Decisions, RationalWorkers, Workers
from llm_economist.population_model import PopulationModel

D = torch.float64


def test_top_rate_on_a_pareto_tail_equals_the_closed_form():
    g = torch.Generator().manual_seed(0)
    alpha, top_cut = 2.0, 200_000.0
    tail = top_cut * torch.rand(50_000, generator=g, dtype=D).pow(-1.0 / alpha)  # Pareto above the cutoff
    body = torch.rand(50_000, generator=g, dtype=D) * top_cut
    z = torch.cat([body, tail])
    g_top = 0.3
    weights = torch.where(z > top_cut, torch.full_like(z, g_top), torch.full_like(z, 1.7))
    cutoffs = torch.tensor([0.0, 100_000.0, top_cut], dtype=D)
    rates = saez_bracket_rates(z, weights, cutoffs, elasticity=0.25)
    a = pareto_parameter(z, top_cut)
    assert rates[-1].item() == pytest.approx(saez_top_rate(g_top, a, 0.25), rel=1e-9)
    assert a == pytest.approx(alpha / (alpha - 1.0), rel=0.05)  # the sample's a is the Pareto a


@pytest.fixture
def rational_world(wages):
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences(eta=0.0, elasticity=0.5))
    return PopulationModel(wages, prefs, RationalWorkers(prefs), "inverse_income", {"income_floor": 10_000.0})


def test_saez_schedule_is_within_one_percent_of_the_grid_optimum(rational_world):
    mechanism = make_mechanism("three_bracket")
    saez = SaezPlanner(mechanism).propose(0, [], rational_world)
    grid = GridPlanner(mechanism, points_per_parameter=21).propose(0, [], rational_world)
    w_saez, w_grid = rational_world.evaluate(mechanism, torch.stack([saez, grid])).tolist()
    assert w_saez >= 0.99 * w_grid
    assert w_grid >= w_saez - 1e-6 * abs(w_grid)  # the grid is the better of the two up to resolution


def test_saez_rates_are_a_fixed_point_of_the_formula(rational_world):
    mechanism = make_mechanism("three_bracket")
    planner = SaezPlanner(mechanism, tolerance=1e-8, max_iterations=500)
    theta = planner.propose(0, [], rational_world)
    assert planner.iterations < 500
    outcome = rational_world.respond(mechanism.compile(theta))
    weights = marginal_welfare_weights(outcome, rational_world.prefs, "inverse_income", income_floor=10_000.0)
    again = saez_bracket_rates(outcome.income, weights, mechanism.cutoffs, 0.5)
    assert torch.allclose(again, theta, atol=1e-6)


def test_estimated_elasticity_matches_the_analytic_one_for_rational_workers(rational_world):
    policy = make_mechanism("three_bracket").compile(torch.tensor([0.2, 0.3, 0.4], dtype=D))
    assert estimate_elasticity(rational_world, policy) == pytest.approx(0.5, rel=0.10)


def test_estimated_elasticity_is_close_for_nearly_rational_logit_workers(wages):
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences(eta=0.0, elasticity=0.5))
    population_model = PopulationModel(wages, prefs, BoundedRationalWorkers(prefs, temperature=0.002, n_bins=321))
    policy = Policy(TaxSchedule(torch.tensor([0.0, 60_000.0], dtype=D), torch.tensor([0.25, 0.35], dtype=D)))
    assert estimate_elasticity(population_model, policy) == pytest.approx(0.5, rel=0.10)


def test_saez_planner_refuses_mechanisms_it_has_no_formula_for():
    with pytest.raises(ValueError, match="needs a bracket_tax mechanism"):
        SaezPlanner(make_mechanism("negative_income_tax"))


class FixedHours(Workers):
    """Workers who work 40 hours whatever the tax: an elasticity of exactly zero."""

    def act(self, obs, generator):
        return Decisions(torch.full_like(obs.wage, 40.0))

    def expected_hours(self, wage, policy, transfer):
        return torch.full((*policy.schedule.rates.shape[:-1], wage.shape[-1]), 40.0, dtype=wage.dtype)


def test_saez_facing_no_response_uses_the_no_response_limit_and_says_so(wages):
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences(eta=0.0, elasticity=0.5))
    population_model = PopulationModel(wages, prefs, FixedHours())
    mechanism = make_mechanism("three_bracket")
    planner = SaezPlanner(mechanism, elasticity="estimate", tolerance=1e-8, max_iterations=500)
    theta = planner.propose(0, [], population_model)
    # Incomes do not move, so the fixed point is the formula at the floor elasticity on those incomes.
    outcome = population_model.respond(mechanism.compile(theta))
    weights = marginal_welfare_weights(outcome, prefs, population_model.welfare_name, **population_model.welfare_params)
    expected = saez_bracket_rates(outcome.income, weights, mechanism.cutoffs, MIN_ELASTICITY, planner.max_rate)
    torch.testing.assert_close(theta, expected, atol=1e-6, rtol=0)
    assert planner.fallbacks == planner.iterations
    assert "elasticity" in planner.notes[0] and str(planner.fallbacks) in planner.notes[0]
