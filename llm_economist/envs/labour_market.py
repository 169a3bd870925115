"""The labour market as a PettingZoo parallel environment: N workers choose hours, a planner sets taxes.

Each step is one work period. Every worker picks weekly hours, the planner proposes mechanism
parameters, and the period settles in one vectorised call to `economy.settle`: annual income
z = 52 w h, tax T(z), the lump-sum transfer, consumption and utility for all workers at once.
A tax year is `steps_per_year` steps; the planner's action only counts at the first step of a
year (step index % steps_per_year == 0) and is ignored at every other step.

Observations, all float32 vectors (the names are in `WORKER_FEATURES` and `PLANNER_FEATURES`),
normalised so that every entry is of order one: dollars are divided by `money_scale`, the annual
earnings of a median-wage worker at 40 hours; wages by the median wage; hours by the hours cap.
The raw figures are in `info`.

worker_i, 7 entries, about the period just played (zeros before the first one):
    0 wage             hourly wage / the median wage, in [0, the highest wage / the median]
    1 marginal_rate    marginal tax rate at the worker's last income, under the parameters in force, in [-1, 1]
    2 average_rate     average tax rate T(z)/z at that income (the first bracket's rate at z = 0), in [-1, 1]
    3 transfer         last period's lump-sum transfer per worker / money_scale
    4 income           last annual income z / money_scale, in [0, the highest wage at the cap / money_scale]
    5 hours            last weekly hours / the hours cap, in [0, 1]
    6 year_fraction    (index of the coming step % steps_per_year) / steps_per_year; 0 at a year start

planner, P + 7 entries:
    0..P-1             the mechanism parameters in force, each as its position in the mechanism's range,
                       in [0, 1] (`parameter_shares`; the mechanism's initial ones after reset)
    P   mean_hours     mean weekly hours of the last period / the hours cap
    P+1 mean_income    mean annual income / money_scale
    P+2 revenue        mean tax per worker / money_scale
    P+3 transfer       transfer per worker / money_scale
    P+4 income_gini    Gini coefficient of pre-tax income
    P+5 welfare        social welfare of the period, scaled like the planner's reward
    P+6 year_fraction  as for workers: 0 means the planner's next action takes effect

Rates lie in [-1, 1] under every built-in mechanism (the 2024 US system's credits and phase-outs
included); revenue, transfer and welfare have no bound the economics gives, so their bounds are
infinite.

Actions: the planner's, in both environments, is the mechanism's parameter vector scaled to
[-1, 1] per parameter (clipped): parameter = low + (action + 1) / 2 (high - low), the range
off-the-shelf algorithms expect (`parameters_of`, `action_of`).

Rewards are scaled to be of order one by fixed numbers set at construction, from an equal
reference society in which every worker has the median wage and works 40 hours untaxed:
a worker's reward is u_i / `utility_scale` with `utility_scale` = |u| of that reference worker,
and the planner's reward is W / `welfare_scale` with `welfare_scale` = |W| of the reference
society (the same number for welfare functions measured in utility, median full-time earnings
for those measured in dollars). A scale that comes out zero or non-finite is replaced by 1.

Computation is on the CPU in float64; observations are cast to float32.

As PettingZoo's own environment modules do, this module offers `parallel_env()`, `raw_env()` (AEC)
and `env()` (AEC, order enforced); without wages they play the census population of 1000.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from ..config import EconomyConfig, RunConfig, WorkersConfig, read_config
from ..factory import Setup, build_setup, calibrated_preferences, config_population, make_config_mechanism
from ..economy.outcome import Outcome, aggregates, settle
from ..economy.utility import FULL_TIME_HOURS, Preferences, annual_income, utility
from ..economy.welfare import DEFAULT_WELFARE, social_welfare
from ..mechanisms.base import Mechanism
from ..mechanisms.registry import make_mechanism

Tensor = torch.Tensor

PLANNER = "planner"
WORKER_FEATURES = ("wage", "marginal_rate", "average_rate", "transfer", "income", "hours", "year_fraction")
AGGREGATES = ("mean_hours", "mean_income", "revenue", "transfer", "income_gini", "welfare")
PLANNER_FEATURES = AGGREGATES + ("year_fraction",)  # after the P mechanism parameters


# ---- inputs shared by the environments ---------------------------------------------------------


def check_wage(wage) -> Tensor:
    """Hourly wages as a float64 CPU tensor (N,), N >= 1, all finite and positive (a private copy);
    None gives the default run's census population (1000 workers, seed 0), so that an environment
    can be made without arguments."""
    if wage is None:
        wage = config_population(RunConfig()).wage()
    try:
        w = torch.as_tensor(wage, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"wage: expected a 1-D tensor of hourly wages, got {type(wage).__name__}") from err
    if w.ndim != 1:
        raise ValueError(f"wage: expected shape (N,), one hourly wage per worker, got shape {tuple(w.shape)}")
    if w.numel() == 0:
        raise ValueError("wage: need at least one worker (N >= 1), got N = 0")
    if not (torch.isfinite(w).all() and (w > 0).all()):
        raise ValueError("wage: hourly wages must be finite and positive")
    return w.detach().cpu().clone()


def check_config(config) -> RunConfig:
    """A RunConfig as given, or the one in the YAML file at this path (`config.read_config`: the
    environments do not use its planners, so they are not built)."""
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, (str, Path)):
        return read_config(config)
    raise ValueError(f"config: expected a RunConfig or the path of a YAML config, got {type(config).__name__}")


def config_market(config, **update) -> tuple[RunConfig, Mechanism, Setup]:
    """What an environment takes from a run config (a RunConfig or a YAML path): the config, its
    mechanism, and its setup built as a run builds it with `update` applied and no planners (a
    talking planner would open a language-model client)."""
    config = check_config(config)
    return config, make_config_mechanism(config), build_setup(config.model_copy(update={"planners": [], **update}))


def check_count(name: str, value) -> int:
    """A whole number >= 1, or ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be a whole number >= 1, got {value!r}")
    return int(value)


