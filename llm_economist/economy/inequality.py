"""Inequality measures over the last dimension (agents)."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def gini(x: Tensor) -> Tensor:
    """Gini coefficient of non-negative values (..., N), by the sorted-rank formula

        G = sum_i (2 i - N - 1) x_(i) / (N sum_i x_i),   i = 1..N ascending;

    0 for perfect equality, (N - 1)/N when one agent holds everything; 0 if all are zero.
    """
    x = x.clamp(min=0.0)
    n = x.shape[-1]
    sorted_x = torch.sort(x, dim=-1).values
    ranks = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    total = sorted_x.sum(dim=-1)
    g = ((2.0 * ranks - n - 1.0) * sorted_x).sum(dim=-1) / (n * total.clamp(min=torch.finfo(x.dtype).tiny))
    return torch.where(total > 0, g, torch.zeros_like(g))


def lorenz_curve(x: Tensor) -> tuple[Tensor, Tensor]:
    """Population shares (N+1,) and cumulative shares of the total (N+1,), both starting at 0."""
    sorted_x = torch.sort(x.clamp(min=0.0).flatten()).values
    cum = torch.cat([sorted_x.new_zeros(1), torch.cumsum(sorted_x, 0)])
    share = torch.linspace(0.0, 1.0, cum.numel(), dtype=x.dtype)
    return share, cum / cum[-1].clamp(min=torch.finfo(x.dtype).tiny)
