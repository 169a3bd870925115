"""The vectorised economy against hand computations, closed forms and brute force."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from llm_economist.economy import (
    WEEKS_PER_YEAR,
    Outcome,
    Policy,
    Preferences,
    TaxSchedule,
    best_response_hours,
    calibrate_psi,
    gini,
    hour_bins,
    logit_hour_probabilities,
    marginal_welfare_weights,
    settle,
    social_welfare,
    utility,
)
from llm_economist.config import ConfigError, EconomyConfig
from llm_economist.economy.labour import jensen_shannon, llm_hour_bins, reservation_cost
from llm_economist.economy.utility import annual_income
from llm_economist.factory import CALIBRATION_ROUNDS, calibrated_preferences, calibration_policy, population_units, tastes
from llm_economist.personas import AGE_BANDS, SCHOOLING_GROUPS, sample_population, taste_groups
from llm_economist.planner_factory import load_config

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D)


def test_us_2024_tax_on_hand_computed_incomes():
    us = TaxSchedule.us_federal_2024()
    # 10% of 11,600; + 12% of 35,550; + 22% of 2,850; and every bracket up to $1M.
    expected = [0.0, 1_160.0, 1_160.0 + 4_266.0 + 627.0, 328_187.75]
    assert torch.allclose(us.tax(t([0.0, 11_600.0, 50_000.0, 1_000_000.0])), t(expected))


def test_marginal_rate_at_a_cutoff_is_the_upper_brackets():
    us = TaxSchedule.us_federal_2024()
    assert us.marginal_rate(t([0.0, 11_599.0, 11_600.0, 5e6])).tolist() == [0.10, 0.10, 0.12, 0.37]


def test_average_rate_is_tax_over_income_and_tau0_at_zero():
    us = TaxSchedule.us_federal_2024()
    z = t([0.0, 50_000.0])
    assert torch.allclose(us.average_rate(z), t([0.10, 6_053.0 / 50_000.0]))


def test_batched_rates_equal_one_schedule_at_a_time():
    cut = t([0.0, 30_000.0, 90_000.0])
    rates = torch.rand(6, 3, dtype=D)
    z = torch.rand(6, 50, dtype=D) * 200_000
    batched = TaxSchedule(cut, rates).tax(z)
    for i in range(6):
        assert torch.allclose(batched[i], TaxSchedule(cut, rates[i]).tax(z[i]))


def test_tax_equals_sum_of_bracket_exposures():
    s = TaxSchedule(t([0.0, 10_000.0, 40_000.0]), t([0.1, 0.3, 0.5]))
    z = torch.rand(100, dtype=D) * 100_000
    assert torch.allclose(s.tax(z), (s.exposure(z) * s.rates).sum(-1))


def test_a_shared_schedule_taxes_as_each_agent_s_own_copy_of_it_does():
    """One schedule for all goes bracket by bracket; a schedule per agent searches each agent's
    bracket: the same taxes and the same gradient in the rates (the income in each bracket),
    under rising and falling rates, negative incomes and incomes exactly at a cutoff."""
    cut = t([0.0, 8_000.0, 30_000.0, 90_000.0])
    rates = (torch.rand(5, 4, dtype=D) * 1.6 - 0.6).requires_grad_(True)  # subsidies and falling rates too
    z = torch.cat([torch.rand(5, 40, dtype=D) * 200_000 - 20_000, cut.expand(5, 4)], dim=-1)  # (5, 44)
    shared = TaxSchedule(cut, rates).tax(z)
    own = TaxSchedule(cut.expand(44, 4), rates.unsqueeze(-2).expand(5, 44, 4)).tax(z)
    assert torch.allclose(shared, own, rtol=0, atol=1e-8)
    (grad,) = torch.autograd.grad(shared.sum(), rates)
    below_zero = (z < 0).unsqueeze(-1) & (torch.arange(4) == 0)  # a negative income is taxed at the first rate
    exposure = torch.where(below_zero, z.unsqueeze(-1), TaxSchedule(cut, rates.detach()).exposure(z))
    assert torch.allclose(grad, exposure.sum(dim=-2), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "cutoffs, rates, field",
    [
        ([0.0, 10.0], [0.1, 1.5], "marginal rates must lie in \\[-1, 1\\]"),
        ([0.0, 10.0], [-1.1, 0.2], "marginal rates must lie in \\[-1, 1\\]"),
        ([0.0, 10.0, 5.0], [0.1, 0.2, 0.3], "strictly increasing"),
        ([0.0, 10.0], [0.1], "2 cutoffs need 2 rates"),
        ([5.0, 10.0], [0.1, 0.2], "first cutoff must be 0"),
    ],
)
def test_invalid_schedules_raise_errors_naming_the_problem(cutoffs, rates, field):
    with pytest.raises(ValueError, match=field):
        TaxSchedule(t(cutoffs), t(rates))


def test_quasi_linear_best_response_matches_closed_form_under_a_flat_tax(wages):
    prefs = Preferences(eta=0.0, elasticity=0.5, psi=0.6, max_hours=80.0)
    flat = TaxSchedule(t([0.0]), t([0.3]))
    closed_form = (WEEKS_PER_YEAR * wages * 0.7 / prefs.psi).pow(prefs.elasticity).clamp(max=80.0)
    assert torch.allclose(best_response_hours(wages, flat, 0.0, prefs), closed_form)


def _brute_force_hours(wage, schedule, transfer, prefs, grid=40_001):
    h = torch.linspace(0.0, prefs.max_hours, grid, dtype=D)
    z = WEEKS_PER_YEAR * wage.unsqueeze(-1) * h
    u = utility(z - schedule.tax(z.reshape(-1)).reshape(z.shape) + transfer, h, prefs)
    return u.max(dim=-1).values


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_best_response_is_the_global_optimum_on_convex_and_nonconvex_schedules(eta):
    g = torch.Generator().manual_seed(3)
    wage = torch.exp(3.0 + 0.7 * torch.randn(60, generator=g, dtype=D))
    base = Preferences(eta=eta, elasticity=0.5)
    prefs = calibrate_psi(wage, TaxSchedule.us_federal_2024(), base)
    schedules = [
        TaxSchedule.us_federal_2024(),
        TaxSchedule(t([0.0, 20_000.0, 60_000.0]), t([0.6, 0.1, 0.45])),  # phase-out then lower rate: non-convex
        TaxSchedule(t([0.0, 40_000.0]), t([0.0, 0.9])),
    ]
    for schedule in schedules:
        h = best_response_hours(wage, schedule, 5_000.0, prefs)
        z = WEEKS_PER_YEAR * wage * h
        u_best = utility(z - schedule.tax(z) + 5_000.0, h, prefs)
        u_grid = _brute_force_hours(wage, schedule, 5_000.0, prefs)
        scale = u_grid.abs().clamp(min=1.0)
        assert ((u_grid - u_best) / scale).max() < 1e-6  # never worse than the finest grid point
        assert (h >= 0).all() and (h <= prefs.max_hours).all()


def test_workers_bunch_at_a_kink_when_rates_jump():
    prefs = Preferences(eta=0.0, elasticity=0.5, psi=1.0, max_hours=80.0)
    wage = t([20.0])
    # Unconstrained hours at 10% would be (52*20*0.9)^0.5 = 30.6 h (z = 31,800); at 80% 14.4 h (z = 15,000).
    schedule = TaxSchedule(t([0.0, 20_000.0]), t([0.1, 0.8]))
    h = best_response_hours(wage, schedule, 0.0, prefs)
    assert torch.allclose(WEEKS_PER_YEAR * wage * h, t([20_000.0]))


def test_calibration_hits_the_median_and_hours_respond_to_taxes(wages):
    us = TaxSchedule.us_federal_2024()
    prefs = calibrate_psi(wages, us, Preferences())
    hours = best_response_hours(wages, us, 0.0, prefs)
    assert abs(float(hours.median()) - 40.0) < 0.01
    assert float((hours >= prefs.max_hours - 1e-9).double().mean()) < 0.05  # not everyone at the cap
    higher = TaxSchedule(us.cutoffs, us.rates + 0.1)
    assert float(best_response_hours(wages, higher, 0.0, prefs).mean()) < float(hours.mean()) - 1.0


def test_logit_probabilities_sum_to_one_and_concentrate_as_temperature_falls(wages):
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences())
    schedule = TaxSchedule(t([0.0, 50_000.0]), t([0.2, 0.4]))
    bins = hour_bins(80.0, 161)
    cold = logit_hour_probabilities(wages, schedule, 0.0, prefs, bins, 1e-5)
    warm = logit_hour_probabilities(wages, schedule, 0.0, prefs, bins, 0.2)
    assert torch.allclose(cold.sum(-1), torch.ones(len(wages), dtype=D))
    exact = best_response_hours(wages, schedule, 0.0, prefs)
    assert (cold @ bins - exact).abs().max() <= 0.5 + 1e-9  # within half a bin of the optimum
    assert (warm.max(-1).values < cold.max(-1).values).all()


def test_expected_logit_hours_are_differentiable_in_the_rates(wages):
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences())
    rates = t([0.2, 0.3]).requires_grad_(True)
    schedule = TaxSchedule(t([0.0, 50_000.0]), rates)
    bins = hour_bins(80.0, 33)
    mean_hours = (logit_hour_probabilities(wages, schedule, 0.0, prefs, bins, 0.05) @ bins).mean()
    (grad,) = torch.autograd.grad(mean_hours, rates)
    assert torch.isfinite(grad).all() and (grad < 0).all()  # higher rates, fewer hours


def _outcome(income, consumption, utility_values):
    z, c, u = t(income), t(consumption), t(utility_values)
    return Outcome(torch.zeros_like(z), z, torch.zeros_like(z), torch.zeros(1, dtype=D), c, u)


def test_welfare_functions_against_their_definitions():
    o = _outcome([0.0, 20_000.0, 80_000.0], [10_000.0, 25_000.0, 70_000.0], [1.0, 2.0, 6.0])
    assert social_welfare(o, "utilitarian").item() == pytest.approx(3.0)
    assert social_welfare(o, "rawlsian").item() == pytest.approx(1.0)
    w = [1 / 10_000, 1 / 20_000, 1 / 80_000]  # the zero income weighs as the floor
    expected = (w[0] * 1 + w[1] * 2 + w[2] * 6) / sum(w)
    assert social_welfare(o, "inverse_income", income_floor=10_000.0).item() == pytest.approx(expected)
    assert social_welfare(o, "atkinson", inequality_aversion=0.0).item() == pytest.approx(35_000.0)
    geometric = (10_000.0 * 25_000.0 * 70_000.0) ** (1 / 3)
    assert social_welfare(o, "atkinson", inequality_aversion=1.0).item() == pytest.approx(geometric)
    gini_c = float(gini(t([10_000.0, 25_000.0, 70_000.0])))
    assert social_welfare(o, "equality_productivity").item() == pytest.approx((1 - gini_c) * 100_000.0 / 3)
    with pytest.raises(ValueError, match="unknown function 'nope'"):
        social_welfare(o, "nope")
    wage = t([10.0, 20.0, 40.0])  # ability weights (w / mean w)^-1 normalised to mean 1: 1/w over the mean of 1/w
    inverse = [1 / 10.0, 1 / 20.0, 1 / 40.0]
    weights = [x / (sum(inverse) / 3) for x in inverse]
    by_ability = (weights[0] * 1 + weights[1] * 2 + weights[2] * 6) / 3
    assert social_welfare(o, "ability_weighted", wage).item() == pytest.approx(by_ability)
    # A float32 population whose utilities came out in float64 (a float64 fixed cost) is scored the same.
    assert social_welfare(o, "ability_weighted", wage.float()).item() == pytest.approx(by_ability)
    batch = replace(o, utility=torch.stack([o.utility, 2 * o.utility]))
    assert social_welfare(batch, "ability_weighted", wage).tolist() == pytest.approx([by_ability, 2 * by_ability])


def test_gini_matches_the_pairwise_definition():
    x = torch.rand(200, dtype=D) * 1000
    pairwise = (x.unsqueeze(0) - x.unsqueeze(1)).abs().sum() / (2 * len(x) ** 2 * x.mean())
    assert float(gini(x)) == pytest.approx(float(pairwise))
    assert float(gini(torch.ones(10, dtype=D))) == pytest.approx(0.0)
    assert float(gini(t([0.0, 0.0, 0.0, 5.0]))) == pytest.approx(0.75)


def test_marginal_welfare_weights_are_inverse_income_in_the_quasi_linear_case():
    prefs = Preferences(eta=0.0, psi=1.0)
    o = _outcome([5_000.0, 20_000.0, 40_000.0], [9_000.0, 20_000.0, 35_000.0], [0.0, 0.0, 0.0])
    g = marginal_welfare_weights(o, prefs, "inverse_income", income_floor=10_000.0)
    raw = t([1 / 10_000, 1 / 20_000, 1 / 40_000])
    assert torch.allclose(g, raw / raw.mean())


def test_settle_balances_the_budget_when_revenue_is_rebated(wages):
    prefs = Preferences(psi=0.6)
    policy = Policy(TaxSchedule.us_federal_2024(), rebate_share=1.0)
    hours = torch.full_like(wages, 40.0)
    o = settle(wages, hours, policy, prefs)
    assert torch.allclose(o.consumption.sum(), o.income.sum())  # taxes come back as transfers
    assert torch.allclose(o.transfer, o.tax.mean().reshape(1))


def test_convex_quasi_linear_shortcut_agrees_with_the_segment_search(wages):
    from llm_economist.economy.labour import _best_of_segments, _quasi_linear_convex_hours, zero_tax_income

    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences())
    g = torch.Generator().manual_seed(5)
    cutoffs = torch.tensor([0.0, 30_000.0, 70_000.0, 150_000.0], dtype=D)
    rates = torch.sort(torch.rand(32, 4, generator=g, dtype=D), dim=-1).values  # non-decreasing: convex
    schedule = TaxSchedule(cutoffs, rates)
    shortcut = _quasi_linear_convex_hours(wages, schedule, prefs, zero_tax_income(wages, prefs))
    assert torch.allclose(shortcut, _best_of_segments(wages, schedule, 0.0, prefs), atol=1e-9)


def test_rational_workers_keep_a_populations_zero_tax_income_but_answer_new_wages_anew(wages):
    from llm_economist.workers import RationalWorkers

    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences())
    policy = Policy(TaxSchedule(torch.tensor([0.0, 40_000.0], dtype=D), torch.tensor([0.1, 0.3], dtype=D)), rebate_share=1.0)
    workers = RationalWorkers(prefs)
    others = wages.flip(0) * 1.5
    for wage in (wages, others, wages):  # the kept value follows the wages asked about
        expected = best_response_hours(wage, policy.schedule, 0.0, prefs)
        assert torch.equal(workers.expected_hours(wage, policy, 0.0), expected)
    assert not torch.equal(best_response_hours(others, policy.schedule, 0.0, prefs), best_response_hours(wages, policy.schedule, 0.0, prefs))


def test_llm_hour_bins_are_tens_whose_first_digit_names_the_bin():
    assert llm_hour_bins(80.0) == (0, 10, 20, 30, 40, 50, 60, 70, 80)
    assert llm_hour_bins(168.0)[-1] == 90 and llm_hour_bins(45.5) == (0, 10, 20, 30, 40)
    with pytest.raises(ValueError, match="at least 10"):
        llm_hour_bins(9.0)


def _old_workers_js(p, q):
    """workers/llm.py's JS divergence before it moved to scipy (numpy, one pair)."""
    p_, q_ = np.asarray(p, float), np.asarray(q, float)
    m = 0.5 * (p_ + q_)

    def kl(a, b):
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / b[mask])).sum())

    return 0.5 * kl(p_, m) + 0.5 * kl(q_, m)


