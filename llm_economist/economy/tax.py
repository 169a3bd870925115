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

# A cutoff at or beyond this income is never reached: a mechanism's way to say a bracket has no
# end (a negative income tax with no phase-out). Prompts and plots leave such cutoffs out.
NEVER_REACHED_INCOME = 1e12

US_FEDERAL_2024_CUTOFFS = (0.0, 11_600.0, 47_150.0, 100_525.0, 191_950.0, 243_725.0, 609_350.0)
US_FEDERAL_2024_RATES = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)


@dataclass(frozen=True)
class TaxSchedule:
    """Cutoffs (K,) in $/year and marginal rates (..., K) in [0, 1]; the top bracket is open."""

    cutoffs: Tensor
    rates: Tensor

    def __post_init__(self) -> None:
        cutoffs, rates = self.cutoffs, self.rates
        if cutoffs.ndim != 1 or cutoffs.numel() < 1:
            raise ValueError(f"tax schedule: cutoffs must be a 1-D list with at least one entry, got shape {tuple(cutoffs.shape)}")
        if rates.ndim < 1 or rates.shape[-1] != cutoffs.numel():
            raise ValueError(
                f"tax schedule: {cutoffs.numel()} cutoffs need {cutoffs.numel()} rates, got rates of shape {tuple(rates.shape)}"
            )
        c, r = cutoffs.detach(), rates.detach()
        if not torch.isfinite(c).all():
            raise ValueError(f"tax schedule: cutoffs must be finite, got {c.tolist()}")
        if c[0] != 0:
            raise ValueError(f"tax schedule: the first cutoff must be 0, got {c[0].item():g}")
        if (c[1:] <= c[:-1]).any():
            raise ValueError(f"tax schedule: cutoffs must be strictly increasing, got {c.tolist()}")
        if not torch.isfinite(r).all() or (r < 0).any() or (r > 1).any():
            bad = r[~torch.isfinite(r) | (r < 0) | (r > 1)]
            raise ValueError(f"tax schedule: marginal rates must lie in [0, 1], got {bad.flatten()[:5].tolist()}")

    @classmethod
    def from_lists(cls, cutoffs, rates, dtype=torch.float64) -> "TaxSchedule":
        return cls(torch.as_tensor(cutoffs, dtype=dtype), torch.as_tensor(rates, dtype=dtype))

    @classmethod
    def us_federal_2024(cls, dtype=torch.float64) -> "TaxSchedule":
        return cls.from_lists(US_FEDERAL_2024_CUTOFFS, US_FEDERAL_2024_RATES, dtype)

    @property
    def n_brackets(self) -> int:
        return self.cutoffs.numel()

    @property
    def widths(self) -> Tensor:
        """(K,) bracket widths c_{j+1} - c_j; the open top bracket has width +inf."""
        inf = torch.full((1,), float("inf"), dtype=self.cutoffs.dtype, device=self.cutoffs.device)
        return torch.cat([self.cutoffs[1:] - self.cutoffs[:-1], inf])

    def tax_at_cutoffs(self) -> Tensor:
        """(..., K) tax owed at each cutoff: T(c_j) = sum_{k<j} tau_k (c_{k+1} - c_k)."""
        full = self.rates[..., :-1] * (self.cutoffs[1:] - self.cutoffs[:-1])
        zero = torch.zeros_like(self.rates[..., :1])
        return torch.cat([zero, torch.cumsum(full, dim=-1)], dim=-1)

    def bracket_index(self, z: Tensor) -> Tensor:
        """(..., N) index j of the bracket with c_j <= z < c_{j+1} (negative incomes count as bracket 0)."""
        return (torch.searchsorted(self.cutoffs, z.detach().contiguous(), right=True) - 1).clamp_(min=0)

    def _per_bracket(self, values: Tensor, idx: Tensor) -> Tensor:
        """Gather (..., K) per-bracket values at (..., N) bracket indices, broadcasting batch dims."""
        batch = torch.broadcast_shapes(values.shape[:-1], idx.shape[:-1])
        values = values.expand(*batch, values.shape[-1])
        idx = idx.expand(*batch, idx.shape[-1])
        return torch.gather(values, -1, idx)

    def tax(self, z: Tensor) -> Tensor:
        """T(z) for incomes (..., N); differentiable in the rates and in z."""
        idx = self.bracket_index(z)
        base = self._per_bracket(self.tax_at_cutoffs(), idx)
        rate = self._per_bracket(self.rates, idx)
        return base + rate * (z - self.cutoffs[idx])

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
        """Plain-words schedule, one bracket per line."""
        lines = []
        cut = self.cutoffs.tolist()
        rates = self.rates.detach().reshape(-1, self.n_brackets)[0].tolist()
        for j, rate in enumerate(rates):
            upper = f"${cut[j + 1]:,.0f}" if j + 1 < len(cut) else "and above"
            span = f"${cut[j]:,.0f} to {upper}" if j + 1 < len(cut) else f"${cut[j]:,.0f} and above"
            lines.append(f"{span}: {100 * rate:.1f}%")
        return "\n".join(lines)
