"""The welfare expected over the workers' stated hour distributions: the mean of sampled
periods' welfare, with far less noise than one sampled period."""

import torch

from llm_economist.economy.outcome import settle
from llm_economist.factory import build_setup, make_config_mechanism
from llm_economist.planner_factory import load_config
from llm_economist.simulation import Carried, expected_welfare, play_period
from llm_economist.workers.base import Decisions

SETTINGS = ["workers.kind=bounded", "workers.hour_bins=9", "workers.temperature=0.05", "population.n_agents=300", "seed=3"]


def one_period():
    config = load_config(None, SETTINGS)
    setup = build_setup(config)
    mechanism = make_config_mechanism(config)
    period, _ = play_period(setup.model, mechanism.compile(mechanism.initial()), Carried(), 0, 0, 0, torch.Generator().manual_seed(1))
    return setup.model, period


def sampled_welfare(model, period, draws: int, seed: int) -> torch.Tensor:
    """Welfare of `draws` independent periods, every worker drawing from its stated distribution."""
    probs = period.decisions.columns["hour_distribution"]
    choice = torch.multinomial(probs.expand(draws, -1, -1).reshape(-1, probs.shape[-1]), 1, generator=torch.Generator().manual_seed(seed))
    hours = model.workers.bins.to(model.wage.dtype)[choice.reshape(draws, -1)]
    return model.welfare(settle(model.wage, hours, period.policy, model.prefs))


def test_expected_welfare_is_the_mean_of_sampled_periods_with_less_noise():
    model, period = one_period()
    expected = period.metrics(model)["expected_welfare"]
    sampled = sampled_welfare(model, period, 2000, seed=11)
    standard_error = float(sampled.std() / sampled.shape[0] ** 0.5)
    assert abs(expected - float(sampled.mean())) < 4 * standard_error
    # Other random numbers (another step): the expectation moves far less than one sampled period does.
    again = torch.tensor([expected_welfare(model, period.policy, period.decisions, period.outcome.hours, step) for step in range(1, 9)])
    assert float(again.std()) < float(sampled.std()) / 5


def test_point_masses_and_fallbacks_give_the_realised_welfare():
    model, period = one_period()
    bins = model.workers.bins.to(model.wage.dtype)
    hours = bins[torch.arange(model.wage.shape[0]) % len(bins)]
    rows = [None if i % 7 == 0 else torch.nn.functional.one_hot(torch.tensor(i % len(bins)), len(bins)).tolist()
            for i in range(len(hours))]  # language-model rows: a list per worker, None where it fell back
    realised = float(model.welfare(settle(model.wage, hours, period.policy, model.prefs)))
    found = expected_welfare(model, period.policy, Decisions(hours, {"hour_distribution": rows}), hours, step=0)
    assert abs(found - realised) <= 1e-9 * abs(realised)
    assert expected_welfare(model, period.policy, Decisions(hours), hours, step=0) is None
    assert expected_welfare(model, period.policy, Decisions(hours, {"hour_distribution": [None] * len(hours)}), hours, step=0) is None


def test_hours_outside_the_feasible_range_are_held_to_it_and_feasible_hours_are_kept_as_they_are():
    from llm_economist.simulation import feasible_hours

    strays = torch.tensor([-3.0, 0.0, 41.5, 80.0, 95.0], dtype=torch.float64)
    assert torch.equal(feasible_hours(strays, 80.0), torch.tensor([0.0, 0.0, 41.5, 80.0, 80.0], dtype=torch.float64))
    inside = torch.tensor([[0.0, 12.0], [80.0, 79.5]], dtype=torch.float64)
    assert torch.equal(feasible_hours(inside, 80.0), inside)
    assert torch.equal(feasible_hours(inside, 79.0), torch.tensor([[0.0, 12.0], [79.0, 79.0]], dtype=torch.float64))