def _old_evaluate_js(p, q):
    """distill/evaluate.py's JS divergence before it moved to scipy (torch, along the last axis)."""
    m = 0.5 * (p + q)

    def kl(a, b):
        return torch.where(a > 0, a * (torch.log2(a.clamp_min(1e-30)) - torch.log2(b.clamp_min(1e-30))), 0.0).sum(-1)

    return (0.5 * kl(p, m) + 0.5 * kl(q, m)).clamp_min(0.0)


JS_PAIRS = [
    ([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]),
    ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),  # disjoint: 1 bit
    ([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]),
    ([0.1, 0.2, 0.7], [0.1, 0.2, 0.7]),  # identical: 0
    ([0.0, 0.1, 0.0, 0.9], [0.25, 0.25, 0.25, 0.25]),
    ([0.395, 0.593, 0.012], [0.395 + 1e-15, 0.593 - 1e-15, 0.012]),  # rounds below zero inside scipy
]


@pytest.mark.parametrize("p, q", JS_PAIRS)
def test_jensen_shannon_gives_the_numbers_of_the_hand_written_versions(p, q):
    got = jensen_shannon(p, q)
    assert isinstance(got, float)
    assert got == pytest.approx(_old_workers_js(p, q), abs=1e-12)
    assert got == pytest.approx(float(_old_evaluate_js(t(p), t(q))), abs=1e-12)
    assert got == pytest.approx(jensen_shannon(q, p), abs=1e-15)