def check_mechanism(mechanism) -> Mechanism:
    """A Mechanism instance, or one built from its registered name with default options."""
    if isinstance(mechanism, str):
        return make_mechanism(mechanism)
    if not isinstance(mechanism, Mechanism):
        raise ValueError(f"mechanism: expected a Mechanism or a registered name, got {type(mechanism).__name__}")
    return mechanism


def check_preferences(prefs, wage: Tensor) -> Preferences:
    """The given preferences, or those a run with the default economy calibrates (a 40 h median
    under the 2024 US taxes, as single filers since the environment knows wages only), through the
    same builder function."""
    if prefs is None:
        return calibrated_preferences(EconomyConfig(), wage)[0]
    if not isinstance(prefs, Preferences):
        raise ValueError(f"prefs: expected Preferences or None, got {type(prefs).__name__}")
    return prefs


def check_render_mode(render_mode, metadata: dict):
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise ValueError(f"render_mode: must be None or one of {metadata['render_modes']}, got {render_mode!r}")
    return render_mode


def _usable_scale(value: float) -> float:
    return value if np.isfinite(value) and value > 1e-12 else 1.0


def reward_scales(wage: Tensor, prefs: Preferences, welfare_name: str, welfare_params: dict) -> tuple[float, float]:
    """(utility_scale, welfare_scale): |u| and |W| in an equal society of median-wage, 40-hour, untaxed workers.

    Also checks that the welfare function and its parameters are usable.
    """
    w = wage.median().expand(wage.numel()).clone()
    hours = torch.full_like(w, min(FULL_TIME_HOURS, prefs.max_hours))
    income = annual_income(w, hours)
    untaxed = torch.zeros_like(w)
    reference = Outcome(hours, income, untaxed, untaxed[:1], income, utility(income, hours, prefs))
    try:
        welfare = social_welfare(reference, welfare_name, w, **welfare_params)
    except TypeError as err:
        raise ValueError(f"welfare_params: {sorted(welfare_params)} do not fit welfare {welfare_name!r}: {err}") from err
    except ValueError as err:
        raise ValueError(f"welfare_name / welfare_params: {err}") from err
    return _usable_scale(abs(float(reference.utility[0]))), _usable_scale(abs(float(welfare)))


def money_scale(wage: Tensor, prefs: Preferences) -> float:
    """Annual earnings of a median-wage worker at 40 hours (at the cap if lower): the unit of every
    dollar figure in the observations."""
    hours = torch.tensor(min(FULL_TIME_HOURS, prefs.max_hours), dtype=wage.dtype)
    return _usable_scale(float(annual_income(wage.median(), hours)))


def period_aggregates(outcome: Outcome, scaled_welfare: float, max_hours: float) -> np.ndarray:
    """The AGGREGATES of one period in their own units (hours, dollars), float64 (6,)."""
    figures = aggregates(outcome, max_hours)
    names = ("mean_hours", "output", "revenue", "transfer", "gini_income")
    return np.array([figures[name] for name in names] + [scaled_welfare])


