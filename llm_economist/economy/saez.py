"""Saez optimal marginal rates for a discrete bracket schedule (Saez 2001, discrete form).

Raising tau_j by d tau collects m_ij d tau more from every agent (m_ij = income inside bracket
j), which is rebated; the welfare value of that mechanical effect is sum_i (1 - g_i) m_ij with
social marginal welfare weights g_i of mean 1. Agents interior to bracket j cut income by
e z_i / (1 - tau_j) d tau, costing tau_j e z_i / (1 - tau_j) in revenue. Setting the sum to zero:

    tau_j = A_j / (A_j + e B_j),  A_j = sum_i (1 - g_i) m_ij,  B_j = sum_{i interior to j} z_i.

For the open top bracket with a constant weight g this is the familiar
    tau_top = (1 - g) / (1 - g + a e),   a = zbar / (zbar - c_top).
Workers at a corner (0 h, or the hours cap) do not respond at the margin: they still count in
the mechanical term A_j, never in the behavioural sum B_j.

With an extensive margin (Saez 2002; Jacquet, Lehmann and Van der Linden 2013) raising tau_j
also lowers what working pays, z_i - T_i with T_i the tax paid over not working, for everyone
above the cutoff, by m_ij d tau; a share eta_i m_ij / (z_i - T_i) of them stops working and takes
T_i of revenue along (the marginal entrant is indifferent, so its welfare does not move). With
P_j = sum_i eta_i m_ij T_i / (z_i - T_i) over the workers,

    tau_j = (A_j - P_j) / (A_j - P_j + e B_j),

zero where participation costs more revenue than the mechanical effect is worth (a bracket
rate cannot go negative). Incomes depend on the rates, so callers iterate this map to a damped
fixed point.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

# An agent within this many dollars of a cutoff is bunching at the kink, not interior.
KINK_TOLERANCE = 0.01


def saez_bracket_rates(
    income: Tensor, weights: Tensor, cutoffs: Tensor, elasticity: float, max_rate: float = 1.0, responsive: Tensor | None = None,
    participation: Tensor | None = None,
) -> Tensor:
    """(K,) rates from incomes (N,), normalised welfare weights g (N,), cutoffs (K,); `responsive`
    (N,) marks the workers whose hours can move at the margin (default: all); `participation` (N,)
    is each worker's eta_i T_i / (z_i - T_i), the revenue its leaving costs per dollar less that
    working pays (default: no extensive margin)."""
    if not elasticity > 0:
        raise ValueError(f"saez: elasticity must be positive, got {elasticity}")
    upper = torch.cat([cutoffs[1:], cutoffs.new_full((1,), float("inf"))])
    z = income.unsqueeze(-1)  # (N, 1)
    exposure = torch.minimum((z - cutoffs).clamp(min=0.0), upper - cutoffs)  # (N, K)
    a = ((1.0 - weights).unsqueeze(-1) * exposure).sum(dim=0)  # (K,)
    if participation is not None:
        a = a - (participation.unsqueeze(-1) * exposure).sum(dim=0)
    interior = (z > cutoffs + KINK_TOLERANCE) & (z < upper - KINK_TOLERANCE)
    if responsive is not None:
        interior = interior & responsive.unsqueeze(-1)
    b = (z * interior).sum(dim=0)  # (K,)
    denom = a + elasticity * b
    rates = torch.where((denom > 0) & (a > 0), a / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.zeros_like(a))
    return rates.clamp(min=0.0, max=max_rate)


def saez_top_rate(weight: float, pareto_a: float, elasticity: float) -> float:
    """(1 - g) / (1 - g + a e)."""
    return (1.0 - weight) / (1.0 - weight + pareto_a * elasticity)


def pareto_parameter(income: Tensor, cutoff: float) -> float:
    """a = zbar / (zbar - c) over incomes above the cutoff (alpha / (alpha - 1) for a Pareto tail)."""
    top = income[income > cutoff]
    if top.numel() == 0:
        raise ValueError(f"pareto_parameter: no income above the cutoff {cutoff:g}")
    zbar = top.mean().item()
    return zbar / (zbar - cutoff)


def arc_elasticity(income_up: Tensor, income_down: Tensor, keep_up: Tensor, keep_down: Tensor, interior: Tensor) -> float:
    """Income-weighted mean of log(z+/z-) / log((1-tau+)/(1-tau-)) over interior agents.

    keep_up / keep_down are each agent's net-of-tax rates (1 - tau) in the two perturbed worlds.
    """
    use = interior & (income_up > 0) & (income_down > 0) & (keep_up != keep_down)
    if not use.any():
        raise ValueError("arc_elasticity: no agent is interior with positive income in both perturbed worlds")
    per_agent = torch.log(income_up[use] / income_down[use]) / torch.log(keep_up[use] / keep_down[use])
    weight = 0.5 * (income_up[use] + income_down[use])
    return float((weight * per_agent).sum() / weight.sum())
