"""What a worker policy sees each period, and the interface every population implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from ..economy.outcome import Outcome
from ..economy.policy import Policy

Tensor = torch.Tensor


@dataclass(frozen=True)
class Observation:
    """The period's decision context for all agents at once."""

    wage: Tensor  # (N,) hourly wage
    policy: Policy  # the mechanism in force this year
    expected_transfer: Tensor  # (1,) transfer a worker expects this period (last period's)
    last: Outcome | None  # last period's outcome, None in the first period
    year: int
    step: int


class WorkerPolicy(ABC):
    """Maps a batch of observations to weekly hours for every agent in one call."""

    name: str = ""

    @abstractmethod
    def act(self, obs: Observation, generator: torch.Generator) -> Tensor:
        """(N,) hours this period; any randomness draws from `generator`."""

    @abstractmethod
    def expected_hours(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        """(..., N) mean hours under a (possibly batched) policy: the population model planners query."""
