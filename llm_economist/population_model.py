"""What these workers do under this policy, and how good that is: the population model planners query.

`respond` gives the period outcome a policy leads to once what workers expect of the budget
(the equal transfer, or the rate that funds it) matches what it pays, and what spouses who file
one return expect of each other's earnings matches what they earn (a fixed point, reached in one
pass when utility is quasi-linear, the budget balances by rebate and no couple files jointly);
`welfare` scores an outcome by the run's social welfare function. Model-based
planners (Saez, search, grid, gradient) query it; the simulation loop plays the real dynamics
period by period instead. It knows no client, no planner and no file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
import torch

from .economy.outcome import Outcome, settle
from .economy.policy import Policy, TaxUnits
from .economy.utility import Preferences
from .economy.welfare import DEFAULT_WELFARE, bind_welfare
from .mechanisms.base import Mechanism
from .workers.base import Workers

Tensor = torch.Tensor

TRANSFER_TOLERANCE = 0.01  # $/year
EARNINGS_TOLERANCE = 0.01  # $/year, of a spouse's earnings
FUNDING_RATE_TOLERANCE = 1e-7
MAX_ITERATIONS = 100
EVALUATION_CHUNK = 256


@dataclass
class PopulationModel:
    wage: Tensor
    prefs: Preferences
    workers: Workers
    welfare_name: str = DEFAULT_WELFARE
    welfare_params: dict = field(default_factory=dict)
    evaluations: int = 0  # policies evaluated through `respond`, for reporting planner cost
    units: TaxUnits | None = None  # who files with whom, for mechanisms that tax by filing status
    _score: Callable[[Outcome], Tensor] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._score = bind_welfare(self.welfare_name, self.wage, **self.welfare_params)

    def resolve(self, policy: Policy, last: Outcome | None = None) -> Policy:
        """The policy as these workers face it: each with its own filing group's schedule, spouses
        who file one return above the partner's earnings in `last` (none: as if it earned nothing)."""
        return policy.for_agents(self.units, None if last is None else last.income)

    def respond(self, policy: Policy, expected: Tensor | None = None) -> Outcome:
        """Outcome (..., N) of a (possibly batched) policy at the budget's fixed point, iterating
        from `expected` (..., 1), the transfer or funding rate workers expect (default: none).

        Spouses on one return start from expecting each other to earn nothing, then take turns:
        one spouse of every couple responds to the other's earnings, then the other. With
        quasi-linear utility each turn raises the couple's joint surplus (a potential game), so
        the turns settle where neither spouse would change, which moving together need not do
        (both may jump across a kink and back forever). That is the couple's joint optimum where
        the return is convex, except for a couple bunched at a kink, which stops at the first
        split of that income both spouses accept."""
        resolved = self.resolve(policy)
        if expected is None:
            expected = torch.zeros(*resolved.schedule.batch_shape, 1, dtype=self.wage.dtype)
        joint = resolved.joint is not None
        one_pass = self.prefs.eta == 0 and policy.funding == "rebate" and not joint
        tolerance = TRANSFER_TOLERANCE if policy.funding == "rebate" else FUNDING_RATE_TOLERANCE
        outcome, spouses_still = None, False
        for turn in range(1 if one_pass else MAX_ITERATIONS):
            if joint and outcome is not None:
                resolved = self.resolve(policy, outcome)
            faced, transfer = resolved.faced(expected)
            hours = self.workers.expected_hours(self.wage, faced, transfer)
            if joint:
                hours = self.units.take_turn(turn, None if outcome is None else outcome.hours, hours)
            previous, outcome = outcome, settle(self.wage, hours, resolved, self.prefs)
            converged = bool((resolved.expectation(outcome) - expected).abs().max() < tolerance)
            if joint:  # both spouses' turns without a change
                still = previous is not None and bool((outcome.income - previous.income).abs().max() < EARNINGS_TOLERANCE)
                converged, spouses_still = converged and still and spouses_still, still
            expected = resolved.expectation(outcome)
            if converged:
                break
        self.evaluations += math.prod(policy.schedule.batch_shape)
        return outcome

    def welfare(self, outcome: Outcome) -> Tensor:
        return self._score(outcome)

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
