"""Social welfare functions over a period's outcome, and the marginal welfare weights they imply.

All take an Outcome with fields (..., N) and return (...,): one number per schedule in a batch.
The default, `ability_weighted`, weighs each worker's utility by a fixed function of its hourly
wage (its ability), so the weights do not move with the income a policy makes it earn: the
objective is Paretian, and the Saez formula (which takes weights as given) and a search over
schedules optimise the same thing. `inverse_income` is the reference paper's function, kept for
reproduction: its weights follow the chosen income, so a planner can gain by moving workers
across the floor. `atkinson` and `equality_productivity` are functions of consumption and income
only: they ignore the disutility of work (welfare is the same at 0 h and 80 h), as in their
sources.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Callable

import torch

from .inequality import gini
from .outcome import Outcome
from .utility import MIN_CONSUMPTION, Preferences, utility

Tensor = torch.Tensor


def utilitarian(outcome: Outcome) -> Tensor:
    """W = mean_i u_i."""
    return outcome.utility.mean(dim=-1)


def ability_weights(wage: Tensor, inequality_aversion: float = 1.0) -> Tensor:
    """w_i = (wage_i / mean wage)^(-inequality_aversion), normalised to mean 1: more weight on
    lower-ability workers, fixed by who they are, not by what they earn under a policy."""
    if not inequality_aversion >= 0:
        raise ValueError(f"ability_weighted: inequality_aversion must be non-negative, got {inequality_aversion}")
    weights = (wage / wage.mean()).pow(-inequality_aversion)
    return weights / weights.mean()


def ability_weighted(wage: Tensor, inequality_aversion: float = 1.0) -> Callable[[Outcome], Tensor]:
    """W = mean_i w_i u_i with the ability weights w_i of `ability_weights` (Paretian; weights
    independent of the policy). inequality_aversion = 0 is the utilitarian mean. Made for one
    population's wages (`bind_welfare`): the weights are worked out once, and each outcome costs
    one product of its utilities with them."""
    weights = ability_weights(wage, inequality_aversion)

    def welfare(outcome: Outcome) -> Tensor:
        return (outcome.utility @ weights.to(outcome.utility.dtype)) / weights.shape[-1]

    return welfare


def inverse_income_weighted(outcome: Outcome, income_floor: float = 10_000.0) -> Tensor:
    """W = sum_i w_i u_i / sum_i w_i with w_i = 1 / max(z_i, floor): the reference paper's function.

    The weights follow the income the policy produces, so the function is not Paretian. The floor keeps a zero-income agent from taking all the weight (1/0). The weights move with
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


# Functions of an outcome, except those in WAGE_WEIGHTED: they are first made for a population's wages.
SOCIAL_WELFARE_FUNCTIONS: dict[str, Callable] = {
    "ability_weighted": ability_weighted,
    "utilitarian": utilitarian,
    "inverse_income": inverse_income_weighted,
    "rawlsian": rawlsian,
    "atkinson": atkinson,
    "equality_productivity": equality_times_productivity,
}


WAGE_WEIGHTED = ("ability_weighted",)  # welfare functions made for a population's hourly wages, then given outcomes
CONSUMPTION_MEASURES = ("atkinson", "equality_productivity")  # welfare functions whose W is an amount of consumption or income
DEFAULT_WELFARE = "ability_weighted"


def welfare_unit(name: str, eta: float | None = None) -> str:
    """What one unit of W is. Consumption measures are dollars a year; the others average (or, for
    `rawlsian`, take the least) utility, which is dollars a year only when utility is quasi-linear
    (eta = 0: u = c - 1 - labour disutility in $) and utils otherwise; eta None: not known."""
    whose = "of the worst-off worker" if name == "rawlsian" else "per worker"
    if name in CONSUMPTION_MEASURES:
        return f"$/yr {whose}"
    if eta is None:
        return f"utility {whose}: $/yr if eta = 0, utils otherwise"
    return f"$/yr-equivalent utility {whose}" if eta == 0 else f"utils {whose} (eta = {eta:g})"


def social_welfare(outcome: Outcome, name: str, wage: Tensor | None = None, **params) -> Tensor:
    """Look up a welfare function by name and apply it; `wage` (N,) feeds the wage-weighted ones."""
    return bind_welfare(name, wage, **params)(outcome)


def bind_welfare(name: str, wage: Tensor | None = None, **params) -> Callable[[Outcome], Tensor]:
    """`social_welfare` for one population, as a function of its outcomes: the weights of a
    wage-weighted function are worked out here, once, instead of with every outcome scored."""
    try:
        fn = SOCIAL_WELFARE_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"welfare: unknown function {name!r}; choose one of {sorted(SOCIAL_WELFARE_FUNCTIONS)}") from None
    if name in WAGE_WEIGHTED:
        if wage is None:
            raise ValueError(f"welfare {name!r} weighs workers by their wage: pass wage")
        return fn(wage, **params)
    return partial(fn, **params)


def marginal_welfare_weights(outcome: Outcome, prefs: Preferences, name: str, wage: Tensor | None = None, **params) -> Tensor:
    """g_i = dW/dc_i normalised to mean 1 (Saez's social marginal welfare weights), by autograd.

    Utility is re-evaluated from consumption so that any welfare function works unchanged. A
    worker whose consumption (less any fixed cost of working) is below the utility's floor is
    weighed at the floor: what a dollar more is worth to it, not the floor's flat zero slope.
    Rawlsian weights are all on the worst-off (ties share them), given directly: by autograd they
    vanish when that worker's consumption sits at the utility's floor.
    """
    if name == "rawlsian":
        worst = (outcome.utility == outcome.utility.min(dim=-1, keepdim=True).values).to(outcome.utility.dtype)
        return worst / worst.mean(dim=-1, keepdim=True)
    floor = MIN_CONSUMPTION + (prefs.cost() * (outcome.hours > 0) if prefs.has_fixed_cost else 0.0)
    c = torch.maximum(outcome.consumption.detach(), torch.as_tensor(floor, dtype=outcome.consumption.dtype)).requires_grad_(True)
    probe = replace(outcome, consumption=c, utility=utility(c, outcome.hours.detach(), prefs))
    (grad,) = torch.autograd.grad(social_welfare(probe, name, wage, **params).sum(), c)
    return grad / grad.mean(dim=-1, keepdim=True)
