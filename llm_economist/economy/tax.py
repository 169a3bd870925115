"""Piecewise-linear marginal income-tax schedules, vectorised over agents and over schedules.

A schedule with cutoffs c_0 = 0 < c_1 < ... < c_{K-1} and marginal rates tau_0..tau_{K-1}
taxes annual income z as

    T(z) = sum_j tau_j * clip(z - c_j, 0, c_{j+1} - c_j),   c_K = +inf (open top bracket).

Rates may carry leading batch dimensions (..., K) so that many schedules are evaluated at once
(grid search, gradient planners); incomes broadcast against them as (..., N).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor

AGENT_CHUNK = 8192  # agents per pass where each agent's work is a table of its own (chosen with benchmarks/env_throughput.py)

# A cutoff at or beyond this income is never reached: a mechanism's way to say a bracket has no
# end (a negative income tax with no phase-out). Prompts and plots leave such cutoffs out.
NEVER_REACHED_INCOME = 1e12

# 2024 federal income tax on taxable income, single filer (IRS Rev. Proc. 2023-34, sec. 3.01).
US_FEDERAL_2024_CUTOFFS = (0.0, 11_600.0, 47_150.0, 100_525.0, 191_950.0, 243_725.0, 609_350.0)
US_FEDERAL_2024_RATES = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)


@dataclass(frozen=True)
class USFiler2024:
    """How the 2024 US taxes on earnings treat one filing status (IRS Rev. Proc. 2023-34: brackets
    sec. 3.01, standard deduction sec. 3.15, EITC sec. 3.06; Additional Medicare tax thresholds,
    IRC sec. 3101(b)(2))."""

    cutoffs: tuple[float, ...]  # statutory brackets of taxable income, rates US_FEDERAL_2024_RATES
    deduction: float
    aged_deduction: float  # added to the deduction for each filer on the return aged 65 or more
    eitc_shift: float | None  # how much later the EITC phases out than for unmarried filers (None: no EITC)
    medicare_threshold: float  # wages above which the 0.9% Additional Medicare tax applies
    ctc_phase_out: float  # income above which the child tax credit falls (IRC sec. 24(b), 24(h)(3))


US_2024_FILERS = {
    "single": USFiler2024(US_FEDERAL_2024_CUTOFFS, 14_600.0, 1_950.0, 0.0, 200_000.0, 200_000.0),
    "married_separate": USFiler2024((0.0, 11_600.0, 47_150.0, 100_525.0, 191_950.0, 243_725.0, 365_600.0), 14_600.0, 1_550.0, None, 125_000.0,
                                    200_000.0),
    "head_of_household": USFiler2024((0.0, 16_550.0, 63_100.0, 100_500.0, 191_950.0, 243_700.0, 609_350.0), 21_900.0, 1_950.0, 0.0, 200_000.0,
                                     200_000.0),
    "married_joint": USFiler2024((0.0, 23_200.0, 94_300.0, 201_050.0, 383_900.0, 487_450.0, 731_200.0), 29_200.0, 1_550.0, 6_920.0, 250_000.0,
                                 400_000.0),
}
# The childless EITC goes only to filers aged 25-64 (either spouse on a joint return; IRC sec. 32(c)(1)(A)(ii));
# filers aged 65 or more get the additional standard deduction.
US_2024_CHILDLESS_EITC_AGES = (25, 64)
US_2024_AGED = 65
# Child tax credit, 2024 (IRC sec. 24(h), Rev. Proc. 2023-34 sec. 3.05): $2,000 a qualifying child,
# of which up to $1,700 is refundable as 15% of earnings above $2,500; the credit falls by 5% of
# income above the filer's threshold.
US_2024_CTC = (2_000.0, 1_700.0, 0.15, 2_500.0, 0.05)
# Credit for other dependants (IRC sec. 24(h)(4)): $500 for each dependant the child tax credit does
# not count (a child of 17, an adult dependant), not refundable, phased out with the child tax credit.
US_2024_ODC = 500.0
# EITC by qualifying children (0, 1, 2, 3 or more): phase-in rate, maximum credit, phase-out rate,
# and where the phase-out starts for unmarried filers (married filing jointly: $6,920 later). The
# credit reaches its maximum at max / phase-in rate ($8,261, $12,391, $17,400, $17,400; the table
# rounds the first two to $8,260 and $12,390) and is gone at start + max / phase-out rate.
US_2024_EITC = ((0.0765, 632.0, 0.0765, 10_330.0), (0.34, 4_213.0, 0.1598, 22_720.0),
                (0.40, 6_960.0, 0.2106, 22_720.0), (0.45, 7_830.0, 0.2106, 22_720.0))
# Employee payroll tax on wages: Social Security 6.2% up to the $168,600 wage base (SSA, 2024),
# Medicare 1.45% on all wages (plus 0.9% above the filer's threshold).
US_2024_SOCIAL_SECURITY = (0.062, 168_600.0)
US_2024_MEDICARE, US_2024_ADDITIONAL_MEDICARE = 0.0145, 0.009


@dataclass(frozen=True)
class TaxSchedule:
    """Cutoffs (K,) in $/year and marginal rates (..., K) in [-1, 1]; the top bracket is open.

    One schedule per agent: cutoffs (N, K) and rates (..., N, K), agent i's in row i (taxes that
    depend on who files: `USTax2024`). Incomes are then (..., N), agents in the same order. The
    cutoffs may carry the rates' leading dims too, (..., N, K), where each schedule of a batch
    moves them (a spouse's brackets start where its partner's earnings end: `shifted`).
    """

    cutoffs: Tensor
    rates: Tensor

    def __post_init__(self) -> None:
        cutoffs, rates = self.cutoffs, self.rates
        if cutoffs.ndim < 1 or cutoffs.shape[-1] < 1:
            raise ValueError(f"tax schedule: cutoffs must be a 1-D list with at least one entry, got shape {tuple(cutoffs.shape)}")
        if rates.ndim < cutoffs.ndim or rates.shape[-1] != cutoffs.shape[-1]:
            raise ValueError(
                f"tax schedule: {cutoffs.shape[-1]} cutoffs need {cutoffs.shape[-1]} rates, got rates of shape {tuple(rates.shape)}"
            )
        if cutoffs.ndim >= 2 and rates.shape[-2] != cutoffs.shape[-2]:
            raise ValueError(f"tax schedule: {cutoffs.shape[-2]} agents' cutoffs need as many rows of rates, got {tuple(rates.shape)}")
        c, r = cutoffs.detach(), rates.detach()
        if not torch.isfinite(c).all():
            raise ValueError(f"tax schedule: cutoffs must be finite, got {c.tolist()}")
        if (c[..., 0] != 0).any():
            raise ValueError(f"tax schedule: the first cutoff must be 0, got {c[..., 0].max().item():g}")
        if (c[..., 1:] <= c[..., :-1]).any():
            raise ValueError(f"tax schedule: cutoffs must be strictly increasing, got {c.tolist()}")
        # A negative rate is a subsidy per $ earned (the phase-in of an earned income credit).
        if not torch.isfinite(r).all() or (r < -1).any() or (r > 1).any():
            bad = r[~torch.isfinite(r) | (r < -1) | (r > 1)]
            raise ValueError(f"tax schedule: marginal rates must lie in [-1, 1], got {bad.flatten()[:5].tolist()}")

    @classmethod
    def derived(cls, cutoffs: Tensor, rates: Tensor) -> "TaxSchedule":
        """A schedule made from checked ones by taking some agents' rows, shifting or padding
        brackets: checking it again would only repeat their checks, on every agent every period."""
        schedule = object.__new__(cls)
        object.__setattr__(schedule, "cutoffs", cutoffs)
        object.__setattr__(schedule, "rates", rates)
        return schedule

    @classmethod
    def from_lists(cls, cutoffs, rates, dtype=torch.float64) -> "TaxSchedule":
        return cls(torch.as_tensor(cutoffs, dtype=dtype), torch.as_tensor(rates, dtype=dtype))

    @classmethod
    def us_federal_2024(cls, dtype=torch.float64) -> "TaxSchedule":
        return cls.from_lists(US_FEDERAL_2024_CUTOFFS, US_FEDERAL_2024_RATES, dtype)

    @property
    def n_brackets(self) -> int:
        return self.cutoffs.shape[-1]

    @property
    def per_agent(self) -> bool:
        return self.cutoffs.ndim >= 2

    @property
    def batch_shape(self) -> torch.Size:
        """The leading dims that index schedules in a batch (candidates a planner weighs at once)."""
        return self.rates.shape[:-2] if self.per_agent else self.rates.shape[:-1]

    @property
    def agent_rates(self) -> Tensor:
        """(..., N or 1, K): the rates with an agent axis, to broadcast against (..., N, K)."""
        return self.rates if self.per_agent else self.rates.unsqueeze(-2)

    def for_agent(self, i: int | slice | Tensor) -> "TaxSchedule":
        """Agent i's own schedule, or some agents' (a slice or positions; the schedule itself when all share one)."""
        if self.per_agent and self.cutoffs.ndim > 2 and isinstance(i, int):
            raise ValueError("tax schedule: one agent's schedule out of a batch whose cutoffs differ by schedule")
        if not self.per_agent:
            return self
        if torch.is_tensor(i):  # a row gather: about half the time of advanced indexing
            return TaxSchedule.derived(self.cutoffs.index_select(-2, i), self.rates.index_select(-2, i))
        return TaxSchedule.derived(self.cutoffs[..., i, :], self.rates[..., i, :])

    @property
    def widths(self) -> Tensor:
        """(K,) or (N, K) bracket widths c_{j+1} - c_j; the open top bracket has width +inf."""
        c = self.cutoffs
        return torch.cat([c[..., 1:] - c[..., :-1], torch.full_like(c[..., :1], float("inf"))], dim=-1)

    def tax_at_cutoffs(self) -> Tensor:
        """(..., K) tax owed at each cutoff: T(c_j) = sum_{k<j} tau_k (c_{k+1} - c_k)."""
        c = self.cutoffs
        full = self.rates[..., :-1] * (c[..., 1:] - c[..., :-1])
        zero = torch.zeros_like(self.rates[..., :1])
        return torch.cat([zero, torch.cumsum(full, dim=-1)], dim=-1)

    def bracket_index(self, z: Tensor) -> Tensor:
        """(..., N) index j of the bracket with c_j <= z < c_{j+1} (negative incomes count as bracket 0)."""
        if self.per_agent:
            return ((z.detach().unsqueeze(-1) >= self.cutoffs).sum(dim=-1) - 1).clamp_(min=0)
        return (torch.searchsorted(self.cutoffs, z.detach().contiguous(), right=True) - 1).clamp_(min=0)

    def _per_bracket(self, values: Tensor, idx: Tensor) -> Tensor:
        """Gather per-bracket values, (..., K) or per agent (..., N, K), at (..., N) bracket indices."""
        if self.per_agent:
            batch = torch.broadcast_shapes(values.shape[:-1], idx.shape)
            return torch.gather(values.expand(*batch, values.shape[-1]), -1, idx.expand(batch).unsqueeze(-1)).squeeze(-1)
        batch = torch.broadcast_shapes(values.shape[:-1], idx.shape[:-1])
        values = values.expand(*batch, values.shape[-1])
        idx = idx.expand(*batch, idx.shape[-1])
        return torch.gather(values, -1, idx)

    def tax(self, z: Tensor) -> Tensor:
        """T(z) for incomes (..., N); differentiable in the rates and in z. Schedules of many
        agents go AGENT_CHUNK agents at a time, so each pass's tables stay in cache."""
        n = z.shape[-1]
        if self.per_agent and n > AGENT_CHUNK:
            return torch.cat([self.for_agent(s)._tax(z[..., s]) for s in (slice(i, i + AGENT_CHUNK) for i in range(0, n, AGENT_CHUNK))], dim=-1)
        return self._tax(z)

    def _tax(self, z: Tensor) -> Tensor:
        if not self.per_agent:
            return self._shared_tax(z)
        idx = self.bracket_index(z)
        base = self._per_bracket(self.tax_at_cutoffs(), idx)
        rate = self._per_bracket(self.rates, idx)
        return base + rate * (z - self._per_bracket(self.cutoffs, idx))

    def _shared_tax(self, z: Tensor) -> Tensor:
        """T(z) = tau_0 z + sum_{j>=1} (tau_j - tau_{j-1}) max(z - c_j, 0) for one schedule (or a
        batch) that every agent shares: K passes over the incomes, a third of the time of a bracket
        search and three gathers at a million agents. Negative incomes pay tau_0 z, as in bracket 0."""
        rates = self.rates.unsqueeze(-1)  # (..., K, 1) against incomes (..., N)
        owed = z * rates[..., 0, :]
        for j in range(1, self.n_brackets):
            owed = owed.addcmul_((z - self.cutoffs[j]).clamp_(min=0.0), rates[..., j, :] - rates[..., j - 1, :])
        return owed

    def tax_of_choices(self, z: Tensor) -> Tensor:
        """T(z) for incomes (..., N, B), B choices per agent (the agent axis second to last)."""
        if self.per_agent:  # sum over brackets of rate x income inside it
            inside = torch.minimum((z.unsqueeze(-1) - self.cutoffs.unsqueeze(-2)).clamp(min=0), self.widths.unsqueeze(-2))
            return (self.rates.unsqueeze(-2) * inside).sum(dim=-1)
        batch = torch.broadcast_shapes(self.rates.shape[:-1], z.shape[:-2])
        flat = z.expand(*batch, *z.shape[-2:]).reshape(*batch, -1)
        return self.tax(flat).reshape(*batch, *z.shape[-2:])

    def marginal_rate(self, z: Tensor) -> Tensor:
        """T'(z): the rate of the bracket that contains z (the upper one at a cutoff)."""
        return self._per_bracket(self.rates, self.bracket_index(z))

    def average_rate(self, z: Tensor) -> Tensor:
        """T(z) / z, with the limit tau_0 at z = 0."""
        positive = z > 0
        return torch.where(positive, self.tax(z) / torch.where(positive, z, torch.ones_like(z)), self.marginal_rate(z))

    def exposure(self, z: Tensor) -> Tensor:
        """(..., N, K) income inside each bracket: m_ij = clip(z_i - c_j, 0, c_{j+1} - c_j)."""
        return torch.minimum((z.unsqueeze(-1) - self.cutoffs).clamp(min=0), self.widths)

    def describe(self) -> str:
        """Plain-words schedule, one bracket per line (the first agent's where each has its own)."""
        if self.per_agent:
            return TaxSchedule(self.cutoffs.reshape(-1, self.n_brackets)[0], self.rates.reshape(-1, self.n_brackets)[0]).describe()
        lines = []
        cut = self.cutoffs.tolist()
        rates = self.rates.detach().reshape(-1, self.n_brackets)[0].tolist()
        for j, rate in enumerate(rates):
            upper = f"${cut[j + 1]:,.0f}" if j + 1 < len(cut) else "and above"
            span = f"${cut[j]:,.0f} to {upper}" if j + 1 < len(cut) else f"${cut[j]:,.0f} and above"
            lines.append(f"{span}: {100 * rate:.1f}%")
        return "\n".join(lines)


