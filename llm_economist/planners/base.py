"""The planner interface: propose a mechanism's parameters at the start of each tax year."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from ..mechanisms.base import Mechanism
from ..population_model import PopulationModel

Tensor = torch.Tensor


@dataclass(frozen=True)
class YearRecord:
    """What a planner learns after a tax year: its parameters and the year's aggregates."""

    year: int
    theta: Tensor
    welfare: float
    metrics: dict[str, float]

    @classmethod
    def of(cls, year: int, theta: Tensor, periods: list[dict[str, float]]) -> YearRecord:
        """The record of a year from its periods' metrics: their means."""
        mean = {key: sum(m[key] for m in periods) / len(periods) for key in periods[0]}
        return cls(year, theta.clone(), mean["welfare"], mean)


class Planner(ABC):
    """Planners hold no reference to the population model, so their state pickles into checkpoints.
    Planners that talk get the run's language-model client when built; it is never pickled and the
    runner hands it back to a planner restored from a checkpoint."""

    kind: str = ""
    client = None  # the language-model client of planners that talk
    # True when the planner queries the population model (PopulationModel.respond) rather than learning
    # only from realised years; reports say so next to its numbers.
    uses_population_model: bool = False
    progress: bool = False  # planners that train for long draw a bar when the run draws one (the runner sets it)

    def __init__(self, mechanism: Mechanism) -> None:
        self.mechanism = mechanism
        self.evaluations = 0
        self.notes: list[str] = []  # what a reader of the results must know about this planner's run
        # One row per language-model proposal (planners that talk): its reason, tokens and
        # `failure` (None when usable), from which the runner counts fallbacks.
        self.log: list[dict] = []
        # Files the planner leaves in the run directory (name -> bytes), e.g. a trained policy.
        self.artifacts: dict[str, bytes] = {}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "client"}

    @abstractmethod
    def propose(self, year: int, history: list[YearRecord], population_model: PopulationModel) -> Tensor:
        """(P,) parameters for this year, within the mechanism's bounds."""


class OneShotPlanner(Planner):
    """Optimises once against the population model before the first year, then holds the result."""

    uses_population_model = True

    def __init__(self, mechanism: Mechanism) -> None:
        super().__init__(mechanism)
        self.theta: Tensor | None = None

    def propose(self, year: int, history: list[YearRecord], population_model: PopulationModel) -> Tensor:
        if self.theta is None:
            self.theta = self.plan(population_model)
        return self.theta.clone()

    @abstractmethod
    def plan(self, population_model: PopulationModel) -> Tensor:
        """(P,) the parameters to hold."""