def normalised_aggregates(raw: np.ndarray, money: float, max_hours: float) -> np.ndarray:
    """The AGGREGATES as observed: hours over the cap, dollars over `money_scale`."""
    return raw / np.array([max_hours, money, money, money, 1.0, 1.0])


def aggregate_bounds(wage: Tensor, money: float, max_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """Box bounds of the normalised AGGREGATES entries."""
    inf = np.inf
    top_income = float(annual_income(wage.max(), torch.tensor(max_hours, dtype=wage.dtype))) / money
    low = np.array([0.0, 0.0, -inf, -inf, 0.0, -inf], dtype=np.float32)
    high = np.array([1.0, top_income, inf, inf, 1.0, inf], dtype=np.float32)
    return low, high


def planner_bounds(mechanism: Mechanism, wage: Tensor, money: float, max_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """Box bounds of what the planner observes in both environments: the parameter shares, then the
    normalised AGGREGATES."""
    agg_low, agg_high = aggregate_bounds(wage, money, max_hours)
    size = mechanism.size
    return np.concatenate([np.zeros(size, np.float32), agg_low]), np.concatenate([np.ones(size, np.float32), agg_high])


def planner_features(mechanism: Mechanism, theta: Tensor, raw_aggregates: np.ndarray, money: float, max_hours: float) -> np.ndarray:
    """What the planner observes in both environments: the parameter shares of `theta`, then the
    normalised AGGREGATES."""
    return np.concatenate([parameter_shares(mechanism, theta), normalised_aggregates(raw_aggregates, money, max_hours)])


def scaled_parameters(mechanism: Mechanism, action) -> Tensor:
    """(P,) mechanism parameters of a planner action in [-1, 1]^P (clipped): low + (a + 1) / 2 (high - low)."""
    a = torch.as_tensor(np.asarray(action, dtype=np.float64).reshape(-1))
    if a.numel() != mechanism.size:
        raise ValueError(f"planner action: expected {mechanism.size} values for {mechanism.names}, got {a.numel()}")
    if not torch.isfinite(a).all():
        raise ValueError(f"planner action: values must be finite, got {a.tolist()}")
    low, high = mechanism.bounds()
    return low + (a.clamp(-1.0, 1.0) + 1.0) / 2.0 * (high - low)


def parameter_shares(mechanism: Mechanism, theta: Tensor) -> np.ndarray:
    """Each parameter's position in its range, (theta - low) / (high - low) in [0, 1]: how the planner
    observes the parameters in force (a rate in [0, 1] reads as itself; a guarantee in dollars does not)."""
    low, high = mechanism.bounds()
    return ((theta - low) / (high - low)).numpy()


def scaled_action(mechanism: Mechanism, theta) -> np.ndarray:
    """The planner action in [-1, 1]^P that sets parameters `theta` (the inverse of `scaled_parameters`)."""
    low, high = mechanism.bounds()
    return (2.0 * (mechanism.validate(theta) - low) / (high - low) - 1.0).numpy().astype(np.float32)


# ---- the environment ---------------------------------------------------------------------------


class LabourMarketEnv(ParallelEnv):
    """N workers (`worker_0` .. `worker_{N-1}`) choose weekly hours; the `planner` sets the mechanism.

    Actions: a worker sends Box([0], [max_hours]) weekly hours (clipped to that range); the planner
    sends the mechanism's parameters scaled to Box(-1, 1) (`parameters_of`; clipped), applied only
    at a year's first step (ignored otherwise, and may then be omitted).
    Moves are simultaneous: at a year's first step the workers choose hours before they can see
    the new parameters, which appear in their observations from the next step on. The episode is
    truncated for everyone after `years * steps_per_year` steps; nothing terminates.

    `wage` holds N hourly wages (None: the default census population of 1000); `mechanism` is a
    Mechanism or a registered name; `prefs=None` calibrates psi so that the median worker chooses
    40 h under the US 2024 schedule; `welfare_name` and `welfare_params` choose the planner's
    social welfare function.
    """

    metadata = {"name": "labour_market_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self,
        wage=None,
        mechanism: Mechanism | str = "three_bracket",
        prefs: Preferences | None = None,
        steps_per_year: int = 4,
        years: int = 5,
        welfare_name: str = DEFAULT_WELFARE,
        welfare_params: dict | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.wage = check_wage(wage)
        self.mechanism = check_mechanism(mechanism)
        self.prefs = check_preferences(prefs, self.wage)
        self.steps_per_year = check_count("steps_per_year", steps_per_year)
        self.years = check_count("years", years)
        self.horizon = self.years * self.steps_per_year
        self.welfare_name = welfare_name
        self.welfare_params = dict(welfare_params or {})
        self.render_mode = check_render_mode(render_mode, self.metadata)
        self.utility_scale, self.welfare_scale = reward_scales(self.wage, self.prefs, self.welfare_name, self.welfare_params)

        self.n_workers = self.wage.numel()
        self.worker_ids = [f"worker_{i}" for i in range(self.n_workers)]
        self.possible_agents = self.worker_ids + [PLANNER]
        self.agents: list[str] = []

        self.money_scale = money_scale(self.wage, self.prefs)
        self._median_wage = float(self.wage.median())
        low, high = planner_bounds(self.mechanism, self.wage, self.money_scale, self.prefs.max_hours)
        top_income = high[self.mechanism.size + AGGREGATES.index("mean_income")]
        worker_low = np.array([0.0, -1.0, -1.0, -np.inf, 0.0, 0.0, 0.0], dtype=np.float32)
        worker_high = np.array([float(self.wage.max()) / self._median_wage, 1.0, 1.0, np.inf, top_income, 1.0, 1.0], dtype=np.float32)
        self._action_spaces = {a: spaces.Box(0.0, self.prefs.max_hours, shape=(1,), dtype=np.float32) for a in self.worker_ids}
        self._action_spaces[PLANNER] = spaces.Box(-1.0, 1.0, (self.mechanism.size,), dtype=np.float32)
        self._observation_spaces = {a: spaces.Box(worker_low, worker_high, dtype=np.float32) for a in self.worker_ids}
        self._observation_spaces[PLANNER] = spaces.Box(np.append(low, 0.0), np.append(high, 1.0), dtype=np.float32)

        self.np_random: np.random.Generator | None = None
        self._t = 0
        self._theta = self.mechanism.initial()
        self._policy = self.mechanism.compile(self._theta)
        self._last: Outcome | None = None
        self._aggregates = np.zeros(len(AGGREGATES))

    @classmethod
    def from_config(cls, config: RunConfig | str | Path, render_mode: str | None = None) -> LabourMarketEnv:
        """The market of a run config (a RunConfig or a YAML path): its population, preferences
        calibrated as a run calibrates them, mechanism, calendar and welfare function. The agents
        choose the hours, so the config's worker model and planners are not used."""
        config, mechanism, setup = config_market(config, workers=WorkersConfig())  # the agents choose: no worker model
        m, e = setup.model, config.economy
        return cls(m.wage, mechanism, m.prefs, e.steps_per_year, e.years, m.welfare_name, m.welfare_params, render_mode)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self._action_spaces[agent]

    @property
    def parameters(self) -> Tensor:
        """The mechanism parameters in force (P,)."""
        return self._theta.clone()

    def parameters_of(self, action) -> Tensor:
        """(P,) mechanism parameters of a planner action in [-1, 1]^P (clipped)."""
        return scaled_parameters(self.mechanism, action)

    def action_of(self, theta) -> np.ndarray:
        """The planner action that sets parameters `theta`."""
        return scaled_action(self.mechanism, theta)

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start a new episode under the mechanism's initial parameters; `options` is not used.

        The market has no randomness of its own: given the actions, an episode is fully
        determined. `seed` seeds `np_random` for wrappers and subclasses that want one.
        """
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(seed)
        self.agents = self.possible_agents[:]
        self._t = 0
        self._theta = self.mechanism.initial()
        self._policy = self.mechanism.compile(self._theta)
        self._last = None
        self._aggregates = np.zeros(len(AGGREGATES))
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict):
        """Settle one period for everyone at once; see the class docstring for the planner's timing."""
        if not self.agents:
            raise RuntimeError("labour market: no episode is running; call reset() first")
        hours = self._worker_hours(actions)  # first, so that bad input changes nothing
        if self._t % self.steps_per_year == 0 and PLANNER in actions:
            self._set_parameters(actions[PLANNER])
        outcome = settle(self.wage, hours, self._policy, self.prefs)
        welfare = float(social_welfare(outcome, self.welfare_name, self.wage, **self.welfare_params))
        year = self._t // self.steps_per_year
        self._t += 1
        self._last = outcome
        self._aggregates = period_aggregates(outcome, welfare / self.welfare_scale, self.prefs.max_hours)

        observations = self._observations()
        rewards = dict(zip(self.worker_ids, (outcome.utility / self.utility_scale).tolist()))
        rewards[PLANNER] = float(self._aggregates[-1])
        infos = {
            a: {"income": z, "tax": t, "consumption": c, "utility": u}
            for a, z, t, c, u in zip(
                self.worker_ids,
                outcome.income.tolist(),
                outcome.tax.tolist(),
                outcome.consumption.tolist(),
                outcome.utility.tolist(),
            )
        }
        infos[PLANNER] = {"year": year, **dict(zip(AGGREGATES[:-1], self._aggregates[:-1].tolist())), "welfare": welfare}
        over = self._t >= self.horizon
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, over)
        if over:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        """The period just played: parameters in force and the population aggregates."""
        if self.render_mode is None:
            return None
        params = " ".join(f"{n}={v:.4g}" for n, v in zip(self.mechanism.names, self._theta.tolist()))
        if self._last is None:
            return f"before year 1/{self.years} | {params}"
        year, period = divmod(self._t - 1, self.steps_per_year)
        hours, income, revenue, transfer, g, welfare = self._aggregates.tolist()
        return (
            f"year {year + 1}/{self.years}, period {period + 1}/{self.steps_per_year} | {params} | hours {hours:.1f} h/wk, "
            f"income ${income:,.0f}, revenue ${revenue:,.0f}, transfer ${transfer:,.0f}, Gini {g:.3f}, welfare {welfare:.4f}"
        )

    def close(self) -> None:
        """Nothing to release: the market holds no files, servers or windows."""

    # ---- internals ----

    def _set_parameters(self, action) -> None:
        self._theta = scaled_parameters(self.mechanism, action)
        self._policy = self.mechanism.compile(self._theta)

    def _worker_hours(self, actions: dict) -> Tensor:
        missing = [a for a in self.worker_ids if a not in actions]
        if missing:
            more = " ..." if len(missing) > 3 else ""
            raise ValueError(f"actions: every worker chooses hours each step; missing {missing[:3]}{more}")
        hours = np.fromiter(
            (np.asarray(actions[a], dtype=np.float64).item() for a in self.worker_ids), dtype=np.float64, count=self.n_workers
        )
        if not np.isfinite(hours).all():
            bad = self.worker_ids[int(np.flatnonzero(~np.isfinite(hours))[0])]
            raise ValueError(f"actions: {bad} chose non-finite hours")
        return torch.from_numpy(hours).clamp_(0.0, self.prefs.max_hours)

    def _observations(self) -> dict[str, np.ndarray]:
        n = self.n_workers
        if self._last is None:
            income = hours = torch.zeros(n, dtype=torch.float64)
            expected = torch.zeros(1, dtype=torch.float64)
        else:
            income, hours, expected = self._last.income, self._last.hours, self._policy.expectation(self._last)
        faced, transfer = self._policy.faced(expected)  # the rules as a worker expecting last period's budget sees them
        schedule, transfer = faced.schedule, transfer.reshape(1)
        year_fraction = (self._t % self.steps_per_year) / self.steps_per_year
        money = self.money_scale
        table = torch.stack(
            [
                self.wage / self._median_wage,
                schedule.marginal_rate(income),
                schedule.average_rate(income),
                transfer.expand(n) / money,
                income / money,
                hours / self.prefs.max_hours,
                torch.full((n,), year_fraction, dtype=torch.float64),
            ],
            dim=1,
        ).numpy().astype(np.float32)  # (N, 7)
        observations = {a: table[i] for i, a in enumerate(self.worker_ids)}
        seen = planner_features(self.mechanism, self._theta, self._aggregates, money, self.prefs.max_hours)
        observations[PLANNER] = np.append(seen, year_fraction).astype(np.float32)
        return observations


# ---- PettingZoo's module conventions: env(), raw_env() and parallel_env() ----------------------


def parallel_env(*, render_mode: str | None = None, **options) -> LabourMarketEnv:
    """The market under PettingZoo's parallel API; `render_mode` None or "ansi", `options` as for `LabourMarketEnv`."""
    return LabourMarketEnv(render_mode=render_mode, **options)


def raw_env(*, render_mode: str | None = None, **options) -> AECEnv:
    """The market under PettingZoo's AEC API, unwrapped: agents act in turn and the period settles after the last."""
    return parallel_to_aec_wrapper(parallel_env(render_mode=render_mode, **options))


def env(*, render_mode: str | None = None, **options) -> AECEnv:
    """`raw_env` inside PettingZoo's order-enforcing wrapper, which refuses steps and renders before `reset`."""
    return OrderEnforcingWrapper(raw_env(render_mode=render_mode, **options))