def rates_at(schedule: TaxSchedule, z: Tensor) -> Tensor:
    """(..., N, M) marginal rates of each agent's schedule at M incomes of its own (..., N, M)."""
    rates = schedule.agent_rates
    batch = torch.broadcast_shapes(rates.shape[:-1], schedule.cutoffs.shape[:-1], z.shape[:-1])
    cutoffs = schedule.cutoffs.expand(*batch, schedule.n_brackets).contiguous()
    idx = (torch.searchsorted(cutoffs, z.detach().expand(*batch, z.shape[-1]).contiguous(), right=True) - 1).clamp(min=0)
    return torch.gather(rates.expand(*batch, rates.shape[-1]), -1, idx)


def _beyond(cutoffs: Tensor, count: int) -> Tensor:
    """(..., count) increasing cutoffs beyond any income and above every cutoff in their row."""
    top = cutoffs.amax(dim=-1, keepdim=True).clamp(min=NEVER_REACHED_INCOME)
    return top * (2 + torch.arange(count, dtype=cutoffs.dtype, device=cutoffs.device))


def merged_cutoffs(*cutoffs: Tensor) -> Tensor:
    """(..., K) every row's cutoffs of all the tables given, sorted, a cutoff equal to the one
    before it moved beyond any income: schedules that change rate at the same income make one
    bracket there."""
    batch = torch.broadcast_shapes(*(c.shape[:-1] for c in cutoffs))
    merged = torch.cat([c.expand(*batch, c.shape[-1]) for c in cutoffs], dim=-1).sort(dim=-1).values
    tied = merged[..., 1:] == merged[..., :-1]
    rest = torch.where(tied, _beyond(merged, merged.shape[-1] - 1), merged[..., 1:])
    return torch.cat([merged[..., :1], rest], dim=-1).sort(dim=-1).values


