"""Social welfare functions over a period's outcome, and the marginal welfare weights they imply.

All take an Outcome with fields (..., N) and return (...,): one number per schedule in a batch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch

from .inequality import gini
from .outcome import Outcome
from .utility import MIN_CONSUMPTION, Preferences, utility

Tensor = torch.Tensor


def utilitarian(outcome: Outcome) -> Tensor:
    """W = mean_i u_i."""
    return outcome.utility.mean(dim=-1)


def inverse_income_weighted(outcome: Outcome, income_floor: float = 10_000.0) -> Tensor:
    """W = sum_i w_i u_i / sum_i w_i with w_i = 1 / max(z_i, floor).

    The floor keeps a zero-income agent from taking all the weight (1/0). The weights move with
    incomes, so the gradient in the mechanism parameters is the total derivative of this number.
    """
    if not income_floor > 0:
        raise ValueError(f"inverse_income_weighted: income_floor must be positive, got {income_floor}")
    weights = 1.0 / outcome.income.clamp(min=income_floor)
    return (weights * outcome.utility).sum(dim=-1) / weights.sum(dim=-1)


def rawlsian(outcome: Outcome) -> Tensor:
    """W = min_i u_i (maximin)."""
    return outcome.utility.min(dim=-1).values


def atkinson(outcome: Outcome, inequality_aversion: float = 1.0) -> Tensor:
    """Equally-distributed-equivalent consumption (mean c^(1-e))^(1/(1-e)); exp(mean log c) at e = 1."""
    if not inequality_aversion >= 0:
        raise ValueError(f"atkinson: inequality_aversion must be non-negative, got {inequality_aversion}")
    c = outcome.consumption.clamp(min=MIN_CONSUMPTION)
    e = inequality_aversion
    if abs(e - 1.0) < 1e-12:
        return torch.exp(torch.log(c).mean(dim=-1))
    return c.pow(1.0 - e).mean(dim=-1).pow(1.0 / (1.0 - e))


def equality_times_productivity(outcome: Outcome) -> Tensor:
    """(1 - Gini of consumption) * mean pre-tax income, as in the AI Economist."""
    return (1.0 - gini(outcome.consumption)) * outcome.income.mean(dim=-1)


SOCIAL_WELFARE_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "utilitarian": utilitarian,
    "inverse_income": inverse_income_weighted,
    "rawlsian": rawlsian,
    "atkinson": atkinson,
    "equality_productivity": equality_times_productivity,
}


def social_welfare(outcome: Outcome, name: str, **params) -> Tensor:
    """Look up a welfare function by name and apply it."""
    try:
        fn = SOCIAL_WELFARE_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"welfare: unknown function {name!r}; choose one of {sorted(SOCIAL_WELFARE_FUNCTIONS)}") from None
    return fn(outcome, **params)


def marginal_welfare_weights(outcome: Outcome, prefs: Preferences, name: str, **params) -> Tensor:
    """g_i = dW/dc_i normalised to mean 1 (Saez's social marginal welfare weights), by autograd.

    Utility is re-evaluated from consumption so that any welfare function works unchanged.
    """
    c = outcome.consumption.detach().clone().requires_grad_(True)
    probe = replace(outcome, consumption=c, utility=utility(c, outcome.hours.detach(), prefs))
    (grad,) = torch.autograd.grad(social_welfare(probe, name, **params).sum(), c)
    return grad / grad.mean(dim=-1, keepdim=True)
