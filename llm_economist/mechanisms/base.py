"""The plug-in policy API: a mechanism declares a parameter vector and compiles it to a Policy.

Planners only ever see the parameter vector (names, bounds, units, descriptions), so any new
mechanism works with every planner unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from ..economy.policy import Policy

Tensor = torch.Tensor


@dataclass(frozen=True)
class Parameter:
    name: str
    low: float
    high: float
    unit: str
    description: str

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"parameter {self.name}: low ({self.low}) must be below high ({self.high})")


class Mechanism(ABC):
    """Subclasses set `name`, build `parameters` in __init__, and implement `compile` and `describe`."""

    name: str = ""
    parameters: tuple[Parameter, ...] = ()
    # True when `compile` accepts a batch of parameter vectors (..., P) and returns one batched
    # Policy (same cutoffs for every member); planners then evaluate many candidates at once.
    batched: bool = False

    @abstractmethod
    def initial(self) -> Tensor:
        """(P,) starting parameters."""

    @abstractmethod
    def compile(self, theta: Tensor) -> Policy:
        """The tax schedule and transfers the parameters imply; differentiable in theta."""

    @abstractmethod
    def describe(self) -> str:
        """One paragraph: what the mechanism is, for reports and prompts."""

    @property
    def size(self) -> int:
        return len(self.parameters)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def bounds(self, dtype=torch.float64) -> tuple[Tensor, Tensor]:
        low = torch.tensor([p.low for p in self.parameters], dtype=dtype)
        high = torch.tensor([p.high for p in self.parameters], dtype=dtype)
        return low, high

    def validate(self, theta) -> Tensor:
        """theta as a float64 tensor (..., P), or ValueError naming the offending parameter."""
        try:
            t = torch.as_tensor(theta, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{self.name}: parameters must be numbers, got {theta!r}") from err
        if t.ndim < 1 or t.shape[-1] != self.size:
            raise ValueError(f"{self.name}: expected {self.size} parameters {self.names}, got shape {tuple(t.shape)}")
        low, high = self.bounds()
        for j, p in enumerate(self.parameters):
            col = t[..., j]
            bad = ~torch.isfinite(col) | (col < p.low) | (col > p.high)
            if bad.any():
                value = col[bad].flatten()[0].item()
                raise ValueError(f"{self.name}: parameter {p.name} must lie in [{p.low:g}, {p.high:g}] {p.unit}, got {value:g}")
        return t

    def clip(self, theta: Tensor) -> Tensor:
        """Project onto the box of bounds (non-finite entries go to the lower bound)."""
        low, high = self.bounds(theta.dtype)
        theta = torch.where(torch.isfinite(theta), theta, low)
        return torch.minimum(torch.maximum(theta, low), high)

    def explain(self, theta: Tensor) -> str:
        """The parameters in plain words, one per line."""
        values = self.validate(theta)
        return "\n".join(f"{p.name} = {v:g} {p.unit} ({p.description})" for p, v in zip(self.parameters, values.tolist()))

    def as_dict(self, theta: Tensor) -> dict[str, float]:
        return {p.name: float(v) for p, v in zip(self.parameters, self.validate(theta).tolist())}
