"""Language-model workers, planner and voters over loopback: the real openai client against the
real embedded SmolLM2 server."""

import pytest
import torch

from llm_economist.economy import Preferences, TaxSchedule, calibrate_psi
from llm_economist.llm import LLMSettings, open_client
from llm_economist.governance import Platform, hold_election
from llm_economist.mechanisms import make_mechanism
from llm_economist.personas import population_graph, sample_population
from llm_economist.planners.base import YearRecord
from llm_economist.planners.llm import LLMPlanner
from llm_economist.workers import Observation
from llm_economist.workers.llm import LLMWorkers, hour_distribution
from llm_economist.population_model import PopulationModel
from llm_economist.economy import settle

D = torch.float64


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    cache = tmp_path_factory.mktemp("llm") / "cache.sqlite"
    with open_client(LLMSettings(concurrency=4, max_tokens=120, cache_path=str(cache))) as c:
        yield c


@pytest.fixture(scope="module")
def economy(client):
    population = sample_population(6, seed=3)
    wage = population.wage()
    prefs = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences())
    workers = LLMWorkers(population, population_graph(population, 3), client, prefs, seed=3, decision_format="narrative")
    return population, PopulationModel(wage, prefs, workers)


def _observe(population_model, mechanism, step=0, recent=(), last_decisions=None):
    policy = mechanism.compile(mechanism.initial())
    transfer = recent[-1].transfer if recent else torch.zeros(1, dtype=D)
    return Observation(population_model.wage, policy, transfer, tuple(recent), last_decisions, 0, step)


def test_a_worker_step_returns_hours_on_the_bins_with_scored_distributions(economy, client):
    _, population_model = economy
    mechanism = make_mechanism("three_bracket")
    first = population_model.workers.act(_observe(population_model, mechanism), torch.Generator().manual_seed(0))
    assert set(first.hours.tolist()) <= set(range(0, 81, 10))
    for dist, fallback in zip(first.columns["hour_distribution"], first.columns["fallback"]):
        assert fallback or abs(sum(dist) - 1.0) < 1e-9
    assert first.diagnostics["llm_scored"] >= 1
    # The second period shows the workers their outcome and their contacts' messages.
    outcome = settle(population_model.wage, first.hours, mechanism.compile(mechanism.initial()), population_model.prefs)
    obs = _observe(population_model, mechanism, step=1, recent=(outcome,), last_decisions=first)
    prompt = population_model.workers.request(0, obs).messages[1][1]
    assert "Last week you worked" in prompt and "Your contacts" in prompt
    assert f"You earn ${float(population_model.wage[0]):,.2f} an hour" in prompt
    second = population_model.workers.act(obs, torch.Generator().manual_seed(0))
    mean_prompt = second.diagnostics["llm_prompt_tokens"] / second.diagnostics["llm_decisions"]
    assert 50 < mean_prompt <= 500


def test_the_same_decisions_again_come_from_the_cache(economy, client):
    _, population_model = economy
    mechanism = make_mechanism("three_bracket")
    obs = _observe(population_model, mechanism)
    before = client.usage.http_calls
    again = population_model.workers.act(obs, torch.Generator().manual_seed(0))
    assert client.usage.http_calls == before
    assert all(again.columns["cached"])


def test_a_planner_step_proposes_parameters_inside_the_bounds(economy, client):
    _, population_model = economy
    mechanism = make_mechanism("three_bracket")
    planner = LLMPlanner(mechanism, client)
    history = [
        YearRecord(0, torch.tensor([0.1, 0.2, 0.3], dtype=D), 30_000.0,
                   {"mean_hours": 38.0, "revenue": 9_000.0, "gini_consumption": 0.3}),
        YearRecord(1, torch.tensor([0.2, 0.2, 0.3], dtype=D), 31_000.0,
                   {"mean_hours": 37.0, "revenue": 11_000.0, "gini_consumption": 0.28}),
    ]
    prompt = planner.prompt(2, history, "inverse_income")
    assert "Best so far: year 1" in prompt and "rate_0 +0.1" in prompt
    theta = planner.propose(2, history, population_model)
    low, high = mechanism.bounds()
    assert (theta >= low).all() and (theta <= high).all()
    assert planner.log[-1]["failure"] is None  # constrained decoding: the reply fits the schema


def test_an_election_with_language_model_ballots(economy):
    _, population_model = economy
    mechanism = make_mechanism("three_bracket")
    platforms = [
        Platform("status quo", "status_quo", torch.tensor([0.1, 0.2, 0.3], dtype=D)),
        Platform("high", "config", torch.tensor([0.5, 0.5, 0.5], dtype=D)),
        Platform("none", "config", torch.tensor([0.0, 0.0, 0.0], dtype=D)),
    ]
    ballots, diagnostics = population_model.workers.ballots(platforms, mechanism, population_model, None, year=0)
    assert ballots.rankings.shape == (6, 3)
    assert (ballots.rankings.sort(dim=1).values == torch.arange(3)).all()  # full rankings
    assert diagnostics["vote_calls"] == 6
    for rule in ("plurality", "instant_runoff", "approval"):
        result = hold_election(rule, platforms, ballots)
        assert 0 <= result.winner < 3


