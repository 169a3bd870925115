"""Specification of the typed social graph: structure, homophily, aggregation, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llm_economist.personas.graph import (
    AGE_BAND_YEARS,
    COWORKER,
    EDGE_TYPES,
    FRIEND,
    HOUSEHOLD,
    WEAK_TIE,
    SocialGraph,
    build_social_graph,
)

N = 3000


def synthetic_agents(n: int = N, seed: int = 0, max_household_size: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_household_size + 1, n)
    return {
        "household_id": np.repeat(np.arange(n), sizes)[:n],
        "occupation": rng.integers(0, 40, n),
        "state": rng.integers(0, 8, n),
        "age": rng.integers(18, 81, n),
        "education": rng.integers(0, 6, n),
    }


@pytest.fixture(scope="module")
def agents() -> dict[str, np.ndarray]:
    return synthetic_agents()


@pytest.fixture(scope="module")
def graph(agents) -> SocialGraph:
    return build_social_graph(**agents, seed=7)


def edge_sets(graph: SocialGraph) -> dict[int, set[tuple[int, int]]]:
    src, dst, typ = graph.edges()
    sets: dict[int, set[tuple[int, int]]] = {t: set() for t in range(len(EDGE_TYPES))}
    for s, d, t in zip(src.tolist(), dst.tolist(), typ.tolist()):
        sets[t].add((s, d))
    return sets


def test_width_is_sum_of_type_budgets(agents):
    g = build_social_graph(**agents, seed=0, coworkers=3, friends=5, weak_ties=1, max_household=3)
    assert g.neighbours.shape == (N, 2 + 3 + 5 + 1)
    assert g.neighbours.dtype == torch.int64 and g.edge_type.dtype == torch.int8
    assert g.n == N


def test_odd_budgets_stay_symmetric_and_within_budget(agents):
    g = build_social_graph(**agents, seed=4, coworkers=3, friends=5, weak_ties=1, max_household=2)
    for t, pairs in edge_sets(g).items():
        assert all((d, s) in pairs for s, d in pairs), EDGE_TYPES[t]
    for t, budget in {HOUSEHOLD: 1, COWORKER: 3, FRIEND: 5, WEAK_TIE: 1}.items():
        assert g.mask([t]).sum(1).max() <= budget
    # A ring of 9 with five friends each: +-1, +-2 and a partner half the ring away for 8 of them.
    n = 9
    one = np.zeros(n, dtype=np.int64)
    ring = build_social_graph(np.arange(n), np.arange(n), one, np.full(n, 30), one, seed=0,
                              coworkers=0, friends=5, weak_ties=0)
    assert sorted(ring.degree.tolist()) == [4] + [5] * 8


def test_edges_are_symmetric_within_each_type(graph):
    for t, pairs in edge_sets(graph).items():
        assert pairs, f"no {EDGE_TYPES[t]} edges"
        assert all((d, s) in pairs for s, d in pairs), EDGE_TYPES[t]


def test_no_self_loops(graph):
    src, dst, _ = graph.edges()
    assert not (src == dst).any()


def test_no_pair_appears_twice_across_types(graph):
    src, dst, _ = graph.edges()
    pairs = src * graph.n + dst
    assert pairs.unique().numel() == pairs.numel()


def test_duplicate_pair_keeps_strongest_type():
    # Everyone shares one household, occupation and state: every coworker, friend and weak-tie
    # candidate is also a household member, so only household edges survive.
    n = 4
    same = np.zeros(n, dtype=np.int64)
    g = build_social_graph(same, same, same, np.full(n, 30), same, seed=0)
    _, _, typ = g.edges()
    assert typ.numel() == n * (n - 1)
    assert (typ == HOUSEHOLD).all()


def test_padding_matches_mask(graph):
    m = graph.mask()
    assert ((graph.neighbours >= 0) == m).all()
    assert ((graph.edge_type >= 0) == m).all()
    assert (graph.neighbours[~m] == -1).all() and (graph.edge_type[~m] == -1).all()
    assert (graph.neighbours[m] < graph.n).all()
    assert (graph.edge_type[m] < len(EDGE_TYPES)).all()
    # Real neighbours come first in each row, then padding.
    assert (m[:, 1:] <= m[:, :-1]).all()
    assert torch.equal(graph.degree, m.sum(1))


def test_rows_are_ordered_by_tie_strength(graph):
    t = graph.edge_type.long().masked_fill(~graph.mask(), len(EDGE_TYPES))
    assert (t[:, 1:] >= t[:, :-1]).all()


def test_household_members_are_all_linked(graph, agents):
    hh = agents["household_id"]
    links = edge_sets(graph)[HOUSEHOLD]
    expected = set()
    for h in np.unique(hh):
        members = np.flatnonzero(hh == h).tolist()
        expected |= {(i, j) for i in members for j in members if i != j}
    assert links == expected


def test_large_household_is_capped_and_symmetric():
    n = 10
    hh = np.zeros(n, dtype=np.int64)
    other = np.arange(n)  # distinct occupations, states and so on: household edges only
    g = build_social_graph(hh, other, other, np.full(n, 40), other, seed=3,
                           coworkers=0, friends=0, weak_ties=0, max_household=4)
    deg = g.degree
    assert deg.max() <= 3
    assert deg.sum() == 2 * (6 + 6 + 1)  # cliques of 4, 4 and 2 members, each tie counted both ways
    assert sorted(deg.tolist()) == [1, 1] + [3] * 8
    pairs = edge_sets(g)[HOUSEHOLD]
    assert all((d, s) in pairs for s, d in pairs)


def test_coworkers_share_occupation_and_state(graph, agents):
    src, dst, typ = graph.edges()
    s, d = src[typ == COWORKER].numpy(), dst[typ == COWORKER].numpy()
    assert (agents["occupation"][s] == agents["occupation"][d]).all()
    assert (agents["state"][s] == agents["state"][d]).all()


def test_coworker_degree_is_ring_degree_or_whole_small_group():
    rng = np.random.default_rng(1)
    n = 2000
    occupation, state = rng.integers(0, 60, n), rng.integers(0, 10, n)
    g = build_social_graph(np.arange(n), occupation, state, rng.integers(18, 81, n),
                           rng.integers(0, 6, n), seed=0, coworkers=4, friends=0, weak_ties=0)
    _, group, group_size = np.unique(occupation * 10 + state, return_inverse=True, return_counts=True)
    expected = np.minimum(4, group_size[group] - 1)
    assert (expected < 4).any() and (expected == 4).any()  # both small and ring-sized groups
    assert np.array_equal(g.mask(["coworker"]).sum(1).numpy(), expected)


def test_friends_share_state(graph, agents):
    src, dst, typ = graph.edges()
    s, d = src[typ == FRIEND].numpy(), dst[typ == FRIEND].numpy()
    assert (agents["state"][s] == agents["state"][d]).all()


def test_friends_share_age_band_far_above_chance(graph, agents):
    band = agents["age"] // AGE_BAND_YEARS
    src, dst, typ = graph.edges()
    s, d = src[typ == FRIEND].numpy(), dst[typ == FRIEND].numpy()
    same_band = (band[s] == band[d]).mean()
    chance = sum((np.mean(band == b)) ** 2 for b in np.unique(band))
    assert chance < 0.25
    assert same_band > 0.8


def test_weak_ties_mostly_cross_states(graph, agents):
    src, dst, typ = graph.edges()
    s, d = src[typ == WEAK_TIE].numpy(), dst[typ == WEAK_TIE].numpy()
    assert (agents["state"][s] != agents["state"][d]).mean() > 0.7  # 8 states: about 7/8 by chance


def test_degree_budgets_per_type_hold(graph):
    budgets = {HOUSEHOLD: 3, COWORKER: 4, FRIEND: 4, WEAK_TIE: 2}
    for t, budget in budgets.items():
        assert graph.mask([t]).sum(1).max() <= budget


def test_neighbour_mean_matches_brute_force_loop():
    agents = synthetic_agents(n=60, seed=2)
    g = build_social_graph(**agents, seed=5)
    values = torch.randn(60, 3, dtype=torch.float64)
    src, dst, typ = g.edges()
    for types in (None, ["friend"], [HOUSEHOLD, "weak_tie"]):
        allowed = set(range(4)) if types is None else {EDGE_TYPES.index(t) if isinstance(t, str) else t for t in types}
        expected = torch.zeros(60, 3, dtype=torch.float64)
        for i in range(60):
            picked = [d for s, d, t in zip(src.tolist(), dst.tolist(), typ.tolist()) if s == i and t in allowed]
            if picked:
                expected[i] = values[picked].mean(0)
        got = g.neighbour_mean(values, edge_types=types)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(g.neighbour_mean(values[:, 0], edge_types=types), expected[:, 0])


def test_neighbour_mean_is_zero_without_neighbours_and_differentiable():
    # Agent 2 has no neighbours; agents 0 and 1 are a household.
    g = SocialGraph(torch.tensor([[1, -1], [0, -1], [-1, -1]]), torch.tensor([[0, -1], [0, -1], [-1, -1]], dtype=torch.int8))
    values = torch.tensor([1.0, 3.0, 100.0], requires_grad=True)
    out = g.neighbour_mean(values)
    assert out.tolist() == [3.0, 1.0, 0.0]
    out.sum().backward()
    assert values.grad.tolist() == [1.0, 1.0, 0.0]


def test_neighbour_mean_rejects_wrong_length(graph):
    with pytest.raises(ValueError, match="values"):
        graph.neighbour_mean(torch.zeros(graph.n + 1))


def test_unknown_edge_type_is_rejected(graph):
    with pytest.raises(ValueError, match="edge_types"):
        graph.mask(["cousin"])


def test_same_seed_gives_same_graph(agents):
    a = build_social_graph(**agents, seed=11)
    b = build_social_graph(**agents, seed=11)
    assert torch.equal(a.neighbours, b.neighbours) and torch.equal(a.edge_type, b.edge_type)


def test_different_seeds_give_different_graphs(agents):
    a = build_social_graph(**agents, seed=11)
    b = build_social_graph(**agents, seed=12)
    assert not torch.equal(a.neighbours, b.neighbours)


def test_single_agent_has_no_neighbours():
    one = np.zeros(1, dtype=np.int64)
    g = build_social_graph(one, one, one, np.array([30]), one, seed=0)
    assert g.degree.tolist() == [0]


def test_save_and_load_round_trip(graph, tmp_path):
    path = tmp_path / "graph.pt"
    graph.save(path)
    loaded = SocialGraph.load(path)
    assert torch.equal(loaded.neighbours, graph.neighbours)
    assert torch.equal(loaded.edge_type, graph.edge_type)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"occupation": np.zeros(N - 1, dtype=np.int64)}, "occupation"),
        ({"state": np.zeros((N, 2), dtype=np.int64)}, "state"),
        ({"education": np.full(N, 0.5)}, "education"),
        ({"age": np.full(N, -1)}, "age"),
        ({"coworkers": -1}, "coworkers"),
        ({"friends": 2.5}, "friends"),
        ({"weak_ties": -3}, "weak_ties"),
        ({"max_household": 0}, "max_household"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_names_the_argument(agents, change, field):
    kwargs = {**agents, "seed": 0, **change}
    with pytest.raises(ValueError, match=field):
        build_social_graph(**kwargs)


def test_empty_population_is_rejected():
    empty = np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError, match="household_id"):
        build_social_graph(empty, empty, empty, empty, empty, seed=0)