def test_jensen_shannon_runs_along_the_last_axis_of_batches():
    p = torch.tensor([pair[0] for pair in JS_PAIRS if len(pair[0]) == 3], dtype=torch.float32).reshape(-1, 1, 3)
    q = torch.tensor([pair[1] for pair in JS_PAIRS if len(pair[1]) == 3], dtype=torch.float32).reshape(-1, 1, 3)
    got = jensen_shannon(p, q)
    assert got.shape == (5, 1)
    assert np.allclose(got, _old_evaluate_js(p, q).numpy(), atol=1e-6)
    assert got[1, 0] == pytest.approx(1.0) and got[3, 0] == 0.0


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("transfer", [-40_000.0, -5_000.0, 0.0, 8_000.0])
@pytest.mark.parametrize("rates", [(0.3, 0.2), (0.2, 0.3)])
def test_best_response_beats_a_brute_force_grid_under_the_consumption_floor(eta, transfer, rates):
    # A falling rate makes the budget non-convex; a rising one takes the quasi-linear closed form.
    # A large negative transfer pushes low earners below the consumption floor, where not working
    # beats any interior choice.
    wage = torch.tensor([10.0, 25.0, 60.0], dtype=D)
    prefs = Preferences(eta=eta, elasticity=0.5, psi=0.3 if eta == 0 else 1e-4, max_hours=80.0)
    schedule = TaxSchedule(torch.tensor([0.0, 30_000.0], dtype=D), torch.tensor(rates, dtype=D))
    t = torch.tensor([transfer], dtype=D)
    hours = best_response_hours(wage, schedule, t, prefs)
    grid = torch.arange(0.0, 80.0 + 1e-9, 0.01, dtype=D)
    z = 52.0 * wage.unsqueeze(-1) * grid
    brute = utility(z - schedule.tax(z) + transfer, grid.expand_as(z), prefs).max(dim=-1).values
    chosen = 52.0 * wage * hours
    mine = utility(chosen - schedule.tax(chosen) + transfer, hours, prefs)
    assert (mine >= brute - 1e-6 * brute.abs().clamp(min=1.0)).all()


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_calibration_hits_the_median_target_with_the_rebate_it_implies(eta):
    wage = sample_population(1000, seed=0).wage()
    prefs, figures = calibrated_preferences(EconomyConfig(eta=eta), wage)
    us = calibration_policy().schedule
    rebate = figures["rebate_us_2024"]
    hours = best_response_hours(wage, us, rebate, prefs)
    assert float(hours.median()) == pytest.approx(40.0, abs=0.1)
    assert rebate == pytest.approx(float(us.tax(annual_income(wage, hours)).mean()), abs=2.0)  # the rebate pays out the revenue


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_best_response_with_fixed_costs_of_working_beats_a_brute_force_grid(eta):
    """Workers with a fixed cost of working choose 0 h exactly when no positive hours pay more."""
    g = torch.Generator().manual_seed(5)
    wage = torch.exp(2.8 + 0.6 * torch.randn(80, generator=g, dtype=D))
    costs = 20_000.0 * torch.rand(80, generator=g, dtype=D)
    base = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences(eta=eta, elasticity=0.33))
    prefs = replace(base, fixed_cost=costs)
    for schedule in (TaxSchedule.us_federal_2024(), TaxSchedule(t([0.0, 15_000.0]), t([0.5, 0.2]))):
        hours = _no_grid_point_beats(wage, schedule, 8_000.0, prefs)
        assert 0 < int((hours == 0).sum()) < 80  # some work and some do not


