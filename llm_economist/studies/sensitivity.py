"""How welfare moves with each mechanism parameter: dW/dtheta from one backward pass through the
population model, and central finite differences to check it.

Welfare over a horizon of T periods is the mean of the periods' welfare; each period re-solves the
transfer fixed point starting from the previous period's transfer, so populations whose response
depends on the past are followed through time (memoryless workers give the same value each period).
"""

from __future__ import annotations

import torch

from ..config import RunConfig
from ..factory import build_setup
from ..mechanisms.base import Mechanism
from ..population_model import PopulationModel

Tensor = torch.Tensor

# Worker kinds whose mean hours move smoothly with the rates; exact best responses (`rational`, and
# the population model of `llm` workers) jump between brackets and bunch at the kinks.
SMOOTH_WORKERS = ("bounded", "surrogate")


def sensitivity_model(config: RunConfig) -> PopulationModel:
    """The population model `run` builds for this config, without a run directory or a language model;
    ValueError naming the workers.kind to use when the population is not smooth in the rates."""
    kind = config.workers.kind
    if kind not in SMOOTH_WORKERS:
        model = " (whose population model is the rational one)" if kind == "llm" else ""
        raise ValueError(
            f"sensitivity: under workers.kind = {kind}{model} hours are piecewise flat in the rates, so dW/dθ is "
            "zero or meaningless; use --set workers.kind=bounded (or surrogate)"
        )
    # Planners play no part here: without them no language-model client is opened.
    return build_setup(config.model_copy(update={"planners": []})).model


def welfare_gradient(population_model: PopulationModel, mechanism: Mechanism, theta, horizon: int = 1) -> dict[str, float]:
    """dW/dtheta_j for every parameter, from one backward pass.

    Raises ValueError when welfare has no gradient path to the parameters (a mechanism or worker
    policy that is not differentiable).
    """
    theta = mechanism.validate(theta).clone().requires_grad_(True)
    welfare = population_model.horizon_welfare(mechanism, theta, horizon)
    if not welfare.requires_grad:
        raise ValueError(
            f"{mechanism.name}: welfare has no gradient with respect to its parameters under "
            f"{type(population_model.workers).__name__}; use a differentiable population (workers.kind = bounded or surrogate)"
        )
    (grad,) = torch.autograd.grad(welfare, theta, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(theta)
    if not torch.isfinite(grad).all():
        raise ValueError(f"{mechanism.name}: welfare gradient is not finite at {mechanism.as_dict(theta.detach())}")
    return {name: float(g) for name, g in zip(mechanism.names, grad.tolist())}


def finite_difference_gradient(population_model: PopulationModel, mechanism: Mechanism, theta, h: float = 1e-4, horizon: int = 1) -> dict[str, float]:
    """Central differences (W(theta + h e_j) - W(theta - h e_j)) / 2h; one-sided at a bound."""
    theta = mechanism.validate(theta)
    low, high = mechanism.bounds(theta.dtype)
    result = {}
    with torch.no_grad():
        for j, name in enumerate(mechanism.names):
            plus, minus = theta.clone(), theta.clone()
            plus[j] = torch.clamp(theta[j] + h, max=high[j])
            minus[j] = torch.clamp(theta[j] - h, min=low[j])
            up = population_model.horizon_welfare(mechanism, plus, horizon)
            down = population_model.horizon_welfare(mechanism, minus, horizon)
            result[name] = float((up - down) / (plus[j] - minus[j]))
    return result
