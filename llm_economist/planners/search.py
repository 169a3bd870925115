"""Black-box planners over any mechanism's parameter box: cross-entropy search on a budget of
evaluations, and an exhaustive grid (with one local refinement) for small parameter counts."""

from __future__ import annotations

import itertools

import torch

from ..mechanisms.base import Mechanism
from ..population_model import PopulationModel
from .base import OneShotPlanner

Tensor = torch.Tensor


class SearchPlanner(OneShotPlanner):
    """Cross-entropy method: sample candidates from a Gaussian, refit it to the best quarter, repeat.

    Spends exactly `budget` population-model evaluations before the first year, then holds the
    best parameters found.
    """

    kind = "search"

    def __init__(self, mechanism: Mechanism, budget: int = 400, batch: int = 40, elite_fraction: float = 0.25, seed: int = 0) -> None:
        if budget < 2:
            raise ValueError(f"search planner: budget must be at least 2 evaluations, got {budget}")
        if not 2 <= batch <= budget:
            raise ValueError(f"search planner: batch must lie in [2, budget = {budget}], got {batch}")
        if not 0 < elite_fraction < 1:
            raise ValueError(f"search planner: elite_fraction must lie in (0, 1), got {elite_fraction}")
        super().__init__(mechanism)
        self.budget, self.batch, self.elite_fraction, self.seed = budget, batch, elite_fraction, seed
        self.best_welfare = float("-inf")

    def plan(self, population_model: PopulationModel) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        low, high = self.mechanism.bounds()
        mean, std = self.mechanism.initial(), (high - low) / 4.0
        best = mean.clone()
        self.best_welfare = float(population_model.evaluate(self.mechanism, best.unsqueeze(0))[0])
        spent = 1
        while spent < self.budget:
            n = min(self.batch, self.budget - spent)
            candidates = self.mechanism.clip(mean + std * torch.randn(n, self.mechanism.size, generator=generator, dtype=mean.dtype))
            welfare = population_model.evaluate(self.mechanism, candidates)
            spent += n
            top = welfare.argmax()
            if welfare[top] > self.best_welfare:
                self.best_welfare, best = float(welfare[top]), candidates[top].clone()
            elite = candidates[welfare.argsort(descending=True)[: max(2, int(self.elite_fraction * n))]]
            mean, std = elite.mean(dim=0), elite.std(dim=0).clamp(min=1e-4 * (high - low))
        self.evaluations += spent
        return best


class GridPlanner(OneShotPlanner):
    """Every point of a regular grid over the parameter box, then a finer grid around the best.

    The reference optimum that other planners are measured against. Refuses grids larger than
    `max_points` rather than running for hours.
    """

    kind = "grid"

    def __init__(self, mechanism: Mechanism, points_per_parameter: int = 21, refine_points: int = 11, max_points: int = 200_000) -> None:
        total = points_per_parameter ** mechanism.size
        if points_per_parameter < 2:
            raise ValueError(f"grid planner: points_per_parameter must be at least 2, got {points_per_parameter}")
        if total > max_points:
            raise ValueError(
                f"grid planner: points_per_parameter = {points_per_parameter} over {mechanism.size} parameters gives "
                f"{total:,} points, more than max_points = {max_points:,}; use fewer points, fewer parameters, or the search planner"
            )
        super().__init__(mechanism)
        self.points, self.refine_points, self.max_points = points_per_parameter, refine_points, max_points
        self.best_welfare = float("-inf")

    def _best_on_grid(self, population_model: PopulationModel, axes: list[Tensor]) -> tuple[Tensor, float]:
        grid = torch.tensor(list(itertools.product(*(a.tolist() for a in axes))), dtype=torch.float64)
        welfare = population_model.evaluate(self.mechanism, grid)
        self.evaluations += len(grid)
        top = int(welfare.argmax())
        return grid[top], float(welfare[top])

    def plan(self, population_model: PopulationModel) -> Tensor:
        low, high = self.mechanism.bounds()
        coarse = [torch.linspace(lo, hi, self.points, dtype=torch.float64) for lo, hi in zip(low.tolist(), high.tolist())]
        best, self.best_welfare = self._best_on_grid(population_model, coarse)
        if self.refine_points > 1 and self.refine_points ** self.mechanism.size <= self.max_points:
            step = (high - low) / (self.points - 1)
            fine = [
                torch.linspace(max(lo, b - s), min(hi, b + s), self.refine_points, dtype=torch.float64)
                for b, s, lo, hi in zip(best.tolist(), step.tolist(), low.tolist(), high.tolist())
            ]
            refined, welfare = self._best_on_grid(population_model, fine)
            if welfare > self.best_welfare:
                best, self.best_welfare = refined, welfare
        return best