def _no_grid_point_beats(wage, schedule, transfer, prefs):
    """The best response, after checking that no hours on a 0.01 h grid give any worker more utility."""
    hours = best_response_hours(wage, schedule, transfer, prefs)
    grid = torch.arange(0.0, 80.0 + 1e-9, 0.01, dtype=D)
    z = 52.0 * wage.unsqueeze(-1) * grid
    brute = utility(z - schedule.tax(z) + transfer, grid.expand_as(z), prefs, agent_axis=-2).max(dim=-1).values
    chosen = 52.0 * wage * hours
    mine = utility(chosen - schedule.tax(chosen) + transfer, hours, prefs)
    assert (mine >= brute - 1e-6 * brute.abs().clamp(min=1.0)).all()
    return hours


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("with_costs", [False, True])
def test_best_response_with_each_workers_own_taste_for_leisure_beats_a_brute_force_grid(eta, with_costs):
    """Workers whose disutility of work is their own multiple of psi (0.3x to 3x) choose hours no
    point of a 0.01 h grid beats, on the convex fast path (eta = 0, no fixed cost), the general
    one and with fixed costs; a worker with twice the taste works less than its twin."""
    g = torch.Generator().manual_seed(6)
    wage = torch.exp(2.8 + 0.6 * torch.randn(60, generator=g, dtype=D))
    taste = torch.exp(1.1 * (2 * torch.rand(60, generator=g, dtype=D) - 1))
    base = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences(eta=eta, elasticity=0.33))
    prefs = replace(base, disutility=taste, fixed_cost=5_000.0 * torch.rand(60, generator=g, dtype=D) if with_costs else 0.0)
    schedule = TaxSchedule.us_federal_2024()
    hours = _no_grid_point_beats(wage, schedule, 8_000.0, prefs)
    twice = best_response_hours(wage, schedule, 8_000.0, replace(prefs, disutility=2 * taste))
    working = (hours > 0) & (twice > 0)
    assert working.sum() > 30 and (twice[working] < hours[working]).all()


