"""A policy is what workers face: a marginal tax schedule, lump-sum transfers, and how the budget balances.

Two ways to balance the budget (``funding``), per agent and year:

- ``rebate``: transfer = lump_sum + rebate_share * (mean_i T(z_i) - lump_sum): a guaranteed lump
  sum, and the given share of net revenue paid back equally. The rest of net revenue is kept by
  the government (``budget_balance`` in the aggregates).
- ``flat_rate``: transfer = lump_sum exactly, paid for by a flat rate s on all income on top of
  the schedule, s = (lump_sum - mean_i T(z_i)) / mean_i z_i, kept where no marginal rate leaves
  [0, 1]; where that bound binds the rest is a deficit (a negative ``budget_balance``).

A policy may tax by filing status (``by_filing``): its schedule then has one row per filing group
(cutoffs (G, K)), and `for_agents` gives every agent its group's row, once the population's tax
units are known (`PopulationModel.resolve`). Where couples who both work file one return
(``joint``), a spouse's schedule of its own earnings is the return's above what its partner is
expected to earn, plus payroll tax on its own wages. Workers are atomistic: they take the
balancing value (the transfer, or the funding rate) and their partner's earnings as given when
they choose hours, expecting last period's; `faced` gives the rules that expectation implies, in
the rebate form every worker population understands.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property

import torch

from . import tax
from .tax import TaxSchedule, combined, shifted, widened

Tensor = torch.Tensor

FUNDINGS = ("rebate", "flat_rate")


@dataclass(frozen=True)
class TaxUnits:
    """Who files with whom: each worker's filing group (N,) and its spouse's position where the
    spouse is a worker too (N,), -1 for none."""

    filing: Tensor
    partner: Tensor

    def __post_init__(self) -> None:
        n = len(self.filing)
        p = self.partner
        if p.shape != (n,) or ((p < -1) | (p >= n)).any():
            raise ValueError(f"tax units: partner must hold one position in [-1, {n}) per worker")
        couples = torch.nonzero(p >= 0).squeeze(-1)
        if (p[p[couples]] != couples).any() or (self.filing[couples] != self.filing[p[couples]]).any():
            raise ValueError("tax units: spouses must name each other and share a filing group")

    @property
    def couples(self) -> Tensor:
        """(N,) bool: workers who file one return with a working spouse."""
        return self.partner >= 0

    @cached_property
    def spouses(self) -> Tensor:
        """Positions of the workers who file one return with a working spouse."""
        return torch.nonzero(self.couples).squeeze(-1)

    def waiting(self, turn: int) -> Tensor:
        """(N,) the spouses who keep their hours on this turn when spouses take turns to respond
        to each other: the first of each couple on odd turns, the second on even ones."""
        first = self.partner > torch.arange(len(self.partner), device=self.partner.device)
        return self.couples & (first if turn % 2 else ~first)

    def take_turn(self, turn: int, previous: Tensor | None, chosen: Tensor) -> Tensor:
        """Hours (..., N) on this turn: `chosen`, but `previous` for the spouses `waiting`
        (everyone's `chosen` on the first turn, with nothing before it)."""
        return chosen if previous is None else torch.where(self.waiting(turn), previous, chosen)


@dataclass(frozen=True)
class JointReturns:
    """A return two working spouses file together: its taxes on their combined earnings (income tax,
    credits), rows by filing group, and each spouse's own taxes on its wages (payroll), one
    schedule for all; once resolved, who files with whom.

    The return's tax J(z_1 + z_2) is split so each spouse pays (J(z_1 + z_2) + J(z_i) - J(z_o)) / 2
    plus its payroll tax: the shares add up to the return, a spouse whose partner earns nothing
    pays all of it, equal earners pay equal halves. A spouse's marginal rate is the return's at
    the couple's income, J'(z_1 + z_2), plus its own payroll rate.
    """

    combined: TaxSchedule
    earner: TaxSchedule
    units: TaxUnits | None = None

    def _spouse_chunks(self) -> Iterator[tuple[Tensor, Tensor, TaxSchedule]]:
        """The spouses `tax.AGENT_CHUNK` at a time: each chunk's positions, its partners' positions
        and its returns' schedules, so that a chunk's rows stay in cache."""
        for start in range(0, len(self.units.spouses), tax.AGENT_CHUNK):
            spouses = self.units.spouses[start:start + tax.AGENT_CHUNK]
            partners = self.units.partner.index_select(0, spouses)
            yield spouses, partners, self.combined.for_agent(self.units.filing.index_select(0, spouses))

    def taxes(self, z: Tensor, taxes: Tensor) -> Tensor:
        """`taxes` (..., N) with each spouse's entry its share of its return plus its payroll tax."""
        taxes = taxes.clone()
        for spouses, partners, returns in self._spouse_chunks():
            own, other = z.index_select(-1, spouses), z.index_select(-1, partners)
            shares = self.earner.tax(own) + 0.5 * (returns.tax(own + other) + returns.tax(own) - returns.tax(other))
            taxes.index_copy_(-1, spouses, shares.expand(*taxes.shape[:-1], shares.shape[-1]))
        return taxes

    @property
    def width(self) -> int:
        """Brackets of a spouse's schedule: the return's and the payroll tax's, merged."""
        return self.combined.n_brackets + self.earner.n_brackets - 1

    def faced_by_spouses(self, cutoffs: Tensor, rates: Tensor, earnings: Tensor | None) -> TaxSchedule:
        """Every agent's schedule from its rows (..., N, K) (K at least `width`, written over), each
        spouse's row the return's schedule above what its partner is expected to earn (its entry in
        `earnings` (..., N); none: nothing) plus payroll tax."""
        batch = torch.broadcast_shapes(cutoffs.shape[:-2], rates.shape[:-2], self.combined.cutoffs.shape[:-2],
                                       () if earnings is None else earnings.shape[:-1])
        if cutoffs.shape[:-2] != batch:
            cutoffs = cutoffs.expand(*batch, *cutoffs.shape[-2:]).clone()
        if rates.shape[:-2] != batch:
            rates = rates.expand(*batch, *rates.shape[-2:]).clone()
        for spouses, partners, returns in self._spouse_chunks():
            if earnings is None:
                expected = torch.zeros(len(spouses), dtype=rates.dtype, device=rates.device)
            else:
                expected = earnings.index_select(-1, partners).to(rates.dtype)
            faced = widened(combined(shifted(returns, expected), self.earner), cutoffs.shape[-1])
            cutoffs.index_copy_(-2, spouses, faced.cutoffs.expand(*cutoffs.shape[:-2], *faced.cutoffs.shape[-2:]))
            rates.index_copy_(-2, spouses, faced.rates.expand(*rates.shape[:-2], *faced.rates.shape[-2:]))
        return TaxSchedule.derived(cutoffs, rates)


@dataclass(frozen=True)
class Policy:
    schedule: TaxSchedule
    lump_sum: Tensor | float = 0.0
    rebate_share: float = 1.0
    funding: str = "rebate"
    by_filing: bool = False  # schedule rows are filing groups, not agents
    joint: JointReturns | None = None  # how couples who both work file, where they file one return

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.rebate_share) <= 1.0:
            raise ValueError(f"policy: rebate_share must lie in [0, 1], got {self.rebate_share}")
        if self.funding not in FUNDINGS:
            raise ValueError(f"policy: funding must be one of {FUNDINGS}, got {self.funding!r}")

    def for_agents(self, units: TaxUnits | None, earnings: Tensor | None = None) -> Policy:
        """The policy with each agent's own schedule row, where it taxes by filing group. Spouses who
        file one return face it above what their partner is expected to earn: its entry in
        `earnings` (..., N), everyone's expected earnings (none given: as if the partner earned nothing)."""
        if not self.by_filing:
            return self
        if units is None:
            raise ValueError("policy: this mechanism taxes by filing status, and the population's filing groups are unknown")
        joint = None if self.joint is None or not bool(units.couples.any()) else replace(self.joint, units=units)
        rows = widened(self.schedule, joint.width if joint else 0)
        cutoffs, rates = rows.cutoffs.index_select(-2, units.filing), rows.rates.index_select(-2, units.filing)  # fresh copies
        schedule = TaxSchedule.derived(cutoffs, rates) if joint is None else joint.faced_by_spouses(cutoffs, rates, earnings)
        return replace(self, schedule=schedule, by_filing=False, joint=joint)

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
        if self.joint is not None and self.joint.units is not None:
            taxes = self.joint.taxes(income, taxes)
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
