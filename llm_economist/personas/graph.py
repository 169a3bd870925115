"""Typed social graph over agents, stored as a padded neighbour list.

Each agent has up to ``K`` neighbours of four tie types (``EDGE_TYPES``): household, coworker,
friend and weak tie. The graph is built by sorting, never by comparing all pairs, so it costs
O(N log N) time and O(N K) memory; the surrogate population uses it as a sparse attention mask.

Construction (``build_social_graph``), all seeded:

- household: every other member with the same ``household_id``. A household larger than
  ``max_household`` is split, after a shuffle, into cliques of ``max_household`` members.
- coworker: agents with the same (occupation, state), shuffled into a ring; each agent links to
  the ``coworkers // 2`` members on either side (plus one partner half the ring away when
  ``coworkers`` is odd). A group no larger than ``coworkers + 1`` becomes a clique.
- friend: within a state, agents sorted by (age band, education) with a random tiebreak form a
  ring linked the same way, so friends are of similar age and schooling (homophily).
- weak tie: the same ring over a random permutation of everybody, which crosses states.

Ties are symmetric within each type, there are no self-loops, and a pair linked by several types
keeps only the strongest (household > coworker > friend > weak tie). Each row lists its
neighbours by tie strength, then by index, and is padded with -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

EDGE_TYPES = ("household", "coworker", "friend", "weak_tie")
HOUSEHOLD, COWORKER, FRIEND, WEAK_TIE = range(len(EDGE_TYPES))

# Friends are drawn from people of similar age; a ten-year band (18-19, 20-29, ...) is the
# resolution at which the homophily is imposed.
AGE_BAND_YEARS = 10

__all__ = [
    "population_graph",
    "EDGE_TYPES",
    "HOUSEHOLD",
    "COWORKER",
    "FRIEND",
    "WEAK_TIE",
    "AGE_BAND_YEARS",
    "SocialGraph",
    "build_social_graph",
]


def _edge_type_ids(edge_types: Iterable[str | int]) -> list[int]:
    """Map edge-type names or ids to ids, rejecting unknown ones."""
    if isinstance(edge_types, (str, int, np.integer)):
        edge_types = [edge_types]
    ids = []
    for t in edge_types:
        if isinstance(t, str):
            if t not in EDGE_TYPES:
                raise ValueError(f"edge_types: unknown edge type {t!r}; allowed: {EDGE_TYPES}")
            ids.append(EDGE_TYPES.index(t))
        elif isinstance(t, (int, np.integer)) and not isinstance(t, bool) and 0 <= t < len(EDGE_TYPES):
            ids.append(int(t))
        else:
            raise ValueError(
                f"edge_types: {t!r} is not an edge type; allowed: {EDGE_TYPES} "
                f"or ids 0..{len(EDGE_TYPES) - 1}"
            )
    return ids


@dataclass(frozen=True)
class SocialGraph:
    """Padded neighbour list of a typed, symmetric social graph over ``n`` agents."""

    neighbours: torch.Tensor  # (N, K) int64 agent indices, -1 where padded
    edge_type: torch.Tensor  # (N, K) int8 in 0..3 (index into EDGE_TYPES), -1 where padded

    def __post_init__(self) -> None:
        if self.neighbours.ndim != 2:
            raise ValueError(f"neighbours: expected shape (N, K), got {tuple(self.neighbours.shape)}")
        if self.edge_type.shape != self.neighbours.shape:
            raise ValueError(
                f"edge_type: shape {tuple(self.edge_type.shape)} must equal neighbours shape "
                f"{tuple(self.neighbours.shape)}"
            )
        if self.neighbours.dtype != torch.int64:
            raise ValueError(f"neighbours: expected dtype int64, got {self.neighbours.dtype}")
        if self.edge_type.dtype != torch.int8:
            raise ValueError(f"edge_type: expected dtype int8, got {self.edge_type.dtype}")

    @property
    def n(self) -> int:
        """Number of agents."""
        return self.neighbours.shape[0]

    @property
    def width(self) -> int:
        """Padded row width K."""
        return self.neighbours.shape[1]

    @property
    def degree(self) -> torch.Tensor:
        """(N,) number of real neighbours of each agent."""
        return self.mask().sum(dim=1)

    def mask(self, edge_types: Iterable[str | int] | None = None) -> torch.Tensor:
        """(N, K) bool, True where a real neighbour (of one of ``edge_types``, if given)."""
        m = self.neighbours >= 0
        if edge_types is not None:
            ids = torch.tensor(_edge_type_ids(edge_types), dtype=torch.int8, device=self.edge_type.device)
            m = m & torch.isin(self.edge_type, ids)
        return m

    def edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat (src, dst, type) int64 lists of the real directed edges; each tie appears both ways."""
        m = self.mask()
        src = torch.arange(self.n, device=self.neighbours.device).unsqueeze(1).expand_as(m)[m]
        return src, self.neighbours[m], self.edge_type[m].long()

    def neighbour_mean(
        self, values: torch.Tensor, edge_types: Iterable[str | int] | None = None
    ) -> torch.Tensor:
        """Mean of ``values`` over each agent's neighbours (optionally of ``edge_types`` only).

        mean_i = sum_k w_ik values[nbr_ik] / max(1, sum_k w_ik), w_ik = 1 for a real neighbour of
        an allowed type. ``values`` is (N,) or (N, D); agents without such neighbours get 0.
        Differentiable in ``values``.
        """
        if values.ndim not in (1, 2) or values.shape[0] != self.n:
            raise ValueError(f"values: expected shape ({self.n},) or ({self.n}, D), got {tuple(values.shape)}")
        if not values.is_floating_point():
            values = values.to(torch.get_default_dtype())
        if self.width == 0:
            return torch.zeros_like(values)
        w = self.mask(edge_types).to(device=values.device, dtype=values.dtype)  # (N, K)
        count = w.sum(dim=1).clamp(min=1.0)  # (N,)
        table = values.unsqueeze(1) if values.ndim == 1 else values  # (N, D)
        idx = self.neighbours.to(values.device).clamp(min=0)  # (N, K); padding reads agent 0, weight 0
        # A weighted bag sum never materialises the (N, K, D) gather.
        total = F.embedding_bag(idx, table, per_sample_weights=w, mode="sum")  # (N, D)
        mean = total / count.unsqueeze(1)
        return mean.squeeze(1) if values.ndim == 1 else mean

    def to(self, device: torch.device | str) -> "SocialGraph":
        """The same graph with both tensors on ``device``."""
        return SocialGraph(self.neighbours.to(device), self.edge_type.to(device))

    def save(self, path: str | PathLike) -> None:
        """Write the graph to ``path`` (torch.save of the two tensors)."""
        torch.save(
            {"neighbours": self.neighbours.cpu(), "edge_type": self.edge_type.cpu(), "edge_types": list(EDGE_TYPES)},
            path,
        )

    @classmethod
    def load(cls, path: str | PathLike) -> "SocialGraph":
        """Read a graph written by ``save``."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "neighbours" not in state or "edge_type" not in state:
            raise ValueError(f"path: {path} does not hold a saved SocialGraph")
        if tuple(state.get("edge_types", EDGE_TYPES)) != EDGE_TYPES:
            raise ValueError(f"path: {path} uses edge types {state['edge_types']}, expected {EDGE_TYPES}")
        return cls(state["neighbours"], state["edge_type"])


# ---------------------------------------------------------------------------------------------
# Construction

_TYPE_BITS = 2  # edge type ids 0..3
_MAX_AGENTS = 1 << 30  # two agent indices and a type must fit in one non-negative int64 key


def _as_int_array(name: str, values: np.ndarray, n: int | None) -> np.ndarray:
    """Validate a 1-D integer-valued input array and return it as int64."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: length {arr.shape[0]} differs from household_id length {n}")
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.floor(arr)).all():
        return arr.astype(np.int64)
    raise ValueError(f"{name}: expected integer values, got dtype {arr.dtype}")