def test_further_types_of_worker_take_their_shares_and_multiples_of_the_same_log_normal_tastes():
    """Each type's share of 200,000 workers within 4 standard errors, its taste exactly its multiple
    of the taste the worker has without types (the log-normal draws are not moved by the types)."""
    wage = torch.exp(2.8 + 0.6 * torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=D))
    one = tastes(EconomyConfig(disutility_spread=0.3, disutility_wage_slope=0.5), wage, seed=3)
    typed = tastes(EconomyConfig(disutility_spread=0.3, disutility_wage_slope=0.5, disutility_types=[[0.2, 0.3], [0.05, 8.0]]), wage, seed=3)
    ratio = typed / one
    for share, multiple in ((0.2, 0.3), (0.05, 8.0), (0.75, 1.0)):
        found = float(((ratio - multiple).abs() < 1e-9).double().mean())
        assert abs(found - share) < 4 * (share * (1 - share) / len(wage)) ** 0.5
    assert tastes(EconomyConfig(), wage, seed=3) == 1.0


def test_an_age_band_s_own_type_shares_are_drawn_there_and_the_others_keep_the_shares_for_all():
    population = sample_population(60_000, seed=5)
    wage, groups = population.wage(), taste_groups(population)
    types = [[0.2, 0.3], [0.05, 8.0]]
    base = EconomyConfig(disutility_spread=0.3, disutility_types=types)
    by_age = base.model_copy(update={"disutility_type_shares_by_age": {"16-24": [0.1, 0.3], "65+": [0.2, 0.4]}})
    ratio = tastes(by_age, wage, 3, groups) / tastes(EconomyConfig(disutility_spread=0.3), wage, 3, groups)
    for band in AGE_BANDS:
        members = torch.from_numpy(groups["age_band"] == band)
        shares = {"16-24": (0.1, 0.3), "65+": (0.2, 0.4)}.get(band, (0.2, 0.05))
        for share, (_, multiple) in zip(shares, types):
            found = float(((ratio[members] - multiple).abs() < 1e-9).double().mean())
            assert abs(found - share) < 4 * (share * (1 - share) / int(members.sum())) ** 0.5, (band, multiple, found)
    with pytest.raises(ConfigError, match="economy.disutility_type_shares_by_age"):
        tastes(by_age, wage, 3, {"schooling": groups["schooling"]})
    for bad in ("{16-24: [0.1]}", "{16-24: [0.6, 0.5]}", "{16-24: [0.0, 0.1]}"):
        with pytest.raises(ConfigError, match="disutility_type_shares_by_age"):
            load_config(None, ["economy.disutility_types=[[0.2, 0.3], [0.05, 8.0]]", f"economy.disutility_type_shares_by_age={bad}"])


