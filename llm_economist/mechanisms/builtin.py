"""Built-in mechanisms: a bracket tax with lump-sum rebate, the 2024 US taxes on earnings, and a
negative income tax."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ..economy.policy import JointReturns, Policy
from ..economy.tax import (
    NEVER_REACHED_INCOME,
    US_2024_CTC,
    US_2024_ODC,
    USFiler2024,
    US_2024_ADDITIONAL_MEDICARE,
    US_2024_EITC,
    US_2024_FILERS,
    US_2024_MEDICARE,
    US_2024_SOCIAL_SECURITY,
    US_FEDERAL_2024_CUTOFFS,
    US_FEDERAL_2024_RATES,
    TaxSchedule,
    combined,
    merged_cutoffs,
    rates_at,
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
# the population files one joint return on their combined earnings) x dependants (`CHILD_GROUPS`)
# x filers on the return aged 65 or more (0, 1, 2).
US_2024_STATUSES = ("single", "married_separate", "head_of_household", "married_joint", "married_joint_two_earners")
NO_EITC = len(US_2024_EITC)  # no children, and outside the childless EITC's ages
CREDIT_CHILDREN_MAX = 6  # the child tax credit counts up to six children (fewer than 0.05% of workers have more)
OTHER_DEPENDANTS_MAX = 2  # and up to two other dependants (fewer than 0.03% of workers have more)
# Dependants: children as the EITC counts them (0, 1, 2, 3 or more, or NO_EITC) x those of them
# under 17, whom the child tax credit counts (never more than the EITC's children; with three or
# more, up to CREDIT_CHILDREN_MAX) x other dependants, whom the credit for other dependants counts.
CHILD_GROUPS = tuple((k, c, d) for k in range(NO_EITC + 1)
                     for c in range({NO_EITC: 0, NO_EITC - 1: CREDIT_CHILDREN_MAX}.get(k, k) + 1)
                     for d in range(OTHER_DEPENDANTS_MAX + 1))
_CHILD_GROUP = torch.full((NO_EITC + 1, CREDIT_CHILDREN_MAX + 1, OTHER_DEPENDANTS_MAX + 1), -1, dtype=torch.long)
for _i, _group in enumerate(CHILD_GROUPS):
    _CHILD_GROUP[_group] = _i
AGED_GROUPS = 3


def _counts(values, like: torch.Tensor | None = None) -> torch.Tensor:
    return torch.zeros_like(like) if values is None else torch.as_tensor(list(values), dtype=torch.long)


def us_filing_groups(filing_status, children, earners, childless_eitc_age=None, aged=None, credit_children=None,
                     other_dependants=None) -> torch.Tensor:
    """(N,) each worker's filing group of `USTax2024` from its persona: filing status, children
    (the EITC's qualifying children), how many of the household's members are workers in the
    population, whether the return meets the childless EITC's age test (either spouse aged 25-64;
    all do when not given), how many of its filers are aged 65 or more, how many of the children
    the child tax credit counts (under 17; all when not given) and the other dependants (none when
    not given)."""
    status = [("married_joint_two_earners" if f == "married_joint" and e == 2 else str(f)) for f, e in zip(filing_status, earners)]
    index = torch.tensor([US_2024_STATUSES.index(s) for s in status], dtype=torch.long)
    count = _counts(children)
    credit = count if credit_children is None else _counts(credit_children)
    others = _counts(other_dependants, like=count)
    if (credit > count).any() or (credit < 0).any() or (others < 0).any():
        raise ValueError("us_filing_groups: credit_children must lie between 0 and children, and other_dependants "
                         "be at least 0, for every worker")
    kids = count.clamp(max=NO_EITC - 1)
    if childless_eitc_age is not None:
        kids = torch.where((kids == 0) & ~torch.as_tensor(childless_eitc_age, dtype=torch.bool), NO_EITC, kids)
    child = _CHILD_GROUP[kids, credit.clamp(max=CREDIT_CHILDREN_MAX), others.clamp(max=OTHER_DEPENDANTS_MAX)]
    old = _counts(aged, like=index).clamp(0, AGED_GROUPS - 1)
    return (index * len(CHILD_GROUPS) + child) * AGED_GROUPS + old


Changes = list[tuple[float, "int | None", float]]  # (earnings, statutory bracket that starts there or None, fixed rate added there)


def _filer(status: str) -> USFiler2024:
    return US_2024_FILERS["married_joint" if status == "married_joint_two_earners" else status]


def _bracket_changes(status: str, aged: int, deduction: bool) -> Changes:
    """Where the statutory income-tax brackets start, in a return's earnings."""
    filer = _filer(status)
    start = filer.deduction + aged * filer.aged_deduction if deduction else 0.0
    return [(start + c, j, 0.0) for j, c in enumerate(filer.cutoffs)]


