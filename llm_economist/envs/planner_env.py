"""The planner's problem as a single-agent Gymnasium environment; the worker population lives inside.

One step is one tax year. The action is the mechanism's parameter vector scaled to [-1, 1] per
parameter (float32; clipped), as the planner's action in `LabourMarketEnv`, the range
off-the-shelf algorithms such as stable-baselines3's PPO expect: parameter = low + (action + 1) / 2
(high - low), see `parameters_of` and `action_of`. The workers, any `Workers`, then play the year through
`simulation.play_year` (the loop the runner plays), remembering `workers.memory` periods and
expecting last period's transfer. Their randomness (e.g. bounded-rational choices) draws from
a torch.Generator seeded from the environment's `np_random`, so `reset(seed=s)` followed by the
same actions reproduces a trajectory exactly.

Observation, float32 (P + 6,), normalised as in `labour_market`: the parameters in force, each as
its position in the mechanism's range, in [0, 1] (the mechanism's initial ones after reset), then
the last year's means over its periods of
    mean_hours (over the hours cap), mean_income, revenue (mean tax per worker) and transfer
    (per worker), each over `money_scale`, income_gini (Gini of pre-tax income), welfare (scaled),
all zero before the first year. `info` holds the same figures in hours and dollars.

Reward: the year's mean social welfare divided by `welfare_scale`, |W| of an equal reference
society in which every worker has the median wage and works 40 hours untaxed (see
`labour_market`), so rewards are of order one. The episode is truncated after `years` years.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from ..config import RunConfig
from ..economy.policy import TaxUnits
from ..economy.utility import Preferences
from ..economy.welfare import DEFAULT_WELFARE
from ..factory import Setup
from ..mechanisms.base import Mechanism
from ..population_model import PopulationModel
from ..simulation import Carried, Period, play_year
from ..workers.base import Workers
from ..workers.rational import RationalWorkers
from .labour_market import (
    AGGREGATES,
    check_count,
    check_mechanism,
    check_preferences,
    check_render_mode,
    check_wage,
    config_market,
    money_scale,
    period_aggregates,
    planner_bounds,
    planner_features,
    reward_scales,
    scaled_action,
    scaled_parameters,
)

Tensor = torch.Tensor


class PlannerEnv(gym.Env):
    """Choose the mechanism parameters once a year to maximise the population's social welfare.

    Arguments as for `LabourMarketEnv` (so `gymnasium.make("llm_economist/Planner-v0")` without
    arguments plays the census population of 1000), plus `workers`, the population
    (RationalWorkers under `prefs` by default); a worker policy sees `Observation.step` as
    periods since reset.
    """

    # render_fps only matters to human renderers; it is declared because Gymnasium expects it.
    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        wage=None,
        mechanism: Mechanism | str = "three_bracket",
        prefs: Preferences | None = None,
        workers: Workers | None = None,
        steps_per_year: int = 4,
        years: int = 5,
        welfare_name: str = DEFAULT_WELFARE,
        welfare_params: dict | None = None,
        render_mode: str | None = None,
        units: TaxUnits | None = None,
    ) -> None:
        self.wage = check_wage(wage)
        self.mechanism = check_mechanism(mechanism)
        self.prefs = check_preferences(prefs, self.wage)
        if workers is None:
            workers = RationalWorkers(self.prefs)
        if not isinstance(workers, Workers):
            raise ValueError(f"workers: expected a Workers or None, got {type(workers).__name__}")
        self.workers = workers
        self.steps_per_year = check_count("steps_per_year", steps_per_year)
        self.years = check_count("years", years)
        self.welfare_name = welfare_name
        self.welfare_params = dict(welfare_params or {})
        self.render_mode = check_render_mode(render_mode, self.metadata)
        _, self.welfare_scale = reward_scales(self.wage, self.prefs, self.welfare_name, self.welfare_params)
        # `units`: who files with whom (`factory.population_units`), for mechanisms that tax by filing status.
        self.model = PopulationModel(self.wage, self.prefs, workers, welfare_name, dict(welfare_params or {}), units=units)

        self.money_scale = money_scale(self.wage, self.prefs)
        # Off-the-shelf algorithms expect [-1, 1]; `parameters_of` maps it onto the mechanism's box.
        self.action_space = spaces.Box(-1.0, 1.0, (self.mechanism.size,), dtype=np.float32)
        self.observation_space = spaces.Box(*planner_bounds(self.mechanism, self.wage, self.money_scale, self.prefs.max_hours),
                                            dtype=np.float32)

        self._setup: Setup | None = None  # what `from_config` built, closed with the environment
        self._generator = torch.Generator()
        self._year: int | None = None
        self._theta = self.mechanism.initial()
        self._carried = Carried()
        self._aggregates = np.zeros(len(AGGREGATES))

    @classmethod
    def from_config(cls, config: RunConfig | str | Path, render_mode: str | None = None) -> PlannerEnv:
        """The planner's problem of a run config (a RunConfig or a YAML path): its population and
        worker model built as a run builds them, its mechanism, calendar and welfare function. The
        config's planners are not used; `close()` closes a language-model client it opened."""
        config, mechanism, setup = config_market(config)
        m, e = setup.model, config.economy
        env = cls(m.wage, mechanism, m.prefs, m.workers, e.steps_per_year, e.years, m.welfare_name, m.welfare_params,
                  render_mode, m.units)
        env._setup = setup
        return env

    @property
    def parameters(self) -> Tensor:
        """The mechanism parameters in force (P,)."""
        return self._theta.clone()

    def parameters_of(self, action) -> Tensor:
        """(P,) mechanism parameters of an action in [-1, 1]^P (clipped): low + (a + 1) / 2 (high - low)."""
        return scaled_parameters(self.mechanism, action)

    def action_of(self, theta) -> np.ndarray:
        """The action in [-1, 1]^P that sets parameters `theta` (the inverse of `parameters_of`)."""
        return scaled_action(self.mechanism, theta)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._generator = torch.Generator().manual_seed(int(self.np_random.integers(2**63 - 1)))
        self._year = 0
        self._theta = self.mechanism.initial()
        self._carried = Carried()
        self._aggregates = np.zeros(len(AGGREGATES))
        return self._observation(), {}

    def step(self, action):
        if self._year is None or self._year >= self.years:
            raise RuntimeError("planner env: no episode is running; call reset() first")
        self._theta = self.parameters_of(action)
        policy = self.mechanism.compile(self._theta)

        periods, welfare = [], []

        def record(period: Period) -> None:
            welfare.append(float(self.model.welfare(period.outcome)))
            periods.append(period_aggregates(period.outcome, welfare[-1] / self.welfare_scale, self.prefs.max_hours))

        self._carried = play_year(self.model, policy, self._carried, self._year, self.steps_per_year, self._generator, record)
        self._aggregates = np.mean(periods, axis=0)
        self._year += 1

        info = {"year": self._year - 1, **dict(zip(AGGREGATES[:-1], self._aggregates[:-1].tolist()))}
        info["welfare"] = float(np.mean(welfare))
        reward = float(self._aggregates[-1])
        return self._observation(), reward, False, self._year >= self.years, info

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        params = " ".join(f"{n}={v:.4g}" for n, v in zip(self.mechanism.names, self._theta.tolist()))
        if not self._year:
            return f"before year 1/{self.years} | {params}"
        hours, income, revenue, transfer, g, welfare = self._aggregates.tolist()
        return (
            f"year {self._year}/{self.years} | {params} | hours {hours:.1f} h/wk, income ${income:,.0f}, "
            f"revenue ${revenue:,.0f}, transfer ${transfer:,.0f}, Gini {g:.3f}, welfare {welfare:.4f}"
        )

    def close(self) -> None:
        """Close the language-model client `from_config` opened, if any (workers that talk to a model)."""
        if self._setup is not None:
            self._setup.close()

    def _observation(self) -> np.ndarray:
        return planner_features(self.mechanism, self._theta, self._aggregates, self.money_scale, self.prefs.max_hours).astype(np.float32)