def test_a_schooling_group_s_and_an_age_band_s_tastes_are_their_multiples_and_a_config_without_them_is_refused():
    population = sample_population(3000, seed=2)
    wage, groups = population.wage(), taste_groups(population)
    base = EconomyConfig(disutility_spread=0.3, disutility_wage_slope=0.5)
    by_schooling, by_age = {"less_than_high_school": 1.8, "bachelors_or_more": 0.7}, {"16-24": 1.6, "65+": 2.5}
    shifted = base.model_copy(update={"disutility_by_schooling": by_schooling, "disutility_by_age": by_age})
    ratio = (tastes(shifted, wage, 3, groups) / tastes(base, wage, 3, groups)).numpy()
    for group in SCHOOLING_GROUPS:
        for band in AGE_BANDS:
            members = (groups["schooling"] == group) & (groups["age_band"] == band)
            expected = by_schooling.get(group, 1.0) * by_age.get(band, 1.0)
            assert members.any() and np.allclose(ratio[members], expected, rtol=1e-12), (group, band)
    with pytest.raises(ConfigError, match="economy.disutility_by_schooling"):
        tastes(shifted, wage, 3)
    with pytest.raises(ConfigError, match="economy.disutility_by_age"):
        tastes(base.model_copy(update={"disutility_by_age": by_age}), wage, 3, {"schooling": groups["schooling"]})
    for field, bad in (("disutility_by_schooling", "{high_school: 0}"), ("disutility_by_schooling", "{graduate: 1.2}"),
                       ("disutility_by_age", "{16-24: 0}"), ("disutility_by_age", "{18-24: 1.2}")):
        with pytest.raises(ConfigError, match=field):
            load_config(None, [f"economy.{field}={bad}"])


