"""The one loop: a period, and a tax year of periods, played by a worker population under a policy.

Each period the workers see the policy, the transfer they expect (last period's), their recent
outcomes and everyone's last decisions; they act on all agents at once, the period settles, and
what they carry moves on. The runner, the planner environment and distillation all play through
`play_year`; a `record` hook sees every settled period, and a `show` hook may change what the
workers are shown of the last period (distillation's exploration) without changing what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .economy.labour import nearest_bin
from .economy.outcome import Outcome, aggregates, settle
from .economy.policy import Policy
from .population_model import PopulationModel
from .workers.base import Decisions, Observation

Tensor = torch.Tensor


@dataclass(frozen=True)
class Carried:
    """What a population carries from one period to the next: its memory of recent outcomes
    (oldest first, at most `workers.memory` of them) and everyone's last decisions."""

    recent: tuple[Outcome, ...] = ()
    last_decisions: Decisions | None = None

    @property
    def last(self) -> Outcome | None:
        return self.recent[-1] if self.recent else None


@dataclass(frozen=True)
class Period:
    """One settled period: when it was, the transfer the workers expected, what they did and what it gave."""

    year: int
    step: int  # periods since the start
    step_in_year: int
    expected_transfer: Tensor  # (1,) the transfer the workers expected
    decisions: Decisions
    outcome: Outcome
    policy: Policy  # the rules the period settled under
    shown_last: Outcome | None = None  # the last period as the workers were shown it (None in the first)

    def metrics(self, model: PopulationModel) -> dict[str, float]:
        """Welfare and the population aggregates of this period, and the welfare expected over the
        workers' stated hour distributions where they state them."""
        expected = expected_welfare(model, self.policy, self.decisions, self.outcome.hours, self.step)
        return {"welfare": float(model.welfare(self.outcome)), **aggregates(self.outcome, model.prefs.max_hours),
                **({"expected_welfare": expected} if expected is not None else {})}


EXPECTATION_DRAWS = 256  # draws of everyone's hours in a small population
# Agents times draws at most: as precise as 256 draws of 1,000 agents at every size, for about the
# cost of settling a period a few times; past EXPECTATION_MAX_AGENTS one draw's noise is small.
EXPECTATION_AGENT_DRAWS = 256_000
EXPECTATION_MAX_AGENTS = 10_000


def feasible_hours(hours: Tensor, max_hours: float) -> Tensor:
    """``hours`` held to [0, max_hours]: a learned population may stray outside. One pass reads
    them; a copy is made only where some stray (exact best responses never do)."""
    low, high = torch.aminmax(hours)
    return hours.clamp(0.0, max_hours) if bool(low < 0.0) or bool(high > max_hours) else hours


def expected_welfare(model: PopulationModel, policy: Policy, decisions: Decisions, hours: Tensor, step: int) -> float | None:
    """The period's welfare averaged over draws of everyone's hours from the distributions the
    workers stated (a worker that fell back keeps the hours it got), or None where none states one.

    One sampled answer per worker makes a period's welfare noisy in a small population; averaging
    over the draws integrates that noise out while keeping what the workers were shown. The draws
    are inverse-CDF draws of random numbers fixed by the step, so two mechanisms are compared on
    common random numbers.
    """
    stated, bins = decisions.columns.get("hour_distribution"), getattr(model.workers, "bins", None)
    n = hours.shape[-1]
    if (stated is None or bins is None or n > EXPECTATION_MAX_AGENTS
            or (not isinstance(stated, Tensor) and all(row is None for row in stated))):
        return None
    grid = torch.as_tensor(bins, dtype=hours.dtype)
    if isinstance(stated, Tensor):
        probs = stated.to(hours.dtype)
    else:
        own = nearest_bin(hours, grid)
        probs = torch.stack([own[i] if row is None else torch.as_tensor(row, dtype=hours.dtype) for i, row in enumerate(stated)])
    cumulative = (probs / probs.sum(dim=-1, keepdim=True)).cumsum(dim=-1)
    draws = min(EXPECTATION_DRAWS, EXPECTATION_AGENT_DRAWS // n)
    uniforms = torch.rand(n, draws, generator=torch.Generator().manual_seed(step), dtype=hours.dtype)
    index = torch.searchsorted(cumulative, uniforms).clamp(max=len(grid) - 1)  # (N, draws)
    drawn = feasible_hours(grid[index.t()], model.prefs.max_hours)  # (draws, N)
    return float(model.welfare(settle(model.wage, drawn, policy, model.prefs)).mean())


Show = Callable[[Outcome, Policy], Outcome]  # (last period, policy in force) -> the last period as shown


def play_period(model: PopulationModel, policy: Policy, carried: Carried, year: int, step: int, step_in_year: int,
                generator: torch.Generator, show: Show | None = None) -> tuple[Period, Carried]:
    """The workers act, the period settles (hours held to the feasible range), the memory moves on."""
    last = carried.last
    policy = model.resolve(policy, last)
    expected = policy.expectation(last) if last is not None else torch.zeros(1, dtype=model.wage.dtype)
    faced, transfer = policy.faced(expected)
    recent = carried.recent
    if show is not None and last is not None:
        recent = recent[:-1] + (show(last, policy),)
    seen = Observation(model.wage, faced, transfer, recent, carried.last_decisions, year, step)
    decisions = model.workers.act(seen, generator)
    outcome = settle(model.wage, feasible_hours(decisions.hours, model.prefs.max_hours), policy, model.prefs)
    period = Period(year, step, step_in_year, transfer, decisions, outcome, policy, seen.last)
    return period, Carried((carried.recent + (outcome,))[-model.workers.memory :], decisions)


def play_year(model: PopulationModel, policy: Policy, carried: Carried, year: int, steps_per_year: int,
              generator: torch.Generator, record: Callable[[Period], None] | None = None, show: Show | None = None) -> Carried:
    """`steps_per_year` periods of tax year `year` under one policy; `record` sees each one."""
    for k in range(steps_per_year):
        period, carried = play_period(model, policy, carried, year, year * steps_per_year + k, k, generator, show)
        if record is not None:
            record(period)
    return carried
