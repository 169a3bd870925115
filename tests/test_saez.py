"""The Saez baseline against its closed form, the grid optimum and the analytic elasticity."""

import pytest
import torch

from llm_economist.economy import (
    Outcome,
    Policy,
    Preferences,
    TaxSchedule,
    calibrate_psi,
    marginal_welfare_weights,
    pareto_parameter,
    saez_bracket_rates,
    saez_top_rate,
    utility,
)
from llm_economist.economy.welfare import ability_weights
from llm_economist.studies.comparison import run_comparison
from llm_economist.planner_factory import load_config
from llm_economist.factory import build_setup, make_config_mechanism
from llm_economist.mechanisms import make_mechanism
from llm_economist.planners import GridPlanner, SaezPlanner, estimate_elasticity
from llm_economist.personas import sample_population
from llm_economist.planners.fixed import no_tax_planner
from llm_economist.planners.saez import MIN_ELASTICITY, responsive
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
    return PopulationModel(wages, prefs, RationalWorkers(prefs), "ability_weighted", {"inequality_aversion": 1.0})


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
    weights = marginal_welfare_weights(outcome, rational_world.prefs, "ability_weighted", rational_world.wage)
    again = saez_bracket_rates(outcome.income, weights, mechanism.cutoffs, 0.5,
                               responsive=responsive(outcome.hours, rational_world.prefs.max_hours))
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
    weights = marginal_welfare_weights(outcome, prefs, population_model.welfare_name, population_model.wage, **population_model.welfare_params)
    expected = saez_bracket_rates(outcome.income, weights, mechanism.cutoffs, MIN_ELASTICITY, planner.max_rate,
                                  responsive(outcome.hours, prefs.max_hours))
    torch.testing.assert_close(theta, expected, atol=1e-6, rtol=0)
    assert planner.fallbacks == planner.iterations
    assert "elasticity" in planner.notes[0] and str(planner.fallbacks) in planner.notes[0]


@pytest.fixture(scope="module")
def capped_census():
    """2,000 census workers, quasi-linear, calibrated to 40 h under US 2024: some sit at the 80 h cap."""
    wage = sample_population(2000, seed=0).wage()
    prefs = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences(eta=0.0, elasticity=0.5, max_hours=80.0))
    return PopulationModel(wage, prefs, RationalWorkers(prefs))


def test_the_elasticity_estimate_is_exact_with_the_cap_binding_for_some_agents(capped_census):
    policy = make_mechanism("us_federal_2024").compile(make_mechanism("us_federal_2024").initial())
    hours = capped_census.respond(policy).hours
    assert (hours >= 80.0 - 1e-6).sum() >= 10  # the cap binds
    assert estimate_elasticity(capped_census, policy) == pytest.approx(0.5, rel=0.02)


def test_the_saez_fixed_point_converges_with_the_cap_binding(capped_census):
    planner = SaezPlanner(make_mechanism("three_bracket"), tolerance=1e-6, max_iterations=500)
    planner.propose(0, [], capped_census)
    assert planner.iterations < 500


def test_workers_at_the_cap_count_in_the_mechanical_term_but_not_the_behavioural_one():
    income = torch.tensor([10_000.0, 60_000.0, 200_000.0], dtype=D)
    weights = torch.tensor([1.5, 1.0, 0.5], dtype=D)
    cutoffs = torch.tensor([0.0, 50_000.0], dtype=D)
    all_respond = saez_bracket_rates(income, weights, cutoffs, 0.5)
    top_capped = saez_bracket_rates(income, weights, cutoffs, 0.5, responsive=torch.tensor([True, True, False]))
    # Top bracket: A = (1 - 1.0) * 10,000 + (1 - 0.5) * 150,000 = 75,000; B = 60,000 without the capped worker.
    assert top_capped[1].item() == pytest.approx(75_000.0 / (75_000.0 + 0.5 * 60_000.0))
    assert all_respond[1].item() == pytest.approx(75_000.0 / (75_000.0 + 0.5 * 260_000.0))


def test_participation_lowers_a_bracket_rate_by_the_revenue_its_leavers_take_along():
    income = torch.tensor([0.0, 20_000.0, 80_000.0], dtype=D)
    weights = torch.tensor([2.0, 0.6, 0.4], dtype=D)
    cutoffs = torch.tensor([0.0, 50_000.0], dtype=D)
    tax = torch.tensor([0.0, 4_000.0, 24_000.0], dtype=D)
    participation = torch.tensor([0.0, 0.3, 0.1], dtype=D) * tax / (income - tax).clamp(min=1.0)
    rates = saez_bracket_rates(income, weights, cutoffs, 0.5, participation=participation)
    # Bottom: A = 0.4 * 20,000 + 0.6 * 50,000 = 38,000; P = 0.3 * 20,000 * 4,000 / 16,000 + 0.1 * 50,000 * 24,000 / 56,000.
    a, p = 38_000.0, 1_500.0 + 5_000.0 * 24 / 56
    assert rates[0].item() == pytest.approx((a - p) / (a - p + 0.5 * 20_000.0))
    # Top: A = 0.6 * 30,000 = 18,000; P = 0.1 * 30,000 * 24,000 / 56,000; B = 80,000.
    a, p = 18_000.0, 3_000.0 * 24 / 56
    assert rates[1].item() == pytest.approx((a - p) / (a - p + 0.5 * 80_000.0))
    # Where leaving costs more than the mechanical effect is worth, the rate is 0, not negative.
    assert saez_bracket_rates(income, weights, cutoffs, 0.5, participation=100 * participation).tolist() == [0.0, 0.0]