def test_calibration_stops_when_a_worker_flips_between_two_equally_good_hours():
    """On this sample one worker sits where two hours are equally good under the EITC, and flips
    between them as psi moves in its last digit: the calibration ends on the repeat, not after
    every round it may take."""
    population = sample_population(4000, seed=0)
    prefs, figures = calibrated_preferences(EconomyConfig(), population.wage(), 0, population_units(population))
    assert figures["calibration_rounds"] < CALIBRATION_ROUNDS / 2
    assert figures["median_hours_us_2024"] == pytest.approx(40.0, abs=0.1)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_the_reservation_cost_is_where_working_stops_paying(eta):
    wage = sample_population(200, seed=1).wage()
    us = TaxSchedule.us_federal_2024()
    prefs = calibrate_psi(wage, us, Preferences(eta=eta, elasticity=0.33))
    reserve = reservation_cost(wage, us, 10_000.0, prefs)
    below = best_response_hours(wage, us, 10_000.0, replace(prefs, fixed_cost=0.99 * reserve))
    above = best_response_hours(wage, us, 10_000.0, replace(prefs, fixed_cost=1.01 * reserve))
    assert (below > 0).all() and (above == 0).all()


def test_participation_calibration_hits_its_targets_and_reports_them():
    """19% at 0 h and an extensive-margin elasticity of 0.25 (Chetty 2012) under US 2024 with the
    rebate; the elasticity measured afresh by moving everyone's take-home pay from work by +-5%."""
    wage = sample_population(1000, seed=0).wage()
    prefs, figures = calibrated_preferences(EconomyConfig(share_not_working=0.19, extensive_elasticity=0.25), wage, seed=4)
    us, rebate = calibration_policy().schedule, figures["rebate_us_2024"]
    hours = best_response_hours(wage, us, rebate, prefs)
    assert float((hours == 0).double().mean()) == pytest.approx(0.19, abs=0.005)
    assert float(hours[hours > 0].median()) == pytest.approx(40.0, abs=0.1)

    def working(scale):
        return float((best_response_hours(wage * scale, TaxSchedule(us.cutoffs * scale, us.rates), rebate, prefs) > 0).double().mean())

    elasticity = (working(1.05) - working(0.95)) / (0.1 * working(1.0))
    assert elasticity == pytest.approx(0.25, rel=0.1)
    assert figures["extensive_elasticity_us_2024"] == pytest.approx(elasticity, rel=0.1)
    assert figures["share_zero_hours_us_2024"] == pytest.approx(0.19, abs=0.005) and figures["intensive_elasticity"] == 0.33


