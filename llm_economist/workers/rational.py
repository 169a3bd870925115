"""Rational workers: the exact utility-maximising hours, and the logit (bounded-rational) kind."""

from __future__ import annotations

import torch

from ..economy.labour import best_response_hours, hour_bins, logit_hour_probabilities, nearest_bin, zero_tax_income
from ..economy.policy import Policy
from ..economy.utility import Preferences
from ..personas import SocialGraph
from .base import Decisions, Observation, Workers

Tensor = torch.Tensor


class RationalWorkers(Workers):
    """Every worker chooses the exact best response to the schedule and the expected transfer."""

    name = "rational"

    def __init__(self, prefs: Preferences) -> None:
        self.prefs = prefs
        self._untaxed: tuple[Tensor, Tensor] | None = None  # a wage tensor and its `zero_tax_income`

    def act(self, obs: Observation, generator: torch.Generator) -> Decisions:
        return Decisions(self.expected_hours(obs.wage, obs.policy, obs.expected_transfer))

    def expected_hours(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        return best_response_hours(wage, policy.schedule, transfer, self.prefs, self._zero_tax_income(wage))

    def _zero_tax_income(self, wage: Tensor) -> Tensor:
        """Worked out once for the population whose wages come back period after period (the same
        tensor; nothing changes a population's wages in place)."""
        if self._untaxed is None or self._untaxed[0] is not wage:
            self._untaxed = (wage, zero_tax_income(wage, self.prefs))
        return self._untaxed[1]


class BoundedRationalWorkers(Workers):
    """Each worker draws hours from a logit over hour bins: better choices are likelier, not certain.

    `temperature` is the utility noise as a fraction of the utility of full-time earnings; as it
    goes to 0 the choice becomes the best bin. Habit and imitation make a population with known
    persistence and social influence: with probability `persistence` a worker repeats its last
    hours, with probability `social_pull` it copies a random contact's (from `graph`), otherwise it
    draws from the logit; expected hours are then (1 - p - s) logit + p own last + s contacts' last.
    """

    name = "bounded"

    def __init__(self, prefs: Preferences, temperature: float = 0.05, n_bins: int = 17, persistence: float = 0.0,
                 social_pull: float = 0.0, graph: SocialGraph | None = None, horizon: int = 1) -> None:
        if not temperature > 0:
            raise ValueError(f"bounded workers: temperature must be positive, got {temperature}")
        if not (persistence >= 0 and social_pull >= 0 and persistence + social_pull < 1):
            raise ValueError("bounded workers: persistence and social_pull must be >= 0 with a sum below 1")
        if social_pull and graph is None:
            raise ValueError("bounded workers: social_pull needs the social graph")
        self.prefs = prefs
        self.temperature = temperature
        self.bins = hour_bins(prefs.max_hours, n_bins)
        self.persistence, self.social_pull = persistence, social_pull
        self.graph = graph
        self.horizon = horizon if persistence or social_pull else 1

    def logit(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        """(..., N, B) probability of each hour bin from utility alone."""
        bins = self.bins.to(wage.dtype)
        return logit_hour_probabilities(wage, policy.schedule, transfer, self.prefs, bins, self.temperature)

    def probabilities(self, wage: Tensor, policy: Policy, transfer, last_hours: Tensor | None = None) -> Tensor:
        """(..., N, B) probability of each hour bin, given everyone's last hours (N,) where there are any."""
        probs = self.logit(wage, policy, transfer)
        if last_hours is None or not (self.persistence or self.social_pull):
            return probs
        own = nearest_bin(last_hours, self.bins)
        contacts = self._contacts_mean(own)
        return (1 - self.persistence - self.social_pull) * probs + self.persistence * own + self.social_pull * contacts

    def _contacts_mean(self, rows: Tensor) -> Tensor:
        """(N, ...) the mean of `rows` over each worker's contacts (its own row where it has none)."""
        if self.graph is None:
            return rows
        flat = rows.reshape(rows.shape[0], -1)
        has = (self.graph.degree > 0).unsqueeze(-1)
        return torch.where(has, self.graph.neighbour_mean(flat), flat).reshape(rows.shape)

    def act(self, obs: Observation, generator: torch.Generator) -> Decisions:
        last = obs.last.hours if obs.last is not None else None
        probs = self.probabilities(obs.wage, obs.policy, obs.expected_transfer, last)
        choice = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        # The exact choice probabilities go to the traces: the target when distilling this population.
        return Decisions(self.bins.to(obs.wage.dtype)[choice], {"hour_distribution": probs})

    def expected_hours(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        """(..., N) mean hours after `horizon` periods under `policy` from a fresh start (the logit's
        mean; habit and imitation then pull each period towards last period's means)."""
        bins = self.bins.to(wage.dtype)
        chosen = self.logit(wage, policy, transfer) @ bins
        hours = chosen
        for _ in range(self.horizon - 1):
            contacts = self._contacts_mean(hours.movedim(-1, 0)).movedim(0, -1)
            hours = (1 - self.persistence - self.social_pull) * chosen + self.persistence * hours + self.social_pull * contacts
        return hours
