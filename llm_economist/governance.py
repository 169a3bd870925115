"""Elections among candidate platforms: citizens vote on which parameter vector the mechanism takes.

A platform is one parameter vector of the configured mechanism, proposed by the planner, by a
worker, by the config, or kept from the status quo. Each voter hands in a full ranking of the
platforms and an approval set; a voting rule turns the ballots into a winner.

Conventions every rule shares:

- Ties for the winner go to the lower platform index. The status quo is platform 0 by
  convention, so a tie keeps the status quo.
- Instant-runoff eliminates, each round, the remaining platform with the fewest votes; a tie
  for fewest is broken by fewest first-round votes, then by eliminating the higher index (so
  the lower index survives, in line with the rule above).
- Counting is vectorised over voters; only candidates and rounds are looped over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .mechanisms.base import Mechanism

if TYPE_CHECKING:  # workers vote through this module and the population model holds workers: no runtime import
    from .population_model import PopulationModel

Tensor = torch.Tensor

PROPOSERS = ("status_quo", "planner", "worker", "config")
RULES = ("plurality", "instant_runoff", "approval")
APPROVAL_THRESHOLDS = ("status_quo", "mean")


@dataclass(frozen=True, eq=False)
class Platform:
    """One candidate: a named parameter vector of the mechanism and who proposed it."""

    name: str
    proposer: str
    theta: Tensor  # (P,)

    def __post_init__(self) -> None:
        if self.proposer not in PROPOSERS:
            raise ValueError(f"platform {self.name!r}: proposer must be one of {list(PROPOSERS)}, got {self.proposer!r}")
        try:
            theta = torch.as_tensor(self.theta, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"platform {self.name!r}: theta must be numbers, got {self.theta!r}") from err
        if theta.ndim != 1 or theta.numel() == 0:
            raise ValueError(f"platform {self.name!r}: theta must be one parameter vector (P,), got shape {tuple(theta.shape)}")
        object.__setattr__(self, "theta", theta.detach())

    def to_dict(self, mechanism: Mechanism | None = None) -> dict:
        """JSON-ready; parameters by name when the mechanism is given, else as a list."""
        parameters = mechanism.as_dict(self.theta) if mechanism is not None else [float(v) for v in self.theta.tolist()]
        return {"name": self.name, "proposer": self.proposer, "parameters": parameters}


@dataclass(frozen=True, eq=False)
class Ballots:
    """Every voter's full ranking of the C platforms (best first) and approval set.

    rankings: (V, C) int64, each row a permutation of 0..C-1.
    approvals: (V, C) bool, approvals[v, c] when voter v approves platform c.
    """

    rankings: Tensor
    approvals: Tensor

    def __post_init__(self) -> None:
        rankings = torch.as_tensor(self.rankings)
        approvals = torch.as_tensor(self.approvals)
        if rankings.is_floating_point() or rankings.is_complex() or rankings.dtype == torch.bool:
            raise ValueError(f"ballots: rankings must be integer platform indices, got dtype {rankings.dtype}")
        if rankings.ndim != 2:
            raise ValueError(f"ballots: rankings must have shape (voters, candidates), got {tuple(rankings.shape)}")
        if approvals.ndim != 2 or approvals.shape != rankings.shape:
            raise ValueError(
                f"ballots: approvals shape {tuple(approvals.shape)} does not match rankings shape {tuple(rankings.shape)}"
            )
        voters, candidates = rankings.shape
        if voters == 0:
            raise ValueError("ballots: no voters (rankings has 0 rows)")
        if candidates < 2:
            raise ValueError(f"ballots: an election needs at least 2 platforms, got {candidates}")
        rankings = rankings.to(torch.int64)
        expected = torch.arange(candidates, dtype=torch.int64, device=rankings.device)
        bad = (rankings.sort(dim=1).values != expected).any(dim=1)
        if bad.any():
            v = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"ballots: ranking of voter {v} is not a permutation of 0..{candidates - 1}: {rankings[v].tolist()}"
            )
        if approvals.dtype != torch.bool:
            if not ((approvals == 0) | (approvals == 1)).all():
                raise ValueError("ballots: approvals must be booleans (or 0/1)")
            approvals = approvals.to(torch.bool)
        object.__setattr__(self, "rankings", rankings)
        object.__setattr__(self, "approvals", approvals)

    @property
    def voters(self) -> int:
        return int(self.rankings.shape[0])

    @property
    def candidates(self) -> int:
        return int(self.rankings.shape[1])


@dataclass(frozen=True, eq=False)
class ElectionResult:
    """Who won under which rule, with the counts that decided it.

    tallies: one list of C counts per counting round: a single round for plurality and
    approval, one per instant-runoff round (platforms already eliminated count 0).
    eliminated: the instant-runoff elimination order (empty for the other rules).
    """

    rule: str
    platforms: tuple[Platform, ...]
    winner: int
    tallies: list[list[float]]
    eliminated: list[int]
    voters: int

    @property
    def winning_platform(self) -> Platform:
        return self.platforms[self.winner]

    @property
    def winner_name(self) -> str:
        return self.platforms[self.winner].name

    def to_dict(self, mechanism: Mechanism | None = None) -> dict:
        """JSON-ready: platforms with named parameters (given the mechanism), tallies and the winner."""
        return {
            "rule": self.rule,
            "voters": self.voters,
            "winner": self.winner,
            "winner_name": self.winner_name,
            "platforms": [p.to_dict(mechanism) for p in self.platforms],
            "tallies": [[float(x) for x in round_] for round_ in self.tallies],
            "eliminated": [int(c) for c in self.eliminated],
            "eliminated_names": [self.platforms[c].name for c in self.eliminated],
        }


def _lowest_index_max(counts: Tensor) -> int:
    """Index of the largest count; among equals, the lowest index."""
    return int((counts == counts.max()).nonzero()[0, 0])


def _count(choices: Tensor, candidates: int) -> Tensor:
    return torch.bincount(choices, minlength=candidates)


def plurality(ballots: Ballots) -> tuple[int, list[float]]:
    """Each voter's first choice counts once; most first choices wins (ties: lower index).

    Returns (winner, tallies) with tallies the C first-choice counts.
    """
    counts = _count(ballots.rankings[:, 0], ballots.candidates)
    return _lowest_index_max(counts), [float(c) for c in counts.tolist()]


def approval(ballots: Ballots) -> tuple[int, list[float]]:
    """Each voter approves any number of platforms; most approvals wins (ties: lower index).

    Returns (winner, tallies) with tallies the C approval counts.
    """
    counts = ballots.approvals.sum(dim=0)
    return _lowest_index_max(counts), [float(c) for c in counts.tolist()]


def instant_runoff(ballots: Ballots) -> tuple[int, list[list[float]], list[int]]:
    """Instant-runoff (alternative vote) on full rankings.

    Each round counts every ballot for its highest-ranked remaining platform. A platform with
    more than half of the ballots wins. Otherwise the remaining platform with the fewest votes
    is eliminated (tie: fewest first-round votes, then the higher index goes) and counting
    repeats. Rankings are full, so no ballot is ever exhausted and a majority always means more
    than V / 2. When the last two split evenly, the tie-break eliminates one and the other wins,
    so an even split keeps the lower index.

    Returns (winner, rounds, eliminated): the C counts of each round and the elimination order.
    """
    rankings, C, V = ballots.rankings, ballots.candidates, ballots.voters
    remaining = torch.ones(C, dtype=torch.bool, device=rankings.device)
    positions = torch.arange(C, device=rankings.device).expand(V, C)
    first_round: Tensor | None = None
    rounds: list[list[float]] = []
    eliminated: list[int] = []
    while True:
        # Position on each ballot of its best remaining platform: the first column still in the race.
        alive = remaining[rankings]  # (V, C)
        top = torch.where(alive, positions, C).min(dim=1).values  # (V,)
        counts = _count(rankings.gather(1, top.unsqueeze(1)).squeeze(1), C)  # (C,)
        if first_round is None:
            first_round = counts
        rounds.append([float(c) for c in counts.tolist()])
        leader = _lowest_index_max(torch.where(remaining, counts, -1))
        if 2 * int(counts[leader]) > V:
            return leader, rounds, eliminated
        # Lexicographic order among the remaining: fewest votes, then fewest first-round votes,
        # then the highest index goes.
        candidates = [c for c in range(C) if remaining[c]]
        loser = min(candidates, key=lambda c: (int(counts[c]), int(first_round[c]), -c))
        remaining[loser] = False
        eliminated.append(loser)


def hold_election(rule: str, platforms: Sequence[Platform], ballots: Ballots) -> ElectionResult:
    """Count the ballots under `rule` (one of RULES) and name the winning platform."""
    if rule not in RULES:
        raise ValueError(f"election: unknown rule {rule!r}; known rules: {list(RULES)}")
    platforms = tuple(platforms)
    if len(platforms) < 2:
        raise ValueError(f"election: needs at least 2 platforms, got {len(platforms)}")
    if not all(isinstance(p, Platform) for p in platforms):
        raise ValueError("election: platforms must be Platform objects")
    if ballots.candidates != len(platforms):
        raise ValueError(
            f"election: ballots rank {ballots.candidates} candidates but there are {len(platforms)} platforms"
        )
    if rule == "instant_runoff":
        winner, tallies, eliminated = instant_runoff(ballots)
    else:
        winner, counts = plurality(ballots) if rule == "plurality" else approval(ballots)
        tallies, eliminated = [counts], []
    return ElectionResult(rule, platforms, winner, tallies, eliminated, ballots.voters)


def _stack(mechanism: Mechanism, platforms: Sequence[Platform]) -> Tensor:
    """(C, P) validated parameters of the platforms; errors name the platform."""
    if len(platforms) == 0:
        raise ValueError("election: no platforms given")
    rows = []
    for p in platforms:
        try:
            rows.append(mechanism.validate(p.theta))
        except ValueError as err:
            raise ValueError(f"platform {p.name!r}: {err}") from err
        if rows[-1].ndim != 1:
            raise ValueError(f"platform {p.name!r}: expected one parameter vector, got shape {tuple(rows[-1].shape)}")
    return torch.stack(rows)


def _utilities(population_model: PopulationModel, mechanism: Mechanism, thetas: Tensor, agents: Tensor | None = None) -> Tensor:
    """(G, N) utility of every agent (or (G, A) of the given agents) under each parameter vector."""
    utility = (lambda o: o.utility) if agents is None else (lambda o: o.utility[..., agents])
    return population_model.measure(mechanism, thetas, utility)


def platform_utilities(population_model: PopulationModel, mechanism: Mechanism, platforms: Sequence[Platform]) -> Tensor:
    """(C, N) each agent's utility under each platform, at the population's transfer fixed point."""
    return _utilities(population_model, mechanism, _stack(mechanism, platforms))


def ballots_from_utilities(utilities: Tensor, status_quo: int = 0, approve: str = "mean") -> Ballots:
    """Sincere ballots from utilities (C, V): rank by own utility (ties: lower index first).

    approve = "status_quo": approve every platform worth at least the status quo (index
    `status_quo`). Every voter then approves the status quo, so under the approval rule a
    challenger can at best tie it, and ties keep the status quo: approval elections with these
    ballots never change the mechanism.
    approve = "mean": approve every platform worth at least the voter's mean utility over the
    platforms (the usual sincere approval strategy): the favourite is always approved, the
    least-liked never unless all are equal.
    """
    if utilities.ndim != 2:
        raise ValueError(f"ballots: utilities must have shape (candidates, voters), got {tuple(utilities.shape)}")
    if approve not in APPROVAL_THRESHOLDS:
        raise ValueError(f"ballots: approve must be one of {list(APPROVAL_THRESHOLDS)}, got {approve!r}")
    C = utilities.shape[0]
    if not 0 <= status_quo < C:
        raise ValueError(f"ballots: status_quo must be a platform index in [0, {C - 1}], got {status_quo}")
    per_voter = utilities.T  # (V, C)
    rankings = torch.argsort(-per_voter, dim=1, stable=True)
    if approve == "status_quo":
        threshold = per_voter[:, status_quo : status_quo + 1]
    else:
        threshold = per_voter.mean(dim=1, keepdim=True)
    approvals = per_voter >= threshold
    # The mean of equal utilities may round below them; the favourite is approved regardless.
    approvals.scatter_(1, rankings[:, :1], True)
    return Ballots(rankings, approvals)


def rational_ballots(
    population_model: PopulationModel, mechanism: Mechanism, platforms: Sequence[Platform], status_quo: int = 0, approve: str = "mean"
) -> Ballots:
    """Every agent votes its own utility under each platform, the population responding to it.

    Ranking: platforms by the agent's utility, best first (ties: lower index first). Approval:
    by default the platforms worth at least the agent's mean utility over the platforms; see
    `ballots_from_utilities` for the status-quo threshold and why it cannot change the mechanism.
    """
    if len(platforms) < 2:
        raise ValueError(f"election: needs at least 2 platforms, got {len(platforms)}")
    return ballots_from_utilities(platform_utilities(population_model, mechanism, platforms), status_quo, approve)


def worker_platforms(
    population_model: PopulationModel, mechanism: Mechanism, agents: Sequence[int], budget: int = 200, seed: int = 0
) -> list[Platform]:
    """Each named agent proposes the parameters best for itself among `budget` candidates.

    The candidates are the mechanism's initial parameters plus budget - 1 uniform draws in the
    bounds (seeded), shared by all proposers; each candidate is judged by the population's
    response to it. Ties go to the earlier candidate, so the initial parameters win ties.
    """
    if budget < 1:
        raise ValueError(f"worker platforms: budget must be at least 1, got {budget}")
    n = int(population_model.wage.shape[-1])
    agents = [int(a) for a in agents]
    if not agents:
        raise ValueError("worker platforms: no proposing agents given")
    bad = [a for a in agents if not 0 <= a < n]
    if bad:
        raise ValueError(f"worker platforms: agent indices must lie in [0, {n - 1}], got {bad}")
    generator = torch.Generator().manual_seed(seed)
    low, high = mechanism.bounds()
    draws = low + (high - low) * torch.rand(budget - 1, mechanism.size, generator=generator, dtype=torch.float64)
    candidates = mechanism.validate(torch.cat([mechanism.initial().to(torch.float64).unsqueeze(0), draws]))
    utilities = _utilities(population_model, mechanism, candidates, torch.tensor(agents))  # (budget, A)
    best = [_lowest_index_max(utilities[:, j]) for j in range(len(agents))]
    return [Platform(f"worker {a}", "worker", candidates[b].clone()) for a, b in zip(agents, best)]


def default_proposers(income: Tensor, count: int) -> list[int]:
    """Agents at evenly spaced income quantiles (k + 1/2) / count, k = 0..count-1.

    count = 3 gives the agents at the 1/6, 1/2 and 5/6 quantiles, so proposals span the
    distribution. Ties in income keep the lower agent index first.
    """
    income = torch.as_tensor(income)
    if income.ndim != 1:
        raise ValueError(f"proposers: income must be one value per agent (N,), got shape {tuple(income.shape)}")
    n = income.shape[0]
    if not 1 <= count <= n:
        raise ValueError(f"proposers: count must lie in [1, {n}] (the number of agents), got {count}")
    order = torch.argsort(income, stable=True)
    return [int(order[min(n - 1, int((k + 0.5) * n / count))]) for k in range(count)]


def config_platforms(mechanism: Mechanism, named: Mapping[str, Sequence[float] | Mapping[str, float]]) -> list[Platform]:
    """Platforms written in a config: name -> parameter list, or name -> {parameter name: value}."""
    platforms = []
    for name, values in named.items():
        if isinstance(values, Mapping):
            unknown = sorted(set(values) - set(mechanism.names))
            missing = [p for p in mechanism.names if p not in values]
            if unknown or missing:
                raise ValueError(
                    f"platform {name!r}: parameters must be exactly {mechanism.names}; "
                    + (f"unknown {unknown}" if unknown else f"missing {missing}")
                )
            values = [values[p] for p in mechanism.names]
        try:
            theta = mechanism.validate(values)
        except ValueError as err:
            raise ValueError(f"platform {name!r}: {err}") from err
        if theta.ndim != 1:
            raise ValueError(f"platform {name!r}: expected one parameter vector, got shape {tuple(theta.shape)}")
        platforms.append(Platform(str(name), "config", theta))
    return platforms