def test_a_population_larger_than_a_chunk_gets_the_best_response_it_gets_in_one_pass(monkeypatch):
    """Filing groups' own schedules, fixed costs and a batch of two policies, chunk by chunk with a
    last short chunk, against the same population in one pass."""
    from llm_economist.economy import tax
    from llm_economist.factory import population_units
    from llm_economist.mechanisms import make_mechanism

    population = sample_population(1_000, seed=4)
    wage, units = population.wage(), population_units(population)
    g = torch.Generator().manual_seed(4)
    prefs = replace(calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences()), fixed_cost=15_000.0 * torch.rand(1_000, generator=g, dtype=D))
    mechanism = make_mechanism("us_tax_2024")
    thetas = torch.stack([mechanism.initial(), torch.full((7,), 0.3, dtype=D)])
    schedule = mechanism.compile(thetas).for_agents(units).schedule
    monkeypatch.setattr(tax, "AGENT_CHUNK", 96)
    chunked = best_response_hours(wage, schedule, 5_000.0, prefs)
    monkeypatch.setattr(tax, "AGENT_CHUNK", 10**9)
    whole = best_response_hours(wage, schedule, 5_000.0, prefs)
    assert chunked.shape == (2, 1_000) and 0 < int((whole == 0).sum())
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)
