"""Specification of the environments: the PettingZoo labour market and the Gymnasium planner env."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env, data_equivalence
from pettingzoo import AECEnv
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
from pettingzoo.utils import parallel_to_aec
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from llm_economist.config import RunConfig
from llm_economist.planner_factory import load_config
from llm_economist.economy import Preferences, TaxSchedule, calibrate_psi, settle, social_welfare
from llm_economist.economy.utility import utility
from llm_economist.envs import PLANNER, PLANNER_ENV_ID, LabourMarketEnv, PlannerEnv, labour_market
from llm_economist.envs.labour_market import PLANNER_FEATURES, WORKER_FEATURES
from llm_economist.factory import build_setup, config_population
from llm_economist.mechanisms import make_mechanism
from llm_economist.mechanisms.builtin import THREE_BRACKET_CUTOFFS
from llm_economist.workers import BoundedRationalWorkers, RationalWorkers

# Expected advice from the API checkers: some observations (transfers, welfare) are unbounded,
# the planner is not numbered, and workers and planner see vectors of different lengths.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*infinity"),
    pytest.mark.filterwarnings("ignore:We recommend agents to be named"),
    pytest.mark.filterwarnings("ignore:Agents have different observation space sizes"),
    pytest.mark.filterwarnings("ignore:Observations are different shapes"),
]

N = 5
STEPS_PER_YEAR = 3
YEARS = 2


def wages(n: int = N, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.exp(3.2 + 0.6 * torch.randn(n, generator=g, dtype=torch.float64))


@pytest.fixture(scope="module")
def prefs() -> Preferences:
    return calibrate_psi(wages(), TaxSchedule.us_federal_2024(), Preferences())


def market(prefs: Preferences, wage=None, **options) -> LabourMarketEnv:
    settings = dict(mechanism="three_bracket", prefs=prefs, steps_per_year=STEPS_PER_YEAR, years=YEARS)
    return LabourMarketEnv(wages() if wage is None else wage, **{**settings, **options})


def fixed_hours(env: LabourMarketEnv) -> dict[str, np.ndarray]:
    """Hours spread from 10 to 70 a week so that incomes fall in several brackets."""
    return {a: np.array([h], dtype=np.float32) for a, h in zip(env.worker_ids, np.linspace(10.0, 70.0, env.n_workers))}


def market_rollout(env: LabourMarketEnv, seed: int) -> list:
    history = [env.reset(seed=seed)]
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(seed + i)
    while env.agents:
        history.append(env.step({a: env.action_space(a).sample() for a in env.agents}))
    return history


# ---- LabourMarketEnv ---------------------------------------------------------------------------


def test_market_passes_the_pettingzoo_parallel_api_test(prefs):
    parallel_api_test(market(prefs), num_cycles=2 * STEPS_PER_YEAR * YEARS)


def test_market_passes_the_pettingzoo_seed_test(prefs):
    parallel_seed_test(lambda: market(prefs), num_cycles=STEPS_PER_YEAR * YEARS)


def test_market_as_aec_passes_the_pettingzoo_api_test(prefs):
    api_test(parallel_to_aec(market(prefs)), num_cycles=STEPS_PER_YEAR * YEARS)


def test_market_spaces_are_built_once_and_hold_every_observation_and_action(prefs):
    env = market(prefs)
    for agent in env.possible_agents:
        assert env.observation_space(agent) is env.observation_space(agent)
        assert env.action_space(agent) is env.action_space(agent)
    assert env.action_space(PLANNER).shape == (env.mechanism.size,)
    assert env.action_space("worker_0").high[0] == pytest.approx(prefs.max_hours)
    for observations, *_ in market_rollout(env, seed=3):
        for agent, obs in observations.items():
            assert obs in env.observation_space(agent), agent


def test_market_episode_is_identical_under_the_same_seed_and_actions(prefs):
    first = market_rollout(market(prefs), seed=11)
    second = market_rollout(market(prefs), seed=11)
    assert len(first) == 1 + STEPS_PER_YEAR * YEARS
    assert data_equivalence(first, second, exact=True)


def test_planner_action_takes_effect_only_at_year_starts(prefs):
    env = market(prefs)
    env.reset(seed=0)
    hours = fixed_hours(env)
    first = np.array([0.05, 0.25, 0.45], dtype=np.float32)
    later = np.array([0.30, 0.40, 0.50], dtype=np.float32)
    for t in range(STEPS_PER_YEAR * YEARS):
        proposed = first if t == 0 else later
        observations, _, _, _, infos = env.step({**hours, PLANNER: env.action_of(proposed)})
        in_force = first if t < STEPS_PER_YEAR else later
        np.testing.assert_allclose(env.parameters.numpy(), in_force, atol=1e-6)  # up to the action's float32 rounding
        schedule = TaxSchedule.from_lists(THREE_BRACKET_CUTOFFS, env.parameters.tolist())
        income = torch.tensor([infos[a]["income"] for a in env.worker_ids], dtype=torch.float64)
        tax = torch.tensor([infos[a]["tax"] for a in env.worker_ids], dtype=torch.float64)
        torch.testing.assert_close(tax, schedule.tax(income), rtol=1e-12, atol=1e-6)
        np.testing.assert_allclose(observations[PLANNER][: env.mechanism.size], in_force, atol=1e-6)  # rates: their own shares


def test_planner_action_is_scaled_to_the_mechanism_bounds_and_clipped(prefs):
    env = market(prefs)
    env.reset(seed=0)
    env.step({**fixed_hours(env), PLANNER: np.array([-3.0, 0.2, 7.0])})
    np.testing.assert_allclose(env.parameters.numpy(), [0.0, 0.6, 1.0])  # three brackets: each rate in [0, 1]


def test_both_environments_take_the_planners_action_the_same_way(prefs):
    market_env, planner = market(prefs), planner_env(prefs)
    action = np.array([-0.8, 0.1, 0.9], dtype=np.float32)
    torch.testing.assert_close(market_env.parameters_of(action), planner.parameters_of(action))
    assert market_env.action_space(PLANNER) == planner.action_space


def test_observations_are_normalised_and_the_raw_figures_are_in_info(prefs):
    env = market(prefs)
    env.reset(seed=0)
    hours = fixed_hours(env)
    observations, _, _, _, infos = env.step(hours)
    observations, _, _, _, infos = env.step(hours)
    full_time = 52 * 40 * float(wages().median())
    assert env.money_scale == pytest.approx(full_time)
    worker = dict(zip(WORKER_FEATURES, observations["worker_3"]))
    assert worker["wage"] == pytest.approx(float(wages()[3] / wages().median()), rel=1e-6)
    assert worker["income"] == pytest.approx(infos["worker_3"]["income"] / full_time, rel=1e-6)
    assert worker["hours"] == pytest.approx(hours["worker_3"][0] / prefs.max_hours, rel=1e-6)
    planner = dict(zip(PLANNER_FEATURES, observations[PLANNER][env.mechanism.size :]))
    assert planner["mean_hours"] == pytest.approx(infos[PLANNER]["mean_hours"] / prefs.max_hours, rel=1e-6)
    assert planner["revenue"] == pytest.approx(infos[PLANNER]["revenue"] / full_time, rel=1e-6)
    assert all(abs(v) < 10 for obs in observations.values() for v in obs)  # of order one, unlike dollars


def test_worker_rewards_are_settle_utilities_over_the_utility_scale(prefs):
    env = market(prefs)
    env.reset(seed=0)
    hours = fixed_hours(env)
    theta = np.array([0.1, 0.3, 0.5], dtype=np.float32)
    _, rewards, _, _, _ = env.step({**hours, PLANNER: env.action_of(theta)})
    policy = env.mechanism.compile(env.parameters)
    chosen = torch.tensor([hours[a][0] for a in env.worker_ids], dtype=torch.float64)
    outcome = settle(wages(), chosen, policy, prefs)
    got = torch.tensor([rewards[a] for a in env.worker_ids], dtype=torch.float64)
    torch.testing.assert_close(got, outcome.utility / env.utility_scale, rtol=1e-12, atol=0.0)


def test_utility_scale_is_the_median_wage_full_time_worker_untaxed(prefs):
    env = market(prefs)
    full_time_income = 52.0 * 40.0 * wages().median()
    expected = abs(float(utility(full_time_income, torch.tensor(40.0, dtype=torch.float64), prefs)))
    assert env.utility_scale == pytest.approx(expected, rel=1e-12)
    assert 0.1 < env.utility_scale / float(full_time_income) < 10  # rewards of order one


def test_planner_reward_is_the_scaled_social_welfare_of_the_period(prefs):
    env = market(prefs, welfare_name="utilitarian")
    env.reset(seed=0)
    hours = fixed_hours(env)
    _, rewards, _, _, infos = env.step(hours)  # no planner action: the initial parameters stay
    policy = env.mechanism.compile(env.mechanism.initial())
    chosen = torch.tensor([hours[a][0] for a in env.worker_ids], dtype=torch.float64)
    welfare = float(social_welfare(settle(wages(), chosen, policy, prefs), "utilitarian"))
    assert infos[PLANNER]["welfare"] == pytest.approx(welfare, rel=1e-12)
    assert rewards[PLANNER] == pytest.approx(welfare / env.welfare_scale, rel=1e-12)


def test_everyone_is_truncated_after_the_last_year_and_nobody_terminates(prefs):
    env = market(prefs)
    env.reset(seed=0)
    for t in range(STEPS_PER_YEAR * YEARS):
        _, _, terminations, truncations, _ = env.step(fixed_hours(env))
        last = t == STEPS_PER_YEAR * YEARS - 1
        assert set(truncations) == set(env.possible_agents)
        assert not any(terminations.values())
        assert all(v == last for v in truncations.values())
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step(fixed_hours(env))


def test_every_worker_must_choose_hours(prefs):
    env = market(prefs)
    env.reset(seed=0)
    actions = fixed_hours(env)
    del actions["worker_3"]
    with pytest.raises(ValueError, match="worker_3"):
        env.step(actions)


def test_market_renders_a_text_summary_in_ansi_mode_and_nothing_otherwise(prefs):
    env = market(prefs, render_mode="ansi")
    env.reset(seed=0)
    env.step(fixed_hours(env))
    assert env.render().startswith("year 1/2, period 1/3 | rate_0=0.1 rate_1=0.2 rate_2=0.3 | hours")
    quiet = market(prefs)
    quiet.reset(seed=0)
    assert quiet.render() is None


# ---- PlannerEnv --------------------------------------------------------------------------------


def planner_env(prefs: Preferences, wage=None, **options) -> PlannerEnv:
    settings = dict(mechanism="three_bracket", prefs=prefs, steps_per_year=STEPS_PER_YEAR, years=YEARS)
    return PlannerEnv(wages() if wage is None else wage, **{**settings, **options})


def planner_rollout(env: PlannerEnv, seed: int, actions: list[np.ndarray]) -> list:
    history = [env.reset(seed=seed)]
    for action in actions:
        history.append(env.step(action))
    return history


def test_planner_env_passes_the_gymnasium_env_checker(prefs):
    env = gymnasium.make(PLANNER_ENV_ID, wage=wages(), prefs=prefs, steps_per_year=STEPS_PER_YEAR, years=YEARS)
    check_env(env.unwrapped)


def test_planner_env_random_rollout_is_truncated_after_the_last_year(prefs):
    env = planner_env(prefs, render_mode="ansi")
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and info == {}
    env.action_space.seed(0)
    for year in range(YEARS):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space
        assert np.isfinite(reward) and abs(reward) < 10
        assert not terminated and truncated == (year == YEARS - 1)
        assert info["year"] == year
    assert f"year {YEARS}/{YEARS}" in env.render()


def test_planner_env_episode_is_identical_under_the_same_seed_and_actions(prefs):
    env = planner_env(prefs, workers=BoundedRationalWorkers(prefs, temperature=0.2))
    env.action_space.seed(5)
    actions = [env.action_space.sample() for _ in range(YEARS)]
    first = planner_rollout(env, seed=7, actions=actions)
    second = planner_rollout(env, seed=7, actions=actions)
    other = planner_rollout(env, seed=8, actions=actions)
    assert data_equivalence(first, second, exact=True)
    assert not data_equivalence(first, other)  # the workers' draws depend on the seed


def test_planner_env_reward_is_the_years_mean_welfare_over_the_welfare_scale(prefs):
    # Quasi-linear utility: rational hours do not depend on the expected transfer, so every
    # period of the year is the same best response.
    env = planner_env(prefs, workers=RationalWorkers(prefs))
    env.reset(seed=0)
    theta = np.array([0.2, 0.35, 0.5], dtype=np.float32)
    obs, reward, _, _, info = env.step(env.action_of(theta))
    policy = env.mechanism.compile(env.parameters)  # theta, up to the action's float32 rounding
    hours = RationalWorkers(prefs).expected_hours(wages(), policy, 0.0)
    outcome = settle(wages(), hours, policy, prefs)
    welfare = float(social_welfare(outcome, "ability_weighted", wages()))
    assert info["welfare"] == pytest.approx(welfare, rel=1e-9)
    assert reward == pytest.approx(welfare / env.welfare_scale, rel=1e-9)
    np.testing.assert_allclose(obs[:3], theta, atol=1e-6)  # rates in [0, 1]: each its own share of the range
    assert obs[3] == pytest.approx(float(hours.mean()) / prefs.max_hours, rel=1e-6)
    assert info["mean_hours"] == pytest.approx(float(hours.mean()), rel=1e-9)


def test_planner_env_works_with_a_non_default_mechanism(prefs):
    env = planner_env(prefs, mechanism=make_mechanism("negative_income_tax"))
    env.reset(seed=0)
    obs, *_ = env.step(np.array([0.5, -0.5], dtype=np.float32))
    assert obs in env.observation_space
    np.testing.assert_allclose(obs[:2], [0.75, 0.25], atol=1e-6)  # a $ guarantee and a rate, each as its share of its range


# ---- invalid input -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [market, planner_env], ids=["market", "planner_env"])
@pytest.mark.parametrize(
    "options, argument",
    [
        ({"wage": torch.empty(0, dtype=torch.float64)}, "wage"),
        ({"wage": torch.ones(N, 1, dtype=torch.float64)}, "wage"),
        ({"wage": -torch.ones(N, dtype=torch.float64)}, "wage"),
        ({"steps_per_year": 0}, "steps_per_year"),
        ({"years": 0}, "years"),
        ({"welfare_name": "happiness"}, "welfare_name"),
        ({"render_mode": "human"}, "render_mode"),
        ({"mechanism": 3}, "mechanism"),
    ],
)
def test_invalid_constructor_input_raises_value_error_naming_the_argument(make, prefs, options, argument):
    with pytest.raises(ValueError, match=argument):
        make(prefs, **options)


def test_planner_actions_span_minus_one_to_one_and_map_onto_the_mechanism_bounds(prefs):
    env = planner_env(prefs)
    assert (env.action_space.low == -1.0).all() and (env.action_space.high == 1.0).all()
    low, high = env.mechanism.bounds()
    torch.testing.assert_close(env.parameters_of(-np.ones(3)), low)
    torch.testing.assert_close(env.parameters_of(np.ones(3)), high)
    theta = torch.tensor([0.2, 0.35, 0.5], dtype=torch.float64)
    torch.testing.assert_close(env.parameters_of(env.action_of(theta)), theta, atol=1e-6, rtol=0)


# ---- the ecosystem's conventions: registration, PettingZoo factories, configs -------------------


def test_the_gymnasium_entry_point_registers_the_planner_env_and_make_needs_no_arguments():
    """In a fresh process, the `gymnasium.envs` entry point, called as Gymnasium before 1.0 calls
    it, registers the id without loading the environments; make then plays the default population."""
    code = textwrap.dedent(f"""
        import sys
        from importlib.metadata import entry_points
        import gymnasium
        from gymnasium.envs.registration import namespace

        (plugin,) = [ep for ep in entry_points(group="gymnasium.envs") if ep.name == "llm_economist"]
        with namespace(plugin.name):
            plugin.load()()
        assert "llm_economist.envs" not in sys.modules and "torch" not in sys.modules
        env = gymnasium.make({PLANNER_ENV_ID!r})
        obs, _ = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        print(env.unwrapped.wage.numel(), obs in env.observation_space, info["year"])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["1000", "True", "0"]


