"""What these workers do under this policy, and how good that is: the population model planners query.

`respond` gives the period outcome a policy leads to once the equal transfer workers expect
matches the one the budget pays (a fixed point, reached in one pass when utility is
quasi-linear); `welfare` scores an outcome by the run's social welfare function. Model-based
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

    def respond(self, policy: Policy, transfer: Tensor | None = None) -> Outcome:
        """Outcome (..., N) of a (possibly batched) policy at the transfer fixed point, iterating
        from `transfer` (..., 1) (default: none)."""
        if transfer is None:
            transfer = torch.zeros(*policy.schedule.rates.shape[:-1], 1, dtype=self.wage.dtype)
        for _ in range(MAX_TRANSFER_ITERATIONS if self.prefs.eta > 0 else 1):
            hours = self.workers.expected_hours(self.wage, policy, transfer)
            outcome = settle(self.wage, hours, policy, self.prefs)
            converged = (outcome.transfer - transfer).abs().max() < TRANSFER_TOLERANCE
            transfer = outcome.transfer
            if converged:
                break
        self.evaluations += math.prod(policy.schedule.rates.shape[:-1])
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
