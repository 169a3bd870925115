"""The Saez baseline: the discrete-bracket optimal-rate formula iterated to a damped fixed point.

Each iteration queries the population model for incomes under the current rates, computes the
social marginal welfare weights of those outcomes, and moves part of the way (`damping`) to
the rates the formula gives. The elasticity is the analytic one where utilities are known
(quasi-linear rational workers: exactly eps), otherwise estimated by a symmetric +/- 5 point
perturbation of the net-of-tax rates on the same agents, interior agents only.
"""

from __future__ import annotations

import math

import torch

from ..economy.outcome import Outcome
from ..economy.policy import Policy
from ..economy.saez import KINK_TOLERANCE, arc_elasticity, saez_bracket_rates
from ..economy.tax import TaxSchedule
from ..economy.welfare import marginal_welfare_weights
from ..mechanisms.base import Mechanism
from ..mechanisms.builtin import BracketTax
from ..workers.rational import RationalWorkers
from ..population_model import PopulationModel
from .base import OneShotPlanner

Tensor = torch.Tensor

PERTURBATION = 0.05
MIN_DAMPING = 1e-3
CORNER_HOURS = 1e-6  # h/week: a worker this close to 0 h or the cap sits at the corner
# An estimate below this (hours that do not respond to the net-of-tax rate, or respond the wrong
# way) is replaced by it: the formula's no-response limit, which taxes each bracket near the cap.
MIN_ELASTICITY = 0.01


def responsive(hours: Tensor, max_hours: float) -> Tensor:
    """(N,) workers not at a corner of the hours range (0 h or the cap), who respond at the margin."""
    return (hours > CORNER_HOURS) & (hours < max_hours - CORNER_HOURS)


def _with_rates(policy: Policy, rates: Tensor) -> Policy:
    """The policy with other marginal rates at the same cutoffs: a perturbed world to measure a response in."""
    return Policy(TaxSchedule(policy.schedule.cutoffs, rates), policy.lump_sum, policy.rebate_share)


def estimate_elasticity(population_model: PopulationModel, policy: Policy) -> float:
    """Arc elasticity of taxable income from (1 - tau) +/- 0.05 around the policy's rates, over the
    workers interior to one bracket and to the hours range in both perturbed worlds."""
    schedule = policy.schedule
    keep = 1.0 - schedule.rates
    up = _with_rates(policy, (1.0 - (keep + PERTURBATION)).clamp(0.0, 1.0))
    down = _with_rates(policy, (1.0 - (keep - PERTURBATION)).clamp(0.0, 1.0))
    world_up, world_down = population_model.respond(up), population_model.respond(down)
    z_up, z_down = world_up.income, world_down.income
    cap = population_model.prefs.max_hours
    idx_up, idx_down = schedule.bracket_index(z_up), schedule.bracket_index(z_down)
    at_kink = lambda z: (z.unsqueeze(-1) - schedule.cutoffs).abs().min(dim=-1).values < KINK_TOLERANCE  # noqa: E731
    interior = (idx_up == idx_down) & ~at_kink(z_up) & ~at_kink(z_down)
    interior = interior & responsive(world_up.hours, cap) & responsive(world_down.hours, cap)
    return arc_elasticity(z_up, z_down, 1.0 - up.schedule.rates[idx_up], 1.0 - down.schedule.rates[idx_down], interior)


def participation_responses(population_model: PopulationModel, policy: Policy, outcome: Outcome) -> Tensor:
    """(N,) each worker's eta_i T_i / (z_i - T_i) under `outcome` (0 for those not working), with
    eta_i the participation elasticity of its bracket: how the number working in that bracket
    moves when all take-home pay from work is scaled by 1 +- PERTURBATION (every net-of-tax rate
    scaled, so what working pays, z - T(z), scales with it at given earnings). A worker belongs to
    the bracket of its earnings where it works, here or in the world that pays more."""
    schedule = policy.schedule
    keep = 1.0 - schedule.rates
    worlds = [population_model.respond(_with_rates(policy, 1.0 - keep * (1.0 + sign * PERTURBATION))) for sign in (1.0, -1.0)]
    works, up, down = (o.hours > CORNER_HOURS for o in (outcome, *worlds))
    income = torch.where(works, outcome.income, worlds[0].income)
    bracket = torch.where(works | up, schedule.bracket_index(income), torch.full_like(works, -1, dtype=torch.long))
    eta = torch.zeros_like(outcome.income)
    step = math.log((1.0 + PERTURBATION) / (1.0 - PERTURBATION))
    for j in bracket[works].unique().tolist():
        members = bracket == j
        eta[members] = float((up & members).sum() - (down & members).sum()) / (float((works & members).sum()) * step)
    net = outcome.income - outcome.tax
    return torch.where(works & (net > 0), eta.clamp(min=0.0) * outcome.tax / net.clamp(min=1e-9), torch.zeros_like(net))


