"""Rational workers: the exact utility-maximising hours, and the logit (bounded-rational) kind."""

from __future__ import annotations

import torch

from ..economy.labour import best_response_hours, hour_bins, logit_hour_probabilities
from ..economy.policy import Policy
from ..economy.utility import Preferences
from .base import Decisions, Observation, Workers

Tensor = torch.Tensor


class RationalWorkers(Workers):
    """Every worker chooses the exact best response to the schedule and the expected transfer."""

    name = "rational"

    def __init__(self, prefs: Preferences) -> None:
        self.prefs = prefs

    def act(self, obs: Observation, generator: torch.Generator) -> Decisions:
        return Decisions(best_response_hours(obs.wage, obs.policy.schedule, obs.expected_transfer, self.prefs))

    def expected_hours(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        return best_response_hours(wage, policy.schedule, transfer, self.prefs)


class BoundedRationalWorkers(Workers):
    """Each worker draws hours from a logit over hour bins: better choices are likelier, not certain.

    `temperature` is the utility noise as a fraction of the utility of full-time earnings; as it
    goes to 0 the choice becomes the best bin.
    """

    name = "bounded"

    def __init__(self, prefs: Preferences, temperature: float = 0.05, n_bins: int = 17) -> None:
        if not temperature > 0:
            raise ValueError(f"bounded workers: temperature must be positive, got {temperature}")
        self.prefs = prefs
        self.temperature = temperature
        self.bins = hour_bins(prefs.max_hours, n_bins)

    def probabilities(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        """(..., N, B) probability of each hour bin."""
        bins = self.bins.to(wage.dtype)
        return logit_hour_probabilities(wage, policy.schedule, transfer, self.prefs, bins, self.temperature)

    def act(self, obs: Observation, generator: torch.Generator) -> Decisions:
        probs = self.probabilities(obs.wage, obs.policy, obs.expected_transfer)
        choice = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        # The exact choice probabilities go to the traces: the target when distilling this population.
        return Decisions(self.bins.to(obs.wage.dtype)[choice], {"hour_distribution": probs})

    def expected_hours(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        return self.probabilities(wage, policy, transfer) @ self.bins.to(wage.dtype)
