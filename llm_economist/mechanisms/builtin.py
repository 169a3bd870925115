"""Built-in mechanisms: a bracket tax with lump-sum rebate, the 2024 US taxes on earnings, and a
negative income tax."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from ..economy.policy import JointReturns, Policy
from ..economy.tax import (
    NEVER_REACHED_INCOME,
    US_2024_ADDITIONAL_MEDICARE,
    US_2024_EITC,
    US_2024_FILERS,
    US_2024_MEDICARE,
    US_2024_SOCIAL_SECURITY,
    US_FEDERAL_2024_CUTOFFS,
    US_FEDERAL_2024_RATES,
    TaxSchedule,
)
from .base import Mechanism, Parameter

Tensor = torch.Tensor

THREE_BRACKET_CUTOFFS = (0.0, 50_000.0, 150_000.0)


def _dollars(x: float) -> str:
    return f"${x:,.0f}"


class BracketTax(Mechanism):
    """Marginal rates on fixed income brackets; net revenue is rebated equally (lump sum)."""

    name = "bracket_tax"
    batched = True

    def __init__(
        self,
        cutoffs: Sequence[float],
        initial_rates: Sequence[float] | None = None,
        max_rate: float = 1.0,
        rebate_share: float = 1.0,
    ) -> None:
        self.cutoffs = torch.as_tensor(list(cutoffs), dtype=torch.float64)
        if initial_rates is None:
            initial_rates = [0.0] * len(self.cutoffs)
        if len(initial_rates) != len(self.cutoffs):
            raise ValueError(f"bracket_tax: initial_rates needs one rate per cutoff ({len(self.cutoffs)}), got {len(initial_rates)}")
        if not 0 < max_rate <= 1:
            raise ValueError(f"bracket_tax: max_rate must lie in (0, 1], got {max_rate}")
        outside = [r for r in initial_rates if not 0 <= r <= max_rate]
        if outside:
            raise ValueError(f"bracket_tax: initial_rates must lie in [0, max_rate = {max_rate:g}], got {outside[0]:g}")
        # Validates the cutoffs with clear messages.
        TaxSchedule(self.cutoffs, torch.as_tensor(list(initial_rates), dtype=torch.float64))
        self.rebate_share = rebate_share
        self._initial = torch.as_tensor(list(initial_rates), dtype=torch.float64)
        bounds = self.cutoffs.tolist() + [None]
        self.parameters = tuple(
            Parameter(
                name=f"rate_{j}",
                low=0.0,
                high=max_rate,
                unit="fraction",
                description=f"marginal tax rate on income from {_dollars(lo)} "
                + (f"to {_dollars(hi)}" if hi is not None else "upward"),
            )
            for j, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
        )
        Policy(TaxSchedule(self.cutoffs, self._initial), rebate_share=rebate_share)

    def initial(self) -> Tensor:
        return self._initial.clone()

    def compile(self, theta: Tensor) -> Policy:
        """Parameters stay in float64 (as `validate` gives them) whatever the population's precision."""
        return Policy(TaxSchedule(self.cutoffs.to(theta.device), theta), rebate_share=self.rebate_share)

    def describe(self) -> str:
        share = "all" if self.rebate_share == 1 else f"{100 * self.rebate_share:.0f}% of"
        return (
            f"A progressive income tax with {self.size} brackets (cutoffs "
            + ", ".join(_dollars(c) for c in self.cutoffs.tolist())
            + f"; the top bracket is open). Each bracket's income is taxed at its own marginal rate, and {share} "
            "the revenue is paid back to every worker as an equal lump-sum rebate."
        )


# Filing groups of the 2024 US taxes: status (a married couple whose spouses are both workers in
# the population files one joint return on their combined earnings) x qualifying children (0, 1,
# 2, 3 or more).
US_2024_STATUSES = ("single", "married_separate", "head_of_household", "married_joint", "married_joint_two_earners")
EITC_CHILD_GROUPS = len(US_2024_EITC)