def analytic_elasticity(population_model: PopulationModel) -> float | None:
    """eps when workers maximise quasi-linear utility exactly, else None (unknown)."""
    if isinstance(population_model.workers, RationalWorkers) and population_model.prefs.eta == 0.0:
        return population_model.prefs.elasticity
    return None


class SaezPlanner(OneShotPlanner):
    kind = "saez"

    def __init__(
        self,
        mechanism: Mechanism,
        damping: float = 0.5,
        max_iterations: int = 200,
        tolerance: float = 1e-3,  # 0.1 percentage point: kinks can make the map cycle below that
        elasticity: float | str = "auto",
        max_rate: float | None = None,
    ) -> None:
        if not isinstance(mechanism, BracketTax) or mechanism.rebate_share != 1.0:
            raise ValueError("saez planner: needs a bracket_tax mechanism with all revenue rebated (rebate_share = 1)")
        if not 0 < damping <= 1:
            raise ValueError(f"saez planner: damping must lie in (0, 1], got {damping}")
        if max_iterations < 1:
            raise ValueError(f"saez planner: max_iterations must be at least 1, got {max_iterations}")
        if not tolerance > 0:
            raise ValueError(f"saez planner: tolerance must be positive, got {tolerance}")
        if max_rate is not None and not 0 < max_rate <= 1:
            raise ValueError(f"saez planner: max_rate must lie in (0, 1], got {max_rate}")
        if not (elasticity == "auto" or elasticity == "estimate" or (isinstance(elasticity, (int, float)) and elasticity > 0)):
            raise ValueError(f"saez planner: elasticity must be 'auto', 'estimate' or a positive number, got {elasticity!r}")
        super().__init__(mechanism)
        self.damping = damping
        self.max_iterations = max_iterations
        self.tolerance = tolerance
        self.elasticity_setting = elasticity
        self.max_rate = max_rate if max_rate is not None else float(mechanism.bounds()[1].max())
        self.elasticity: float | None = None
        self.iterations = 0
        self.fallbacks = 0  # iterations whose estimated elasticity was below MIN_ELASTICITY

    def _elasticity(self, population_model: PopulationModel, policy: Policy) -> float:
        if isinstance(self.elasticity_setting, (int, float)):
            return float(self.elasticity_setting)
        known = analytic_elasticity(population_model) if self.elasticity_setting == "auto" else None
        if known is not None:
            return known
        estimate = estimate_elasticity(population_model, policy)
        if estimate < MIN_ELASTICITY:
            self.fallbacks += 1
            return MIN_ELASTICITY
        return estimate

    def plan(self, population_model: PopulationModel) -> Tensor:
        return self.fixed_point(population_model, self.mechanism.initial())

    def fixed_point(self, population_model: PopulationModel, theta: Tensor) -> Tensor:
        """Iterate tau <- tau + damping * (saez(tau) - tau) until the largest change is below tolerance.

        Workers crossing into or out of a corner make the map jump, and a fixed damping can then
        cycle for ever; the damping halves whenever the gap to the formula's rates stops shrinking.
        """
        before = population_model.evaluations
        damping, last_gap = self.damping, float("inf")
        for self.iterations in range(1, self.max_iterations + 1):
            policy = self.mechanism.compile(theta)
            outcome = population_model.respond(policy)
            weights = marginal_welfare_weights(outcome, population_model.prefs, population_model.welfare_name,
                                               population_model.wage, **population_model.welfare_params)
            self.elasticity = self._elasticity(population_model, policy)
            participation = participation_responses(population_model, policy, outcome) if population_model.prefs.has_fixed_cost else None
            target = saez_bracket_rates(outcome.income, weights, self.mechanism.cutoffs, self.elasticity, self.max_rate,
                                        responsive(outcome.hours, population_model.prefs.max_hours), participation)
            gap = float((target - theta).abs().max())
            if gap >= last_gap:
                damping = max(damping / 2, MIN_DAMPING)
            last_gap = gap
            step = damping * (target - theta)
            theta = self.mechanism.clip(theta + step)
            if step.abs().max() < self.tolerance:
                break
        self.evaluations += population_model.evaluations - before
        if self.fallbacks:
            self.notes.append(
                f"The population's estimated elasticity of taxable income was below {MIN_ELASTICITY} in "
                f"{self.fallbacks} of {self.iterations} Saez iterations (hours barely respond to the net-of-tax "
                f"rate); the formula used {MIN_ELASTICITY}, its no-response limit, which taxes brackets near the cap."
            )
        return theta
