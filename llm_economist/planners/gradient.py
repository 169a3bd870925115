"""Gradient ascent on welfare through the differentiable population model."""

from __future__ import annotations

import torch

from ..mechanisms.base import Mechanism
from ..population_model import PopulationModel
from .base import OneShotPlanner

Tensor = torch.Tensor

# Starting points are kept this far (as a fraction of the range) inside the box, where the
# sigmoid still has a usable slope.
EDGE = 1e-3


class GradientPlanner(OneShotPlanner):
    """Adam on welfare averaged over `horizon` periods, from several starts; keeps the best.

    Parameters live on the box through theta = low + (high - low) * sigmoid(u), and Adam moves u,
    so every iterate satisfies the bounds. The first start is the mechanism's initial parameters,
    the others are drawn uniformly from the box with `seed`. Each restart takes exactly `steps`
    forward and backward passes; the best iterate of every restart is then judged by the population model's
    own welfare. Needs a population whose expected hours are differentiable in the tax rates
    (bounded-rational or surrogate workers).
    """

    kind = "gradient"

    def __init__(
        self, mechanism: Mechanism, horizon: int = 1, steps: int = 200, lr: float = 0.1, restarts: int = 3, seed: int = 0
    ) -> None:
        if horizon < 1:
            raise ValueError(f"gradient planner: horizon must be at least 1 period, got {horizon}")
        if steps < 1:
            raise ValueError(f"gradient planner: steps must be at least 1, got {steps}")
        if not lr > 0:
            raise ValueError(f"gradient planner: lr must be positive, got {lr}")
        if restarts < 1:
            raise ValueError(f"gradient planner: restarts must be at least 1, got {restarts}")
        super().__init__(mechanism)
        self.horizon, self.steps, self.lr, self.restarts, self.seed = horizon, steps, lr, restarts, seed
        self.best_welfare = float("-inf")

    def plan(self, population_model: PopulationModel) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        low, high = self.mechanism.bounds()
        starts = [self.mechanism.initial().to(torch.float64)]
        starts += [low + (high - low) * torch.rand(self.mechanism.size, generator=generator, dtype=torch.float64) for _ in range(self.restarts - 1)]
        candidates = torch.stack([self._ascend(population_model, start, low, high) for start in starts])
        welfare = population_model.evaluate(self.mechanism, candidates)
        self.evaluations += len(candidates)
        top = int(welfare.argmax())
        self.best_welfare = float(welfare[top])
        return candidates[top].clone()

    def _ascend(self, population_model: PopulationModel, start: Tensor, low: Tensor, high: Tensor) -> Tensor:
        """The best iterate of `steps` Adam steps on u from `start`."""
        u = torch.logit(((start - low) / (high - low)).clamp(EDGE, 1.0 - EDGE)).requires_grad_(True)
        optimiser = torch.optim.Adam([u], lr=self.lr)
        best, best_value = start, float("-inf")
        for step in range(self.steps):
            theta = low + (high - low) * torch.sigmoid(u)
            welfare = population_model.horizon_welfare(self.mechanism, theta, self.horizon)
            self.evaluations += 1
            optimiser.zero_grad()
            if welfare.requires_grad:
                (-welfare).backward()
            grad = u.grad
            if grad is None or not torch.isfinite(grad).all() or (step == 0 and not grad.abs().gt(0).any()):
                raise ValueError(
                    f"gradient planner: welfare has no usable gradient with respect to the parameters of "
                    f"{self.mechanism.name} {self.mechanism.names} under {type(population_model.workers).__name__} "
                    f"(gradient {None if grad is None else grad.tolist()}); use a differentiable population "
                    "(workers.kind = bounded or surrogate) or a black-box planner (search, grid)"
                )
            value = float(welfare.detach())
            if value > best_value:
                best, best_value = theta.detach().clone(), value
            optimiser.step()
        return self.mechanism.clip(best)