def test_without_wages_both_environments_play_the_default_runs_census_population():
    census = config_population(RunConfig()).wage()
    torch.testing.assert_close(gymnasium.make(PLANNER_ENV_ID).unwrapped.wage, census, rtol=0, atol=0)
    torch.testing.assert_close(labour_market.parallel_env().wage, census, rtol=0, atol=0)


@pytest.mark.parametrize("factory", [labour_market.env, labour_market.raw_env], ids=["env", "raw_env"])
def test_the_pettingzoo_aec_factories_pass_the_pettingzoo_api_test(factory, prefs):
    aec = factory(wage=wages(), prefs=prefs, steps_per_year=STEPS_PER_YEAR, years=YEARS)
    assert isinstance(aec, AECEnv)
    assert isinstance(aec, OrderEnforcingWrapper) == (factory is labour_market.env)  # raw_env is unwrapped
    api_test(aec, num_cycles=STEPS_PER_YEAR * YEARS)


def test_the_pettingzoo_parallel_factory_passes_the_parallel_api_test(prefs):
    env = labour_market.parallel_env(wage=wages(), prefs=prefs, steps_per_year=STEPS_PER_YEAR, years=YEARS)
    assert isinstance(env, LabourMarketEnv)
    parallel_api_test(env, num_cycles=2 * STEPS_PER_YEAR * YEARS)


