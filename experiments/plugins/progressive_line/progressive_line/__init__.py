"""A mechanism with two parameters and many brackets: the marginal rate rises linearly from
`base_rate` at $0 to `top_rate` at `top_income`, approximated by equal-width brackets.

Install it next to llm-economist (`pip install -e experiments/plugins/progressive_line`) and use
`mechanism: {name: progressive_line}` in a config; every planner works on it unchanged.
"""

from __future__ import annotations

import torch

from llm_economist.economy import Policy, TaxSchedule
from llm_economist.mechanisms import Mechanism, Parameter


class ProgressiveLine(Mechanism):
    name = "progressive_line"
    batched = True

    def __init__(self, top_income: float = 250_000.0, n_brackets: int = 10) -> None:
        if top_income <= 0 or n_brackets < 2:
            raise ValueError("progressive_line: top_income must be positive and n_brackets at least 2")
        self.cutoffs = torch.linspace(0.0, top_income, n_brackets, dtype=torch.float64)
        self.parameters = (
            Parameter("base_rate", 0.0, 1.0, "fraction", "marginal rate on the first dollar"),
            Parameter("top_rate", 0.0, 1.0, "fraction", f"marginal rate from ${top_income:,.0f} up"),
        )

    def initial(self) -> torch.Tensor:
        return torch.tensor([0.1, 0.4], dtype=torch.float64)

    def compile(self, theta: torch.Tensor) -> Policy:
        share = torch.linspace(0.0, 1.0, len(self.cutoffs), dtype=theta.dtype)  # (K,)
        rates = theta[..., :1] + (theta[..., 1:] - theta[..., :1]) * share  # (..., K)
        return Policy(TaxSchedule(self.cutoffs.to(theta.dtype), rates))

    def describe(self) -> str:
        return (
            "Marginal tax rates rise in a straight line from the base rate on the first dollar to the top rate "
            "at the top income; all revenue is rebated equally."
        )
