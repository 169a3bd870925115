"""A planner that draws every year's parameters uniformly from the mechanism's bounds.

It learns nothing: it is the sampler behind `distill collect`, which needs workers' reactions
to schedules spread over the whole parameter space rather than near one optimum, and a
lower bound any learning planner should beat.
"""

from __future__ import annotations

import torch

from ..mechanisms.base import Mechanism
from ..population_model import PopulationModel
from .base import Planner, YearRecord

Tensor = torch.Tensor


class RandomPlanner(Planner):
    kind = "random"

    def __init__(self, mechanism: Mechanism, seed: int = 0) -> None:
        super().__init__(mechanism)
        self.seed = seed

    def propose(self, year: int, history: list[YearRecord], population_model: PopulationModel) -> Tensor:
        # Seeded by year, so a resumed run draws exactly what an uninterrupted one would.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + year)
        low = torch.tensor([p.low for p in self.mechanism.parameters], dtype=torch.float64)
        high = torch.tensor([p.high for p in self.mechanism.parameters], dtype=torch.float64)
        return low + (high - low) * torch.rand(self.mechanism.size, generator=generator, dtype=torch.float64)