def shifted(schedule: TaxSchedule, offset: Tensor) -> TaxSchedule:
    """z -> T_i(z + o_i) - T_i(o_i): each agent's tax on income earned on top of `offset` (..., N)
    already earned on the same return (a spouse's earnings on a joint return), as a schedule of z
    per agent, cutoffs (..., N, K). Brackets the offset has passed drop out; the one it sits in
    starts at 0; the freed places at the end are brackets beyond any income."""
    cutoffs = schedule.cutoffs if schedule.per_agent else schedule.cutoffs.expand(offset.shape[-1], -1)
    rates = schedule.agent_rates
    k = cutoffs.shape[-1]
    batch = torch.broadcast_shapes(rates.shape[:-2], offset.shape[:-1], cutoffs.shape[:-2])
    cutoffs = cutoffs.expand(*batch, *cutoffs.shape[-2:])
    rates = rates.expand(*batch, offset.shape[-1], k)
    start = ((offset.detach().expand(*batch, offset.shape[-1]).unsqueeze(-1) >= cutoffs).sum(dim=-1, keepdim=True) - 1).clamp(min=0)
    idx = start + torch.arange(k, device=cutoffs.device)  # (..., N, K): the brackets from the offset's on
    inside = idx < k
    idx = idx.clamp(max=k - 1)
    moved = torch.where(inside, torch.gather(cutoffs, -1, idx) - offset.expand(*batch, offset.shape[-1]).unsqueeze(-1).to(cutoffs.dtype),
                        _beyond(cutoffs, k))
    moved = torch.cat([torch.zeros_like(moved[..., :1]), moved[..., 1:]], dim=-1)
    return TaxSchedule.derived(moved, torch.gather(rates, -1, idx))


def combined(first: TaxSchedule, second: TaxSchedule) -> TaxSchedule:
    """z -> T1(z) + T2(z) as one schedule per agent: the cutoffs of both (the second's first, 0,
    once), the rates added."""
    cutoffs = merged_cutoffs(first.cutoffs, second.cutoffs[..., 1:])
    return TaxSchedule(cutoffs, rates_at(first, cutoffs) + rates_at(second, cutoffs))


def widened(schedule: TaxSchedule, width: int) -> TaxSchedule:
    """The schedule with brackets beyond any income appended up to `width` brackets, so that
    schedules of different lengths stack."""
    extra = width - schedule.n_brackets
    if extra <= 0:
        return schedule
    c, r = schedule.cutoffs, schedule.rates
    return TaxSchedule.derived(torch.cat([c, _beyond(c, extra)], dim=-1), torch.cat([r, r[..., -1:].expand(*r.shape[:-1], extra)], dim=-1))
