"""Built-in mechanisms: a bracket tax with lump-sum rebate, and a negative income tax."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..economy.policy import Policy
from ..economy.tax import NEVER_REACHED_INCOME, US_FEDERAL_2024_CUTOFFS, US_FEDERAL_2024_RATES, TaxSchedule
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
    """Flat tax t on all income plus a guaranteed income G withdrawn at phase-out rate r.

    Net tax T(z) = t z - max(0, G - r z): a two-bracket schedule (rate t + r up to G / r, then
    t) with lump sum G. With r = 0 it is a flat tax with a universal basic income. Any budget
    surplus or deficit is shared equally, so the budget always balances.
    """

    name = "negative_income_tax"

    def __init__(self, initial: Sequence[float] = (0.2, 10_000.0, 0.2), max_guarantee: float = 40_000.0) -> None:
        self.parameters = (
            Parameter("rate", 0.0, 0.6, "fraction", "flat marginal tax rate on all income"),
            Parameter("guarantee", 0.0, max_guarantee, "$/year", "income guaranteed to a worker who earns nothing"),
            Parameter("phase_out", 0.0, 0.4, "fraction", "rate at which the guarantee is withdrawn per $ earned"),
        )
        self._initial = self.validate(list(initial))

    def initial(self) -> Tensor:
        return self._initial.clone()

    def compile(self, theta: Tensor) -> Policy:
        if theta.ndim != 1:
            raise ValueError("negative_income_tax: policy takes one parameter vector at a time")
        rate, guarantee, phase_out = theta[0], theta[1], theta[2]
        # Where r = 0 the phase-out bracket never ends; a cutoff beyond any income says so.
        end = torch.where(phase_out > 0, guarantee / phase_out.clamp(min=1e-12), torch.full_like(guarantee, NEVER_REACHED_INCOME))
        end = end.clamp(min=1.0, max=NEVER_REACHED_INCOME)
        cutoffs = torch.stack([torch.zeros_like(end), end])
        rates = torch.stack([rate + phase_out, rate])
        return Policy(TaxSchedule(cutoffs, rates), lump_sum=guarantee, rebate_share=1.0)

    def describe(self) -> str:
        return (
            "A negative income tax: every worker is guaranteed an income, withdrawn gradually as they earn "
            "(the phase-out rate), and all income is taxed at one flat rate. Any budget surplus or deficit "
            "is shared equally among all workers."
        )
