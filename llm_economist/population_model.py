"""What these workers do under this policy, and how good that is: the population model planners query.

`respond` gives the period outcome a policy leads to once what workers expect of the budget
(the equal transfer, or the rate that funds it) matches what it pays (a fixed point, reached in
one pass when utility is quasi-linear and the budget balances by rebate); `welfare` scores an outcome by the run's social welfare function. Model-based
planners (Saez, search, grid, gradient) query it; the simulation loop plays the real dynamics
period by period instead. It knows no client, no planner and no file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
import torch

from .economy.outcome import Outcome, settle
from .economy.policy import Policy
from .economy.utility import Preferences
from .economy.welfare import DEFAULT_WELFARE, social_welfare
from .mechanisms.base import Mechanism
from .workers.base import Workers

Tensor = torch.Tensor

TRANSFER_TOLERANCE = 0.01  # $/year
FUNDING_RATE_TOLERANCE = 1e-7
MAX_TRANSFER_ITERATIONS = 100
EVALUATION_CHUNK = 256


@dataclass
class PopulationModel:
    wage: Tensor
    prefs: Preferences
    workers: Workers
    welfare_name: str = DEFAULT_WELFARE
    welfare_params: dict = field(default_factory=dict)
    evaluations: int = 0  # policies evaluated through `respond`, for reporting planner cost
    filing: Tensor | None = None  # (N,) each worker's filing group, for mechanisms that tax by filing status

    def resolve(self, policy: Policy) -> Policy:
        """The policy as these workers face it: each with its own filing group's schedule."""
        return policy.for_agents(self.filing)

    def respond(self, policy: Policy, expected: Tensor | None = None) -> Outcome:
        """Outcome (..., N) of a (possibly batched) policy at the budget's fixed point, iterating
        from `expected` (..., 1), the transfer or funding rate workers expect (default: none)."""
        policy = self.resolve(policy)
        if expected is None:
            expected = torch.zeros(*policy.schedule.batch_shape, 1, dtype=self.wage.dtype)
        one_pass = self.prefs.eta == 0 and policy.funding == "rebate"
        tolerance = TRANSFER_TOLERANCE if policy.funding == "rebate" else FUNDING_RATE_TOLERANCE
        for _ in range(1 if one_pass else MAX_TRANSFER_ITERATIONS):
            faced, transfer = policy.faced(expected)
            hours = self.workers.expected_hours(self.wage, faced, transfer)
            outcome = settle(self.wage, hours, policy, self.prefs)
            converged = (policy.expectation(outcome) - expected).abs().max() < tolerance
            expected = policy.expectation(outcome)
            if converged:
                break
        self.evaluations += math.prod(policy.schedule.batch_shape)
        return outcome

    def welfare(self, outcome: Outcome) -> Tensor:
        return social_welfare(outcome, self.welfare_name, self.wage, **self.welfare_params)

    def measure(self, mechanism: Mechanism, thetas: Tensor, quantity: Callable[[Outcome], Tensor]) -> Tensor:
        """(G, ...) `quantity` of the outcome of each parameter vector in thetas (G, P), batched
        in chunks when the mechanism allows, one by one otherwise."""
        thetas = mechanism.validate(thetas)
        if mechanism.batched:
            chunks = [quantity(self.respond(mechanism.compile(t))) for t in thetas.split(EVALUATION_CHUNK)]
        else:
            chunks = [quantity(self.respond(mechanism.compile(t))).unsqueeze(0) for t in thetas]
        return torch.cat(chunks)

    def evaluate(self, mechanism: Mechanism, thetas: Tensor) -> Tensor:
        """(G,) welfare of each parameter vector in thetas (G, P)."""
        return self.measure(mechanism, thetas, self.welfare)

    def horizon_welfare(self, mechanism: Mechanism, theta: Tensor, horizon: int = 1) -> Tensor:
        """W(theta) = (1/T) sum_t W(outcome_t), differentiable in theta; outcome_t starts from what outcome_{t-1} paid."""
        if horizon < 1:
            raise ValueError(f"welfare horizon must be at least 1 period, got {horizon}")
        policy = mechanism.compile(theta)
        expected = None  # the first period starts from no transfer
        total = torch.zeros((), dtype=self.wage.dtype)
        for _ in range(horizon):
            outcome = self.respond(policy, expected)
            total = total + self.welfare(outcome)
            expected = policy.expectation(outcome)
        return total / horizon