def test_hour_distribution_reads_the_first_digit_alternatives():
    import math

    from llm_economist.llm import TokenLogprob

    tokens = [
        TokenLogprob('{"', -0.1, ()), TokenLogprob("hours", -0.1, ()), TokenLogprob('":', -0.1, ()),
        TokenLogprob(" 4", -0.5, ((" 4", -0.5), ("3", -1.5), ("40", -2.0), ("9", -1.0), ("x", -3.0), ("²", -1.2))),
        TokenLogprob("0", -0.1, ()),
    ]
    dist = hour_distribution(tokens, (0, 10, 20, 30, 40, 50, 60, 70, 80))
    raw = {40: math.exp(-0.5) + math.exp(-2.0), 30: math.exp(-1.5)}  # "9" -> 90 h is not a bin; "x" and "²" name none
    total = sum(raw.values())
    assert dist[4] == pytest.approx(raw[40] / total) and dist[3] == pytest.approx(raw[30] / total)
    assert sum(dist) == pytest.approx(1.0)
    # At the sampling temperature T each alternative weighs exp(logprob / T), as the sampler draws it.
    cool = hour_distribution(tokens, (0, 10, 20, 30, 40, 50, 60, 70, 80), temperature=0.5)
    tempered = {40: math.exp(-0.5 / 0.5) + math.exp(-2.0 / 0.5), 30: math.exp(-1.5 / 0.5)}
    assert cool[3] == pytest.approx(tempered[30] / sum(tempered.values()))
    assert cool[4] > dist[4]
    greedy = hour_distribution(tokens, (0, 10, 20, 30, 40, 50, 60, 70, 80), temperature=0.0)
    assert greedy[4] == 1.0 and sum(greedy) == 1.0


@pytest.fixture(scope="module")
def menu_economy(client):
    population = sample_population(6, seed=3)
    wage = population.wage()
    prefs = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences())
    workers = LLMWorkers(population, population_graph(population, 3), client, prefs, seed=3, decision_format="budget_menu",
                         satisfaction=True)
    return population, PopulationModel(wage, prefs, workers)


def test_the_budget_menu_lists_what_each_choice_leaves_to_spend(menu_economy):
    population, population_model = menu_economy
    workers = population_model.workers
    obs = Observation(population_model.wage, make_mechanism("three_bracket").compile(torch.tensor([0.1, 0.2, 0.3], dtype=D)),
                      torch.tensor([12_000.0], dtype=D), (), None, 0, 0)
    text = workers.request(0, obs).messages[1][1]
    wage = float(population.table["hourly_wage"].iloc[0])
    for hours in (0, 40, 80):  # by hand: 10% to $50k, 20% to $150k, 30% above, plus the equal payment
        z = 52 * wage * hours
        tax = 0.1 * min(z, 50_000) + 0.2 * min(max(z - 50_000, 0), 100_000) + 0.3 * max(z - 150_000, 0)
        spend = (z - tax + 12_000) / 1000
        assert f"\n{hours} h: ${spend:,.1f}".removesuffix(".0") + "k" in text
    assert f"You earn ${wage:,.2f} an hour" in text and "earning about" not in text  # the wage is stated once, exactly


def test_option_order_is_shuffled_per_agent_recorded_and_reversed_on_request(menu_economy):
    _, population_model = menu_economy
    workers = population_model.workers
    obs = _observe(population_model, make_mechanism("three_bracket"))
    orders = [workers.options(a, obs) for a in range(6)]
    assert all(sorted(o) == list(workers.bins) for o in orders) and len(set(orders)) > 1
    assert workers.options(2, obs) == orders[2]  # fixed for the agent and seed
    reversed_obs = Observation(obs.wage, obs.policy, obs.expected_transfer, (), None, 0, 0, reverse_options=True)
    assert workers.options(2, reversed_obs) == orders[2][::-1]
    decisions = workers.act(obs, torch.Generator().manual_seed(0))
    assert decisions.columns["option_order"] == [",".join(map(str, o)) for o in orders]


def test_budget_menu_replies_put_the_hour_digit_right_after_the_fixed_prefix(menu_economy, client):
    import re

    _, population_model = menu_economy
    obs = _observe(population_model, make_mechanism("three_bracket"))
    decisions = population_model.workers.act(obs, torch.Generator().manual_seed(0))
    replies = client.complete_many([population_model.workers.request(a, obs) for a in range(6)])  # from the cache
    for reply in replies:  # the embedded server decodes the exact grammar: no whitespace anywhere to choose
        assert re.fullmatch(r'\{"hours": \d+, "fairness": [1-5], "trust": [1-5], "stress": [1-5]\}', reply.text)
        assert [t.token for t in reply.logprobs[:3]] and reply.logprobs is not None
    assert decisions.diagnostics["llm_scored"] == 6
    assert decisions.diagnostics["llm_prompt_tokens"] / 6 <= 500
