"""Settling a period: from hours chosen under a policy to incomes, taxes, transfers and utilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .policy import Policy
from .utility import Preferences, annual_income, utility

Tensor = torch.Tensor


@dataclass(frozen=True)
class Outcome:
    """One period for every agent, annual $ terms; all fields (..., N) except `transfer` (..., 1)."""

    hours: Tensor
    income: Tensor
    tax: Tensor
    transfer: Tensor
    consumption: Tensor
    utility: Tensor

    @property
    def revenue(self) -> Tensor:
        """Mean tax per agent."""
        return self.tax.mean(dim=-1)


def settle(wage: Tensor, hours: Tensor, policy: Policy, prefs: Preferences) -> Outcome:
    """z = 52 w h, T(z), transfer from everyone's taxes, c = z - T(z) + transfer, u(c, h)."""
    z = annual_income(wage, hours)
    taxes = policy.schedule.tax(z)
    transfer = policy.transfer(taxes)
    c = z - taxes + transfer
    return Outcome(hours, z, taxes, transfer, c, utility(c, hours, prefs))