def _return_changes(status: str, children: int, payroll: bool, eitc: bool) -> Changes:
    """Where the fixed marginal rates of one return's other taxes on its earnings change: the
    EITC and the Additional Medicare tax, both on the return's combined earnings."""
    filer = _filer(status)
    changes: Changes = [(0.0, None, 0.0)]
    if payroll:
        changes.append((filer.medicare_threshold, None, US_2024_ADDITIONAL_MEDICARE))
    if eitc and filer.eitc_shift is not None and children != NO_EITC:
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


def _stack(groups: list[Changes]) -> tuple[Tensor, Tensor, Tensor]:
    """Every group's segments, padded to one width with segments beyond any income: starts (G, S),
    exposure (G, S, 7), fixed rates (G, S)."""
    tables = [_table(changes) for changes in groups]
    width = max(len(c) for c, _, _ in tables)
    padded = []
    for cutoffs, exposure, fixed in tables:
        extra = width - len(cutoffs)
        beyond = NEVER_REACHED_INCOME * torch.arange(2, extra + 2, dtype=torch.float64)
        padded.append((torch.cat([cutoffs, beyond]), torch.cat([exposure, exposure[-1:].expand(extra, -1)]),
                       torch.cat([fixed, fixed[-1:].expand(extra)])))
    return tuple(torch.stack([table[i] for table in padded]) for i in range(3))


def _fixed_schedule(groups: list[Changes]) -> TaxSchedule:
    cutoffs, _, fixed = _stack(groups)
    return TaxSchedule(cutoffs, fixed)


@dataclass(frozen=True)
class ChildTaxCredit:
    """The 2024 child tax credit and credit for other dependants of each filing group (IRC sec.
    24, Schedule 8812): `US_2024_CTC` per qualifying child and `US_2024_ODC` per other dependant,
    the refundable part (15% of earnings above $2,500, up to $1,700 a qualifying child) as two
    schedules of earnings, and the credits' phase-out (5% above the filer's threshold) as one
    more, so that the credit is `credit - phase_out(E)`.

    Income tax after the credit is max(L(E) - credit + phase_out(E), -refundable(E)): the credit
    first cancels the income tax L, and what is left of it is paid out up to the refundable part.
    The difference of the two sides rises with earnings, so they cross once, at an income that
    moves with the statutory rates; below it the credit is refundable, above it the tax is L less
    the credit.
    """

    credit: Tensor  # (G,) $ a year
    refundable: TaxSchedule  # (G, S)
    phase_out: TaxSchedule  # (G, S)

    @classmethod
    def for_groups(cls, groups: list[tuple[str, int, int, int, int]], eitc: bool) -> "ChildTaxCredit":
        """A group without children gets zero rates at harmless places, so that all groups stack.
        With three or more qualifying children the refundable part is at least the payroll tax
        less the EITC (Schedule 8812 part II-B), which only a return without the EITC (married
        filing separately) reaches, below $5,102 of earnings; the payroll tax withheld counts there
        whether or not the mechanism charges it."""
        per_child, refundable, rate, floor, phase_out = US_2024_CTC
        payroll_rate = US_2024_SOCIAL_SECURITY[0] + US_2024_MEDICARE
        paid, falls, credit = [], [], []
        for status, _, kids, others, _ in groups:
            cap = floor + max(kids, 1) * refundable / rate
            if kids >= 3 and (not eitc or _filer(status).eitc_shift is None):
                meet = floor * rate / (rate - payroll_rate)  # where 15% above $2,500 overtakes the payroll tax
                paid.append([(0.0, None, payroll_rate), (meet, None, rate - payroll_rate), (cap, None, -rate)])
            else:
                paid.append([(0.0, None, 0.0), (floor, None, rate if kids else 0.0), (cap, None, -rate if kids else 0.0)])
            total = per_child * kids + US_2024_ODC * others
            start = _filer(status).ctc_phase_out
            falls.append([(0.0, None, 0.0), (start, None, phase_out if total else 0.0),
                          (start + (total or per_child) / phase_out, None, -phase_out if total else 0.0)])
            credit.append(total)
        return cls(torch.tensor(credit, dtype=torch.float64), _fixed_schedule(paid), _fixed_schedule(falls))

    def after(self, income_tax: TaxSchedule) -> TaxSchedule:
        """Income tax after the credit, per group (..., G, S'), from income tax before it."""
        points = torch.cat([income_tax.cutoffs, self.refundable.cutoffs, self.phase_out.cutoffs], dim=-1).sort(dim=-1).values
        gap = (income_tax.tax_of_choices(points) + self.refundable.tax_of_choices(points) + self.phase_out.tax_of_choices(points)
               - self.credit.to(points).unsqueeze(-1))  # (..., G, M), rises with earnings
        below = (gap < 0).sum(dim=-1, keepdim=True)  # points before the crossing
        last = (below - 1).clamp(min=0)
        start = torch.gather(points.expand_as(gap), -1, last)
        slope = (rates_at(income_tax, start) + rates_at(self.refundable, start) + rates_at(self.phase_out, start))
        cross = start - torch.gather(gap, -1, last) / slope.clamp(min=1e-12)
        cross = torch.where(below == 0, torch.zeros_like(cross), cross).clamp(max=NEVER_REACHED_INCOME)
        cutoffs = merged_cutoffs(points, cross)
        taxed = rates_at(income_tax, cutoffs) + rates_at(self.phase_out, cutoffs)
        return TaxSchedule(cutoffs, torch.where(cutoffs < cross, -rates_at(self.refundable, cutoffs), taxed))