def test_with_participation_saez_is_within_two_points_of_the_brute_force_gain_and_five_of_its_rates():
    """The README's participation settings (19% not working, extensive elasticity 0.25), 10,000
    census workers: the formula with both margins against the grid's optimum of the same objective."""
    config = load_config(None, ["economy.share_not_working=0.19", "population.n_agents=10000", "mechanism.name=three_bracket"])
    setup = build_setup(config)
    model, mechanism = setup.model, make_config_mechanism(config)
    planner = SaezPlanner(mechanism)
    saez = planner.propose(0, [], model)
    best = GridPlanner(mechanism, points_per_parameter=11, refine_points=11).propose(0, [], model)
    none = no_tax_planner()
    w0 = float(model.evaluate(none.mechanism, none.theta.unsqueeze(0))[0])
    w_saez, w_best = model.evaluate(mechanism, torch.stack([saez, best])).tolist()
    assert (w_saez - w0) / (w_best - w0) >= 0.98
    assert (saez - best).abs().max() <= 0.05
    # Without the participation term the formula, at the optimum's incomes, taxes the bottom bracket far above it.
    outcome = model.respond(mechanism.compile(best))
    weights = marginal_welfare_weights(outcome, model.prefs, model.welfare_name, model.wage, **model.welfare_params)
    no_margin = saez_bracket_rates(outcome.income, weights, mechanism.cutoffs, model.prefs.elasticity, 1.0, responsive(outcome.hours, 80.0))
    assert no_margin[0] - best[0] > 0.15


def test_on_a_pareto_tail_with_the_cap_saez_captures_99_percent_of_the_brute_force_gain():
    g = torch.Generator().manual_seed(3)
    body = torch.exp(3.0 + 0.5 * torch.randn(3000, generator=g, dtype=D))
    tail = 60.0 * torch.rand(1000, generator=g, dtype=D).pow(-1.0 / 2.5)  # Pareto wages above $60/h
    wage = torch.cat([body, tail])
    prefs = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences(eta=0.0, elasticity=0.5, max_hours=80.0))
    model = PopulationModel(wage, prefs, RationalWorkers(prefs))
    mechanism = make_mechanism("three_bracket")
    assert (model.respond(mechanism.compile(mechanism.initial())).hours >= 80.0 - 1e-6).any()
    saez = SaezPlanner(mechanism).propose(0, [], model)
    best = GridPlanner(mechanism, points_per_parameter=21, refine_points=11).propose(0, [], model)
    none = no_tax_planner()
    w0 = float(model.evaluate(none.mechanism, none.theta.unsqueeze(0))[0])
    w_saez, w_best = model.evaluate(mechanism, torch.stack([saez, best])).tolist()
    assert (w_saez - w0) / (w_best - w0) >= 0.99


def test_rawlsian_weights_stay_finite_when_the_worst_off_sits_at_the_consumption_floor():
    prefs = Preferences(eta=1.0, elasticity=0.5, psi=1e-4)
    consumption = torch.tensor([0.0, 30_000.0, 50_000.0], dtype=D)  # the first worker is below the $1 floor
    hours = torch.tensor([0.0, 40.0, 40.0], dtype=D)
    outcome = Outcome(hours, consumption, torch.zeros(3, dtype=D), torch.zeros(1, dtype=D), consumption, utility(consumption, hours, prefs))
    weights = marginal_welfare_weights(outcome, prefs, "rawlsian")
    assert torch.isfinite(weights).all() and weights.tolist() == [3.0, 0.0, 0.0]


def test_the_saez_comparison_study_puts_saez_within_one_percent_of_the_grids_gain(tmp_path):
    config = load_config("experiments/configs/saez_comparison.yaml",
                         ["economy.years=1", "planners=[{kind: saez}, {kind: grid, points_per_parameter: 21}]"])
    planners = run_comparison(config, tmp_path, progress=False)["planners"]
    assert planners["saez"]["gain_captured_mean"] >= planners["grid"]["gain_captured_mean"] - 1.0
    for name, rate in planners["saez"]["parameters"].items():
        assert abs(rate["mean"] - planners["grid"]["parameters"][name]["mean"]) <= 0.03


def test_a_worker_below_the_consumption_floor_is_weighed_by_its_ability_not_by_the_floors_flat_slope():
    """No tax, quasi-linear utility, 19% not working: those at 0 h consume $0, under the $1 floor.
    A dollar is worth the same utility to everyone, so the ability-weighted function's marginal
    weights are the ability weights themselves, workers or not."""
    config = load_config(None, ["economy.share_not_working=0.19", "population.n_agents=1000"])
    model = build_setup(config).model
    none = no_tax_planner()
    outcome = model.respond(none.mechanism.compile(none.theta))
    idle = outcome.hours == 0
    assert idle.sum() > 100 and (outcome.consumption[idle] < 1.0).all()
    weights = marginal_welfare_weights(outcome, model.prefs, "ability_weighted", model.wage, inequality_aversion=1.0)
    ability = ability_weights(model.wage, 1.0)
    torch.testing.assert_close(weights, ability / ability.mean(), rtol=1e-9, atol=0)
