"""A policy is what workers face: a marginal tax schedule, lump-sum transfers, and how the budget balances.

Two ways to balance the budget (``funding``), per agent and year:

- ``rebate``: transfer = lump_sum + rebate_share * (mean_i T(z_i) - lump_sum): a guaranteed lump
  sum, and the given share of net revenue paid back equally. The rest of net revenue is kept by
  the government (``budget_balance`` in the aggregates).
- ``flat_rate``: transfer = lump_sum exactly, paid for by a flat rate s on all income on top of
  the schedule, s = (lump_sum - mean_i T(z_i)) / mean_i z_i, kept where no marginal rate leaves
  [0, 1]; where that bound binds the rest is a deficit (a negative ``budget_balance``).

A policy may tax by filing status (``by_filing``): its schedule then has one row per filing group
(cutoffs (G, K)), and `for_agents` gives every agent its group's row, once the population's
filing groups are known (`PopulationModel.resolve`). Workers are atomistic: they take the balancing value (the transfer, or the funding rate) as
given when they choose hours, expecting last period's; `faced` gives the rules that expectation
implies, in the rebate form every worker population understands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .tax import TaxSchedule

Tensor = torch.Tensor

FUNDINGS = ("rebate", "flat_rate")


@dataclass(frozen=True)
class Policy:
    schedule: TaxSchedule
    lump_sum: Tensor | float = 0.0
    rebate_share: float = 1.0
    funding: str = "rebate"
    by_filing: bool = False  # schedule rows are filing groups, not agents

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.rebate_share) <= 1.0:
            raise ValueError(f"policy: rebate_share must lie in [0, 1], got {self.rebate_share}")
        if self.funding not in FUNDINGS:
            raise ValueError(f"policy: funding must be one of {FUNDINGS}, got {self.funding!r}")

    def for_agents(self, filing: Tensor | None) -> Policy:
        """The policy with each agent's own schedule row, where it taxes by filing group (N,)."""
        if not self.by_filing:
            return self
        if filing is None:
            raise ValueError("policy: this mechanism taxes by filing status, and the population's filing groups are unknown")
        s = self.schedule
        return replace(self, schedule=TaxSchedule(s.cutoffs[filing], s.rates[..., filing, :]), by_filing=False)

    def for_agent(self, i: int) -> Policy:
        """Agent i's rules: the policy with its own schedule (itself when all share one)."""
        return replace(self, schedule=self.schedule.for_agent(i)) if self.schedule.per_agent else self

    def _lump(self, like: Tensor) -> Tensor:
        """The lump sum as (..., 1) (or (1,)) in `like`'s dtype."""
        lump = torch.as_tensor(self.lump_sum, dtype=like.dtype, device=like.device)
        return lump.unsqueeze(-1) if lump.ndim else lump.reshape(1)

    def transfer(self, taxes: Tensor) -> Tensor:
        """(..., 1) transfer per agent given everyone's taxes (..., N), under the rebate rule."""
        lump = self._lump(taxes)
        return lump + self.rebate_share * (taxes.mean(dim=-1, keepdim=True) - lump)

    def levy(self, income: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Taxes (..., N), transfer (..., 1) and funding rate (..., 1) for everyone's incomes (..., N)."""
        taxes = self.schedule.tax(income)
        if self.funding == "rebate":
            transfer = self.transfer(taxes)
            return taxes, transfer, torch.zeros_like(transfer)
        lump = self._lump(taxes).expand(*taxes.shape[:-1], 1)
        needed = lump - taxes.mean(dim=-1, keepdim=True)
        low, high = self.funding_rate_bounds()
        rate = needed / income.mean(dim=-1, keepdim=True).clamp(min=1.0)
        rate = torch.minimum(torch.maximum(rate, low), high)
        return taxes + rate * income, lump, rate

    def funding_rate_bounds(self) -> tuple[Tensor, Tensor]:
        """(..., 1) the flat rates that keep every marginal rate in [0, 1]."""
        rates = self.schedule.rates.reshape(*self.schedule.batch_shape, -1)  # every agent's rates together
        return -rates.min(dim=-1, keepdim=True).values, 1.0 - rates.max(dim=-1, keepdim=True).values

    def expectation(self, outcome) -> Tensor:
        """What workers expect next period from this one's outcome: the transfer or the funding rate."""
        return outcome.transfer if self.funding == "rebate" else outcome.funding_rate

    def faced(self, expected: Tensor) -> tuple[Policy, Tensor]:
        """The rules a worker expecting `expected` faces, as a rebate policy and the transfer it expects."""
        if self.funding == "rebate":
            return self, expected
        low, high = self.funding_rate_bounds()
        rate = torch.minimum(torch.maximum(torch.as_tensor(expected, dtype=low.dtype), low), high)
        per_agent = rate.unsqueeze(-1) if self.schedule.per_agent else rate
        schedule = TaxSchedule(self.schedule.cutoffs, (self.schedule.rates + per_agent).clamp(-1.0, 1.0))  # rounding
        lump = self._lump(schedule.rates)
        return Policy(schedule, self.lump_sum, rebate_share=0.0), lump