class USTax2024(Mechanism):
    """The 2024 US taxes on earnings, by filing status: federal income tax above the standard
    deduction, and as options the employee payroll tax and the EITC.

    The parameters are the seven statutory income-tax rates, the same for every filer. Each
    filing group (status x dependants for the EITC and for the child tax credits x filers aged 65
    or more, `us_filing_groups`) has its own brackets,
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

    def __init__(self, payroll: bool = True, eitc: bool = True, standard_deduction: bool = True, child_tax_credit: bool = True,
                 filing: Literal["persona", "single"] = "persona", rebate_share: float = 1.0) -> None:
        if filing not in ("persona", "single"):
            raise ValueError(f"us_tax_2024: filing must be 'persona' or 'single', got {filing!r}")
        self.by_filing = filing == "persona"
        groups = [(s, k, c, d, a) for s in US_2024_STATUSES for k, c, d in CHILD_GROUPS for a in range(AGED_GROUPS)] \
            if self.by_filing else [("single", 0, 0, 0, 0)]
        self.bracket_starts, self.exposure, _ = _stack([_bracket_changes(s, a, standard_deduction) for s, *_, a in groups])
        self.credit = ChildTaxCredit.for_groups(groups, eitc) if child_tax_credit and self.by_filing else None
        # The rest of a worker's taxes (a couple's: as if the spouse earned nothing); of a couple's
        # return on their combined earnings; payroll tax on each spouse's wages.
        self.others = _fixed_schedule([_return_changes(s, k, payroll, eitc) + _earner_changes(payroll) for s, k, *_ in groups])
        self.return_others = _fixed_schedule([_return_changes(s, k, payroll, eitc) for s, k, *_ in groups])
        earner_cutoffs, _, earner_rates = _table(_earner_changes(payroll))
        self.earner = TaxSchedule(earner_cutoffs, earner_rates)
        self.rebate_share = rebate_share
        self.components = ["income tax"] + (["standard deduction"] if standard_deduction else []) + \
            (["child tax credit"] if self.credit else []) + (["payroll tax"] if payroll else []) + (["EITC"] if eitc else [])
        # No marginal rate above 100%, wherever the credit's phase-out meets the other taxes' highest rates.
        top = 1.0 - float(self.others.rates.max()) - (US_2024_CTC[4] if self.credit else 0.0) - 1e-12
        self.parameters = tuple(
            Parameter(f"rate_{j}", 0.0, top, "fraction",
                      f"federal income-tax rate on a single filer's taxable income from {_dollars(lo)} " + (f"to {_dollars(hi)}" if hi else "upward"))
            for j, (lo, hi) in enumerate(zip(US_FEDERAL_2024_CUTOFFS, [*US_FEDERAL_2024_CUTOFFS[1:], None]))
        )
        self._initial = self.validate(list(US_FEDERAL_2024_RATES))

    def initial(self) -> Tensor:
        return self._initial.clone()

    def compile(self, theta: Tensor) -> Policy:
        """Schedules by filing group (cutoffs (G, S), or (..., G, S) where the child tax credit's
        turning point moves with the rates), rates (..., G, S); one schedule for `filing: single`."""
        income_tax = TaxSchedule(self.bracket_starts.to(theta.device),
                                 torch.einsum("...p,gsp->...gs", theta, self.exposure.to(theta)))
        if self.credit is not None:
            income_tax = self.credit.after(income_tax)
        schedule = combined(income_tax, self._to(self.others, theta))
        if not self.by_filing:
            return Policy(TaxSchedule(schedule.cutoffs[0], schedule.rates[..., 0, :]), rebate_share=self.rebate_share)
        joint = JointReturns(combined(income_tax, self._to(self.return_others, theta)), self._to(self.earner, theta))
        return Policy(schedule, rebate_share=self.rebate_share, by_filing=True, joint=joint)

    @staticmethod
    def _to(schedule: TaxSchedule, theta: Tensor) -> TaxSchedule:
        """A fixed schedule of the mechanism on the parameters' device and dtype."""
        return TaxSchedule.derived(schedule.cutoffs.to(theta.device), schedule.rates.to(theta))

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