def us_filing_groups(filing_status, children, earners) -> torch.Tensor:
    """(N,) each worker's filing group of `USTax2024` from its persona: filing status, children and
    how many of the household's members are workers in the population."""
    status = [("married_joint_two_earners" if f == "married_joint" and e == 2 else str(f)) for f, e in zip(filing_status, earners)]
    index = torch.tensor([US_2024_STATUSES.index(s) for s in status], dtype=torch.long)
    return index * EITC_CHILD_GROUPS + torch.as_tensor(list(children), dtype=torch.long).clamp(max=EITC_CHILD_GROUPS - 1)


Changes = list[tuple[float, "int | None", float]]  # (earnings, statutory bracket that starts there or None, fixed rate added there)


def _return_changes(status: str, children: int, payroll: bool, eitc: bool, deduction: bool) -> Changes:
    """Where the marginal rate of one return's taxes on its earnings changes: income tax, EITC and
    the Additional Medicare tax, all on the return's combined earnings."""
    filer = US_2024_FILERS["married_joint" if status == "married_joint_two_earners" else status]
    start = filer.deduction if deduction else 0.0
    changes: Changes = [(start + c, j, 0.0) for j, c in enumerate(filer.cutoffs)]
    if payroll:
        changes.append((filer.medicare_threshold, None, US_2024_ADDITIONAL_MEDICARE))
    if eitc and filer.eitc_shift is not None:
        phase_in, top, phase_out, begins = US_2024_EITC[children]
        begins += filer.eitc_shift
        changes += [(0.0, None, -phase_in), (top / phase_in, None, phase_in), (begins, None, phase_out),
                    (begins + top / phase_out, None, -phase_out)]
    return changes


def _earner_changes(payroll: bool) -> Changes:
    """Where the marginal rate of the payroll tax on one earner's own wages changes."""
    if not payroll:
        return [(0.0, None, 0.0)]
    rate, base = US_2024_SOCIAL_SECURITY
    return [(0.0, None, rate + US_2024_MEDICARE), (base, None, -rate)]


