"""Worker utility: isoelastic consumption utility minus isoelastic labour disutility.

    u(c, h) = ((c - F 1[h > 0])^(1-eta) - 1) / (1 - eta) - psi d * h^(1 + 1/eps) / (1 + 1/eps)

d is each worker's own taste for leisure, a multiple of psi (1 for all unless the population says
otherwise: `Preferences.disutility`). F is a fixed cost of working at all ($/year: travel, childcare, the job search), one per worker
when the population has an extensive margin (`Preferences.fixed_cost`), so that some workers
choose 0 h and participation responds to taxes (Cogan 1981; Saez 2002). eta is the curvature of consumption utility (eta = 1 is log; eta = 0 is quasi-linear, where the
elasticity of taxable income is exactly eps and there are no income effects). Hours are per week,
consumption and income per year: z = WEEKS_PER_YEAR * wage * hours.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

Tensor = torch.Tensor

WEEKS_PER_YEAR = 52.0
FULL_TIME_HOURS = 40.0
# Consumption is floored at $1/year inside the utility so that a worker with no income and a
# negative transfer has a finite (very low) utility instead of NaN.
MIN_CONSUMPTION = 1.0


@dataclass(frozen=True)
class Preferences:
    """Preference parameters; psi is usually set by `calibrate_psi`, the fixed costs (N,) by the
    participation calibration (`factory.calibrated_preferences`)."""

    eta: float = 0.0
    elasticity: float = 0.5
    psi: float = 1.0
    max_hours: float = 80.0
    fixed_cost: Tensor | float = 0.0  # $/year given up by working any hours, per worker or one for all
    disutility: Tensor | float = 1.0  # each worker's multiple of psi, or one for all

    def __post_init__(self) -> None:
        checks = {
            "eta": (self.eta, 0.0, 5.0),
            "elasticity": (self.elasticity, 0.01, 5.0),
            "max_hours": (self.max_hours, 1.0, 168.0),
        }
        for name, (value, lo, hi) in checks.items():
            if not lo <= value <= hi:
                raise ValueError(f"preferences: {name} must lie in [{lo}, {hi}], got {value}")
        if not self.psi > 0:
            raise ValueError(f"preferences: psi must be positive, got {self.psi}")
        cost = torch.as_tensor(self.fixed_cost)
        if not (torch.isfinite(cost).all() and (cost >= 0).all()):
            raise ValueError("preferences: fixed_cost must be finite and non-negative")
        taste = torch.as_tensor(self.disutility)
        if not (torch.isfinite(taste).all() and (taste > 0).all()):
            raise ValueError("preferences: disutility must be finite and positive")

    def with_psi(self, psi: float) -> "Preferences":
        return replace(self, psi=float(psi))

    def for_agent(self, i: int | slice | Tensor) -> "Preferences":
        """Agent i's preferences, or some agents' (a slice or positions): their own fixed costs and
        tastes where each worker has one."""
        def own(value: Tensor | float) -> Tensor | float:
            if not torch.is_tensor(value):
                return value
            if torch.is_tensor(i):
                return value.index_select(0, i)  # a row gather: about half the time of advanced indexing
            return float(value[i]) if isinstance(i, int) else value[i]

        return replace(self, fixed_cost=own(self.fixed_cost), disutility=own(self.disutility))

    @property
    def has_fixed_cost(self) -> bool:
        return bool((torch.as_tensor(self.fixed_cost) > 0).any())

    def cost(self, agent_axis: int = -1) -> Tensor | float:
        """The fixed cost shaped so agents sit on `agent_axis` (-1: (..., N); -2: (..., N, choices))."""
        return _on_agent_axis(self.fixed_cost, agent_axis)

    def weight(self, agent_axis: int = -1) -> Tensor | float:
        """psi times each worker's taste for leisure, shaped as `cost`: the weight of its disutility of work."""
        return self.psi * _on_agent_axis(self.disutility, agent_axis)


def _on_agent_axis(value: Tensor | float, agent_axis: int) -> Tensor | float:
    """A per-worker value (N,) shaped so agents sit on `agent_axis`; a number as it is."""
    if not torch.is_tensor(value):
        return float(value)
    return value.reshape(-1, *([1] * (-agent_axis - 1)))


def annual_income(wage: Tensor, hours: Tensor) -> Tensor:
    """z = 52 * wage * weekly hours."""
    return (wage * hours).mul_(WEEKS_PER_YEAR)


def consumption_utility(c: Tensor, eta: float) -> Tensor:
    """(c^(1-eta) - 1) / (1 - eta), log c at eta = 1, with c floored at MIN_CONSUMPTION."""
    c = c.clamp(min=MIN_CONSUMPTION)
    if eta == 0.0:
        return c.sub_(1.0)
    if abs(eta - 1.0) < 1e-12:
        return torch.log(c)
    return (c.pow(1.0 - eta) - 1.0) / (1.0 - eta)


def marginal_consumption_utility(c: Tensor, eta: float) -> Tensor:
    """u'(c) = c^(-eta)."""
    return c.clamp(min=MIN_CONSUMPTION).pow(-eta)


def labour_disutility(h: Tensor, psi: Tensor | float, elasticity: float) -> Tensor:
    """psi * h^(1 + 1/eps) / (1 + 1/eps)."""
    k = 1.0 + 1.0 / elasticity
    power = h.clamp(min=0.0).pow_(k)
    return power.mul_(psi / k) if _holds(power, psi) else power * (psi / k)


def utility(c: Tensor, h: Tensor, prefs: Preferences, agent_axis: int = -1) -> Tensor:
    """u(c, h), the fixed cost paid where h > 0; agents on `agent_axis` of c (see `Preferences.cost`)."""
    if prefs.has_fixed_cost:
        c = c - prefs.cost(agent_axis) * (h > 0)
    pleasure = consumption_utility(c, prefs.eta)
    pain = labour_disutility(h, prefs.weight(agent_axis), prefs.elasticity)
    return pleasure.sub_(pain) if _holds(pleasure, pain) else pleasure - pain


def _holds(fresh: Tensor, other: Tensor | float) -> bool:
    """Whether ``fresh``, a tensor just made, can take its product or difference with ``other`` in
    place (the result's shape and dtype are its own): at a million agents a step is bound by how
    many arrays it touches, not by its arithmetic."""
    if not torch.is_tensor(other):
        return True
    return torch.broadcast_shapes(fresh.shape, other.shape) == fresh.shape and torch.result_type(fresh, other) == fresh.dtype


def utility_scale(wage: Tensor, eta: float) -> Tensor:
    """Utility value of full-time earnings, (52 * 40 * w)^(1-eta): the natural unit for logit noise."""
    full_time = WEEKS_PER_YEAR * FULL_TIME_HOURS * wage
    return full_time.clamp(min=MIN_CONSUMPTION).pow(1.0 - eta)
