"""Settling a period: from hours chosen under a policy to incomes, taxes, transfers and utilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .inequality import gini
from .policy import Policy
from .utility import Preferences, annual_income, utility

Tensor = torch.Tensor


@dataclass(frozen=True)
class Outcome:
    """One period for every agent, annual $ terms; all fields (..., N) except `transfer` and
    `funding_rate` (..., 1), the flat rate that paid for the transfer where the policy is funded so."""

    hours: Tensor
    income: Tensor
    tax: Tensor
    transfer: Tensor
    consumption: Tensor
    utility: Tensor
    funding_rate: Tensor | None = None

    @property
    def revenue(self) -> Tensor:
        """Mean tax per agent."""
        return self.tax.mean(dim=-1)


def settle(wage: Tensor, hours: Tensor, policy: Policy, prefs: Preferences) -> Outcome:
    """z = 52 w h, taxes and the transfer as the policy levies them, c = z - T + transfer, u(c, h)."""
    z = annual_income(wage, hours)
    taxes, transfer, funding_rate = policy.levy(z)
    c = (z - taxes).add_(transfer)
    return Outcome(hours, z, taxes, transfer, c, utility(c, hours, prefs), funding_rate)


def hours_shares(hours: Tensor, max_hours: float) -> dict[str, float]:
    """Shares of agents working 0 h and at the hours cap."""
    return {
        "share_zero_hours": float((hours <= 1e-9).double().mean()),
        "share_at_cap": float((hours >= max_hours - 1e-9).double().mean()),
    }


def aggregates(outcome: Outcome, max_hours: float) -> dict[str, float]:
    """Population figures of one period ($ per agent and year)."""
    return {
        "mean_hours": float(outcome.hours.mean()),
        "output": float(outcome.income.mean()),
        "revenue": float(outcome.revenue),
        "transfer": float(outcome.transfer.reshape(-1)[0]),
        # Revenue the transfers leave over ($ per agent): 0 when all of it is paid back.
        "budget_balance": float(outcome.revenue - outcome.transfer.reshape(-1)[0]),
        # Rounding can leave -1e-17 for equal incomes.
        "gini_income": float(gini(outcome.income).clamp(0.0, 1.0)),
        "gini_consumption": float(gini(outcome.consumption).clamp(0.0, 1.0)),
        **hours_shares(outcome.hours, max_hours),
    }