class USTax2024(Mechanism):
    """The 2024 US taxes on earnings, by filing status: federal income tax above the standard
    deduction, and as options the employee payroll tax and the EITC.

    The parameters are the seven statutory income-tax rates, the same for every filer. Each
    filing group (status x qualifying children, `us_filing_groups`) has its own brackets,
    deduction, EITC and Additional Medicare threshold, merged into one piecewise-linear schedule
    of gross earnings (marginal rates fall where the Social Security wage base ends; the EITC's
    phase-in is a subsidy). A married worker whose spouse is not a worker in the population files
    jointly on its own earnings. Where both spouses are workers, the couple files one joint return
    (`JointReturns`): income tax, EITC and Additional Medicare tax on their combined earnings,
    payroll tax on each one's wages, so each spouse's marginal rate is the return's at the
    couple's income. `filing: single` taxes everyone as a single filer without children. What
    revenue does is `rebate_share`: 1 pays all of it back equally (as in the reference paper), 0
    keeps it as government spending (reported as `budget_balance`, and not valued in welfare).
    """

    name = "us_tax_2024"
    batched = True

    def __init__(self, payroll: bool = True, eitc: bool = True, standard_deduction: bool = True,
                 filing: Literal["persona", "single"] = "persona", rebate_share: float = 1.0) -> None:
        if filing not in ("persona", "single"):
            raise ValueError(f"us_tax_2024: filing must be 'persona' or 'single', got {filing!r}")
        self.by_filing = filing == "persona"
        groups = [(s, k) for s in US_2024_STATUSES for k in range(EITC_CHILD_GROUPS)] if self.by_filing else [("single", 0)]
        earner = _earner_changes(payroll)
        # Each worker's schedule of its own earnings (a couple's: as if the spouse earned nothing).
        self.cutoffs, self.exposure, self.fixed_rates = self._stack(
            [_return_changes(s, k, payroll, eitc, standard_deduction) + earner for s, k in groups])
        if self.by_filing:  # the couples' return on their combined earnings, and payroll tax on each one's wages
            self.return_cutoffs, self.return_exposure, self.return_fixed = self._stack(
                [_return_changes(s, k, payroll, eitc, standard_deduction) for s, k in groups])
            cutoffs, _, fixed = self._table(earner)
            self.earner_schedule = TaxSchedule(cutoffs, fixed)
        else:
            self.cutoffs, self.exposure, self.fixed_rates = self.cutoffs[0], self.exposure[0], self.fixed_rates[0]
        self.rebate_share = rebate_share
        self.components = ["income tax"] + (["standard deduction"] if standard_deduction else []) + \
            (["payroll tax"] if payroll else []) + (["EITC"] if eitc else [])
        top = 1.0 - float(self.fixed_rates.max())  # no marginal rate above 100%
        self.parameters = tuple(
            Parameter(f"rate_{j}", 0.0, top, "fraction",
                      f"federal income-tax rate on a single filer's taxable income from {_dollars(lo)} " + (f"to {_dollars(hi)}" if hi else "upward"))
            for j, (lo, hi) in enumerate(zip(US_FEDERAL_2024_CUTOFFS, [*US_FEDERAL_2024_CUTOFFS[1:], None]))
        )
        self._initial = self.validate(list(US_FEDERAL_2024_RATES))

    @classmethod
    def _stack(cls, groups: list[Changes]) -> tuple[Tensor, Tensor, Tensor]:
        """Every group's segments, padded to one width: starts (G, S), exposure (G, S, 7), fixed rates (G, S)."""
        tables = [cls._table(changes) for changes in groups]
        width = max(len(c) for c, _, _ in tables)
        padded = [cls._pad(table, width) for table in tables]
        return tuple(torch.stack([table[i] for table in padded]) for i in range(3))

    @staticmethod
    def _table(changes: Changes) -> tuple[Tensor, Tensor, Tensor]:
        """Segments of one group: their starts (S,), statutory-rate exposure (S, 7), fixed rates (S,)."""
        starts = sorted({0.0, *(at for at, _, _ in changes)})
        exposure = torch.zeros(len(starts), len(US_FEDERAL_2024_RATES), dtype=torch.float64)
        fixed = torch.zeros(len(starts), dtype=torch.float64)
        for s, start in enumerate(starts):
            brackets = [j for at, j, _ in changes if j is not None and at <= start]
            if brackets:
                exposure[s, max(brackets)] = 1.0
            fixed[s] = sum(rate for at, _, rate in changes if at <= start)
        return torch.tensor(starts, dtype=torch.float64), exposure, fixed

    @staticmethod
    def _pad(table: tuple[Tensor, Tensor, Tensor], width: int) -> tuple[Tensor, Tensor, Tensor]:
        """Extend a group's segments to `width` with empty ones beyond any income, so groups stack."""
        cutoffs, exposure, fixed = table
        extra = width - len(cutoffs)
        beyond = NEVER_REACHED_INCOME * torch.arange(2, extra + 2, dtype=torch.float64)
        return (torch.cat([cutoffs, beyond]), torch.cat([exposure, exposure[-1:].expand(extra, -1)]),
                torch.cat([fixed, fixed[-1:].expand(extra)]))

    def initial(self) -> Tensor:
        return self._initial.clone()

    def compile(self, theta: Tensor) -> Policy:
        """Rates (..., S) or, by filing group, (..., G, S): each segment's statutory rate plus its fixed ones."""
        schedule = self._schedule(theta, self.cutoffs, self.exposure, self.fixed_rates)
        if not self.by_filing:
            return Policy(schedule, rebate_share=self.rebate_share)
        joint = JointReturns(self._schedule(theta, self.return_cutoffs, self.return_exposure, self.return_fixed),
                             TaxSchedule(self.earner_schedule.cutoffs.to(theta.device), self.earner_schedule.rates.to(theta)))
        return Policy(schedule, rebate_share=self.rebate_share, by_filing=True, joint=joint)

    def _schedule(self, theta: Tensor, cutoffs: Tensor, exposure: Tensor, fixed: Tensor) -> TaxSchedule:
        rates = torch.einsum("...p,...sp->...s", theta.unsqueeze(-2) if self.by_filing else theta, exposure.to(theta))
        return TaxSchedule(cutoffs.to(theta.device), (rates + fixed.to(theta)).clamp(-1.0, 1.0))  # rounding

    def describe(self) -> str:
        use = "all revenue is paid back to every worker as an equal lump sum" if self.rebate_share == 1 else (
            f"{100 * self.rebate_share:.0f}% of revenue is paid back equally; the rest funds government spending")
        who = "by each worker's filing status and children" if self.by_filing else "as for a single filer without children"
        return (
            f"The 2024 US taxes on earnings ({', '.join(self.components)}), {who}: the statutory federal rates apply "
            f"to earnings above the standard deduction; {use}."
        )


