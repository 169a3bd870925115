"""A policy is what workers face: a marginal tax schedule plus lump-sum transfers.

Every mechanism compiles its parameters to a Policy. Per agent and year,

    transfer = lump_sum + rebate_share * (mean_i T(z_i) - lump_sum),

i.e. a guaranteed lump sum, and the given share of net revenue rebated equally. The rest of
net revenue is kept by the government (reported as `retained`). Workers are atomistic: they
take the transfer as given when they choose hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .tax import TaxSchedule

Tensor = torch.Tensor


@dataclass(frozen=True)
class Policy:
    schedule: TaxSchedule
    lump_sum: Tensor | float = 0.0
    rebate_share: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.rebate_share) <= 1.0:
            raise ValueError(f"policy: rebate_share must lie in [0, 1], got {self.rebate_share}")

    def transfer(self, taxes: Tensor) -> Tensor:
        """(..., 1) transfer per agent given everyone's taxes (..., N)."""
        lump = torch.as_tensor(self.lump_sum, dtype=taxes.dtype, device=taxes.device)
        if lump.ndim:
            lump = lump.unsqueeze(-1)
        revenue = taxes.mean(dim=-1, keepdim=True)
        return lump + self.rebate_share * (revenue - lump)
