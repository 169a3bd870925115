"""What a worker population sees each period, what it returns, and the interface it implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..economy.outcome import Outcome
from ..economy.policy import Policy
from ..governance import Ballots, Platform, rational_ballots
from ..mechanisms.base import Mechanism

if TYPE_CHECKING:  # the population model holds workers
    from ..population_model import PopulationModel

Tensor = torch.Tensor


@dataclass(frozen=True)
class Decisions:
    """One period's choices: hours for every agent, plus per-agent trace columns (LLM fields)."""

    hours: Tensor  # (N,)
    columns: dict[str, list | Tensor] = field(default_factory=dict)  # name -> N values (or rows), written to the traces
    diagnostics: dict[str, float] = field(default_factory=dict)  # run-level figures (e.g. fallbacks)
    # The surrogate's recurrent state, (memory, expression) per agent, handed to its next period.
    recurrent: tuple[Tensor, Tensor] | None = None
    # One entry per language-model decision made this period (archetype voices, in agent order):
    # None where the reply was usable, else why it fell back ("timeout", "http_500", ...).
    fallbacks: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class Observation:
    """The period's decision context for all agents at once."""

    wage: Tensor  # (N,) hourly wage
    policy: Policy  # the mechanism in force this year
    expected_transfer: Tensor  # (1,) transfer a worker expects this period (last period's)
    recent: tuple[Outcome, ...]  # the last few periods' outcomes, oldest first (empty at the start)
    last_decisions: Decisions | None  # what everyone chose and said last period
    year: int
    step: int
    reverse_options: bool = False  # present the hour options in reverse order (the probe's test of position bias)

    @property
    def last(self) -> Outcome | None:
        return self.recent[-1] if self.recent else None


class Workers(ABC):
    """Maps a batch of observations to hours for every agent in one call."""

    name: str = ""
    memory: int = 1  # how many recent outcomes the runner keeps in observations

    @abstractmethod
    def act(self, obs: Observation, generator: torch.Generator) -> Decisions:
        """This period's decisions; any randomness draws from `generator`."""

    def ballots(
        self, platforms: Sequence[Platform], mechanism: Mechanism, model: PopulationModel, last: Outcome | None, year: int
    ) -> tuple[Ballots, dict[str, float]]:
        """Every worker's ranking and approvals of the platforms, and figures for the summary.
        By default each votes its own utility under each platform, the population responding."""
        return rational_ballots(model, mechanism, platforms), {}

    @abstractmethod
    def expected_hours(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        """(..., N) mean hours under a (possibly batched) policy: the population model planners query."""