def us_federal_2024(
    initial_rates: Sequence[float] = US_FEDERAL_2024_RATES, max_rate: float = 1.0, rebate_share: float = 1.0
) -> BracketTax:
    """Brackets of the 2024 US federal schedule for a single filer, starting at its rates."""
    return BracketTax(US_FEDERAL_2024_CUTOFFS, initial_rates, max_rate, rebate_share)


def three_bracket(
    cutoffs: Sequence[float] = THREE_BRACKET_CUTOFFS, initial_rates: Sequence[float] = (0.1, 0.2, 0.3),
    max_rate: float = 1.0, rebate_share: float = 1.0,
) -> BracketTax:
    return BracketTax(cutoffs, initial_rates, max_rate, rebate_share)


def flat(initial_rates: Sequence[float] = (0.2,), max_rate: float = 1.0, rebate_share: float = 1.0) -> BracketTax:
    return BracketTax([0.0], initial_rates, max_rate, rebate_share)


class NegativeIncomeTax(Mechanism):
    """A guaranteed income G withdrawn at phase-out rate r, paid for by a flat rate t on all income.

    Net tax T(z) = t z - max(0, G - r z): a worker who earns nothing receives exactly G; the
    guarantee is gone at z = G / r. The planner sets G and r; t is the rate that funds the
    guarantees, mean_i T(z_i) = 0, set each year from the incomes earned (workers expect last
    year's), capped so that no marginal rate exceeds 100% (a deficit beyond that shows as a
    negative budget_balance). With r = 0 it is a universal basic income funded by a flat tax,
    t = G / mean income (Friedman 1962, ch. XII; Tobin, Pechman and Mieszkowski 1967).
    """

    name = "negative_income_tax"

    def __init__(self, initial: Sequence[float] = (10_000.0, 0.2), max_guarantee: float = 30_000.0, max_phase_out: float = 0.5) -> None:
        if not 0 < max_phase_out < 1:
            raise ValueError(f"negative_income_tax: max_phase_out must lie in (0, 1), got {max_phase_out}")
        self.parameters = (
            Parameter("guarantee", 0.0, max_guarantee, "$/year",
                      "income paid to a worker who earns nothing; a flat rate on all income, set each year so revenue pays for the guarantees, funds it"),
            Parameter("phase_out", 0.0, max_phase_out, "fraction", "rate at which the guarantee is withdrawn per $ earned"),
        )
        self._initial = self.validate(list(initial))

    def initial(self) -> Tensor:
        return self._initial.clone()

    def compile(self, theta: Tensor) -> Policy:
        if theta.ndim != 1:
            raise ValueError("negative_income_tax: compile takes one parameter vector at a time")
        guarantee, phase_out = theta[0], theta[1]
        # T0(z) = min(G, r z): the guarantee withdrawn (rate r up to G / r, then 0), paid back by
        # the lump sum G; the funding rate comes on top. With r = 0 the first bracket never ends.
        end = torch.where(phase_out > 0, guarantee / phase_out.clamp(min=1e-12), torch.full_like(guarantee, NEVER_REACHED_INCOME))
        end = end.clamp(min=1e-6, max=NEVER_REACHED_INCOME)  # G = 0: an empty phase-out bracket
        cutoffs = torch.stack([torch.zeros_like(end), end])
        rates = torch.stack([phase_out, torch.zeros_like(phase_out)])
        return Policy(TaxSchedule(cutoffs, rates), lump_sum=guarantee, rebate_share=0.0, funding="flat_rate")

    def describe(self) -> str:
        return (
            "A negative income tax: a worker who earns nothing receives the guaranteed income; it is withdrawn "
            "gradually as they earn (the phase-out rate), and one flat rate on all income, set each year so that "
            "revenue pays for the guarantees, funds it."
        )