def _as_count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _group_layout(sorted_keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, rank, size) per position of a sorted order whose groups are runs of equal keys."""
    n = sorted_keys[0].shape[0]
    new_group = np.zeros(n, dtype=bool)
    new_group[0] = True
    for k in sorted_keys:
        new_group[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.append(starts, n))
    group = np.cumsum(new_group) - 1
    start = starts[group]
    return start, np.arange(n) - start, sizes[group]


def _ring_edges(
    order: np.ndarray, start: np.ndarray, rank: np.ndarray, size: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges (both ways) of a cyclic ring within each group of a sorted order.

    Position p of a group links to the members ``1..width // 2`` places ahead (and so, through the
    reverse edges, behind); for odd ``width`` a group larger than ``width`` also pairs members half
    a ring apart. Every agent ends with at most ``width`` distinct neighbours; repeated pairs in
    small groups are left for the caller's deduplication.
    """
    srcs, dsts = [], []
    pos = np.arange(order.shape[0])
    for d in range(1, width // 2 + 1):
        keep = size > d  # offsets of at least the group size wrap onto smaller offsets or self
        p = pos[keep]
        srcs.append(order[p])
        dsts.append(order[start[keep] + (rank[keep] + d) % size[keep]])
    if width % 2 == 1:
        # Pair rank r with r + size // 2 for r < size // 2: half a ring away, so never a repeat of
        # the offsets above when the group is larger than width; one member of an odd group is
        # left unpaired.
        keep = (size > width) & (rank < size // 2)
        p = pos[keep]
        srcs.append(order[p])
        dsts.append(order[p + size[keep] // 2])
    if not srcs:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    src, dst = np.concatenate(srcs), np.concatenate(dsts)
    return np.concatenate([src, dst]), np.concatenate([dst, src])


def _household_edges(
    household_id: np.ndarray, rng: np.random.Generator, max_household: int
) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges (both ways) joining household members into cliques of <= max_household."""
    n = household_id.shape[0]
    order = np.lexsort((rng.permutation(n), household_id))
    start, rank, size = _group_layout([household_id[order]])
    pos = np.arange(n)
    chunk_end = np.minimum(start + (rank // max_household + 1) * max_household, start + size)
    srcs, dsts = [], []
    for d in range(1, max_household):
        p = pos[pos + d < chunk_end]
        srcs.append(order[p])
        dsts.append(order[p + d])
    if not srcs:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    src, dst = np.concatenate(srcs), np.concatenate(dsts)
    return np.concatenate([src, dst]), np.concatenate([dst, src])


def _pack(
    n: int, width: int, src: np.ndarray, dst: np.ndarray, typ: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Deduplicate pairs (keeping the strongest type) and pack them into padded (n, width) rows."""
    # One int64 key per edge, (src, dst, type) bit-packed and sorted: pairs run together, the
    # strongest (lowest) type first. Shifts and masks keep unpacking cheap at 1e7 edges.
    bits = max(1, (n - 1).bit_length())
    pair = (src << bits) | dst
    key = (pair << _TYPE_BITS) | typ
    del pair
    key.sort()
    pair = key >> _TYPE_BITS
    first = np.ones(key.shape[0], dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    key = key[first]
    typ = key & ((1 << _TYPE_BITS) - 1)
    src = key >> (_TYPE_BITS + bits)
    dst = (key >> _TYPE_BITS) & ((1 << bits) - 1)
    del key, pair, first

    # Rows list neighbours by tie strength, then index. The pairs are already sorted by source,
    # so a stable sort on (source, type) only reorders within rows and is close to linear.
    row_order = np.argsort((src << _TYPE_BITS) | typ, kind="stable")
    src, dst, typ = src[row_order], dst[row_order], typ[row_order]

    counts = np.bincount(src, minlength=n)
    row_start = np.cumsum(counts) - counts
    slot = np.arange(src.shape[0]) - row_start[src]
    assert slot.shape[0] == 0 or slot.max() < width, "a type exceeded its degree budget"
    neighbours = np.full((n, width), -1, dtype=np.int64)
    edge_type = np.full((n, width), -1, dtype=np.int8)
    neighbours[src, slot] = dst
    edge_type[src, slot] = typ
    return neighbours, edge_type


def build_social_graph(
    household_id: np.ndarray,
    occupation: np.ndarray,
    state: np.ndarray,
    age: np.ndarray,
    education: np.ndarray,
    seed: int,
    coworkers: int = 4,
    friends: int = 4,
    weak_ties: int = 2,
    max_household: int = 4,
) -> SocialGraph:
    """Build the typed social graph of a population given as plain per-agent arrays.

    ``household_id``, ``occupation``, ``state`` and ``education`` are integer codes, ``age`` is in
    years; all have length N >= 1. ``coworkers``, ``friends`` and ``weak_ties`` are the ring
    degrees of each type (fewer in small groups or after deduplication), ``max_household`` the
    largest household clique. Rows have width K = max_household - 1 + coworkers + friends +
    weak_ties. Same inputs and ``seed`` give the same graph.
    """
    household_id = _as_int_array("household_id", household_id, None)
    n = household_id.shape[0]
    if n < 1:
        raise ValueError("household_id: need at least one agent (N >= 1), got an empty array")
    occupation = _as_int_array("occupation", occupation, n)
    state = _as_int_array("state", state, n)
    age = _as_int_array("age", age, n)
    education = _as_int_array("education", education, n)
    if (age < 0).any():
        raise ValueError(f"age: expected ages >= 0, got minimum {age.min()}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    coworkers = _as_count("coworkers", coworkers, 0)
    friends = _as_count("friends", friends, 0)
    weak_ties = _as_count("weak_ties", weak_ties, 0)
    max_household = _as_count("max_household", max_household, 1)
    if n > _MAX_AGENTS:
        raise ValueError(f"household_id: at most {_MAX_AGENTS} agents are supported, got {n}")
    width = max_household - 1 + coworkers + friends + weak_ties

    # Independent streams per tie type, so changing one degree leaves the other types unchanged.
    rng_household, rng_coworker, rng_friend, rng_weak = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(len(EDGE_TYPES))
    )
    parts = []

    src, dst = _household_edges(household_id, rng_household, max_household)
    parts.append((src, dst, HOUSEHOLD))

    if coworkers > 0:
        order = np.lexsort((rng_coworker.permutation(n), state, occupation))
        layout = _group_layout([occupation[order], state[order]])
        parts.append((*_ring_edges(order, *layout, coworkers), COWORKER))

    if friends > 0:
        band = age // AGE_BAND_YEARS
        order = np.lexsort((rng_friend.permutation(n), education, band, state))
        layout = _group_layout([state[order]])
        parts.append((*_ring_edges(order, *layout, friends), FRIEND))

    if weak_ties > 0:
        order = rng_weak.permutation(n)
        start = np.zeros(n, dtype=np.int64)
        size = np.full(n, n, dtype=np.int64)
        parts.append((*_ring_edges(order, start, np.arange(n), size, weak_ties), WEAK_TIE))

    src = np.concatenate([p[0] for p in parts])
    dst = np.concatenate([p[1] for p in parts])
    typ = np.concatenate([np.full(p[0].shape[0], p[2], dtype=np.int64) for p in parts])
    del parts
    neighbours, edge_type = _pack(n, width, src, dst, typ)
    return SocialGraph(torch.from_numpy(neighbours), torch.from_numpy(edge_type))


def population_graph(population, seed: int, **counts) -> SocialGraph:
    """The social graph of a sampled Population (categorical fields passed as integer codes)."""
    table = population.table
    codes = lambda column: table[column].astype("category").cat.codes.to_numpy(np.int64)  # noqa: E731
    return build_social_graph(
        household_id=table["household_id"].to_numpy(np.int64),
        occupation=codes("occupation_code"),
        state=codes("state"),
        age=table["age"].to_numpy(np.int64),
        education=codes("education"),
        seed=seed,
        **counts,
    )
