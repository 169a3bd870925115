"""The planner interface: propose a mechanism's parameters at the start of each tax year."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from ..mechanisms.base import Mechanism
from ..world import World

Tensor = torch.Tensor


@dataclass(frozen=True)
class YearRecord:
    """What a planner learns after a tax year: its parameters and the year's aggregates."""

    year: int
    theta: Tensor
    welfare: float
    metrics: dict[str, float]


class Planner(ABC):
    """Planners hold no reference to the world, so their state pickles into checkpoints."""

    kind: str = ""
    # True when the planner queries the population model (World.respond) rather than learning
    # only from realised years; reports say so next to its numbers.
    uses_population_model: bool = False

    def __init__(self, mechanism: Mechanism) -> None:
        self.mechanism = mechanism
        self.evaluations = 0
        self.notes: list[str] = []  # what a reader of the results must know about this planner's run
        # One row per language-model proposal (planners that talk): its reason, tokens and
        # `failure` (None when usable), from which the runner counts fallbacks.
        self.log: list[dict] = []

    @abstractmethod
    def propose(self, year: int, history: list[YearRecord], world: World) -> Tensor:
        """(P,) parameters for this year, within the mechanism's bounds."""


class OneShotPlanner(Planner):
    """Optimises once against the population model before the first year, then holds the result."""

    uses_population_model = True

    def __init__(self, mechanism: Mechanism) -> None:
        super().__init__(mechanism)
        self.theta: Tensor | None = None

    def propose(self, year: int, history: list[YearRecord], world: World) -> Tensor:
        if self.theta is None:
            self.theta = self.plan(world)
        return self.theta.clone()

    @abstractmethod
    def plan(self, world: World) -> Tensor:
        """(P,) the parameters to hold."""