@pytest.mark.parametrize("factory", [labour_market.env, labour_market.raw_env, labour_market.parallel_env])
def test_the_pettingzoo_factories_render_text_in_ansi_mode_nothing_without_and_refuse_other_modes(factory, prefs):
    for mode, rendered in (("ansi", str), (None, type(None))):
        env = factory(render_mode=mode, wage=wages(), prefs=prefs)
        env.reset(seed=0)
        assert isinstance(env.render(), rendered)
    with pytest.raises(ValueError, match="render_mode"):
        factory(render_mode="human", wage=wages(), prefs=prefs)


SMALL_CONFIG = ["population.n_agents=40", "economy.years=2", "economy.steps_per_year=2", "workers.kind=bounded",
                "mechanism.name=flat", "welfare.name=utilitarian"]


def test_planner_env_from_a_yaml_config_plays_that_runs_population_workers_mechanism_and_calendar(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent("""\
        population: {n_agents: 40}
        economy: {years: 2, steps_per_year: 2}
        workers: {kind: bounded}
        mechanism: {name: flat}
        welfare: {name: utilitarian}
        planners: [{kind: llm}]
    """))
    env = PlannerEnv.from_config(path)
    model = build_setup(load_config(None, SMALL_CONFIG)).model
    torch.testing.assert_close(env.wage, model.wage, rtol=0, atol=0)
    assert env.prefs == model.prefs and isinstance(env.workers, BoundedRationalWorkers)
    assert env.mechanism.names == make_mechanism("flat").names
    assert (env.years, env.steps_per_year, env.welfare_name) == (2, 2, "utilitarian")
    check_env(env, skip_render_check=True)  # rendering is specified above; this env has no spec to remake it from
    env.close()


def test_market_from_a_config_plays_that_runs_population_and_calibrated_preferences():
    config = load_config(None, SMALL_CONFIG)
    env = LabourMarketEnv.from_config(config)
    model = build_setup(config).model
    torch.testing.assert_close(env.wage, model.wage, rtol=0, atol=0)
    assert env.prefs == model.prefs and env.horizon == 4 and env.welfare_name == "utilitarian"
    parallel_api_test(env, num_cycles=env.horizon)


@pytest.mark.parametrize("make", [PlannerEnv.from_config, LabourMarketEnv.from_config], ids=["planner_env", "market"])
def test_from_config_refuses_what_is_neither_a_config_nor_a_path(make):
    with pytest.raises(ValueError, match="config"):
        make({"population": {"n_agents": 10}})
