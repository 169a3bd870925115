"""Elections among platforms: hand-counted profiles, a brute-force instant-runoff, ties,
validation, and sincere ballots of rational workers checked against utilities computed directly."""

import json
import random

import pytest
import torch

from llm_economist.economy import Preferences, TaxSchedule, best_response_hours, calibrate_psi, settle
from llm_economist.governance import (
    RULES,
    Ballots,
    Platform,
    approval,
    config_platforms,
    default_proposers,
    hold_election,
    instant_runoff,
    plurality,
    rational_ballots,
    worker_platforms,
)
from llm_economist.mechanisms import BracketTax, make_mechanism
from llm_economist.workers import RationalWorkers
from llm_economist.population_model import PopulationModel

D = torch.float64
A, B, C = 0, 1, 2


def profile(groups):
    """Ballots from (count, ranking, approved set) groups."""
    rankings, approvals = [], []
    for count, ranking, approved in groups:
        for _ in range(count):
            rankings.append(list(ranking))
            approvals.append([c in approved for c in range(len(ranking))])
    return Ballots(torch.tensor(rankings), torch.tensor(approvals))


def platforms(count):
    names = ["status quo"] + [f"config {j}" for j in range(1, count)]
    return [Platform(n, "status_quo" if j == 0 else "config", torch.tensor([0.1 * j])) for j, n in enumerate(names)]


# 20 voters, three candidates:
#   8 voters  A > C > B, approve {A, C}
#   7 voters  B > C > A, approve {B, C}
#   5 voters  C > B > A, approve {C}
# Plurality: first choices A 8, B 7, C 5            -> A.
# IRV: round 1 A 8, B 7, C 5, no one has > 10; C is last and goes; its 5 ballots move to B.
#      round 2 A 8, B 12                             -> B.
# Approval: A 8, B 7, C 8 + 7 + 5 = 20               -> C.
CLASSIC = [(8, (A, C, B), {A, C}), (7, (B, C, A), {B, C}), (5, (C, B, A), {C})]


def test_plurality_elects_the_most_first_choices():
    assert plurality(profile(CLASSIC)) == (A, [8.0, 7.0, 5.0])


def test_instant_runoff_transfers_the_eliminated_candidates_ballots():
    winner, rounds, eliminated = instant_runoff(profile(CLASSIC))
    assert winner == B
    assert rounds == [[8.0, 7.0, 5.0], [8.0, 12.0, 0.0]]
    assert eliminated == [C]


def test_approval_elects_the_most_approved():
    assert approval(profile(CLASSIC)) == (C, [8.0, 7.0, 20.0])


def test_the_three_rules_disagree_on_the_classic_profile():
    ballots, cands = profile(CLASSIC), platforms(3)
    winners = {rule: hold_election(rule, cands, ballots).winner for rule in RULES}
    assert winners == {"plurality": A, "instant_runoff": B, "approval": C}


def test_election_result_is_json_ready_with_named_parameters():
    mechanism = make_mechanism("flat")
    result = hold_election("instant_runoff", platforms(3), profile(CLASSIC))
    data = json.loads(json.dumps(result.to_dict(mechanism)))
    assert data["winner"] == B and data["winner_name"] == "config 1"
    assert data["platforms"][1] == {"name": "config 1", "proposer": "config", "parameters": {"rate_0": pytest.approx(0.1)}}
    assert data["tallies"] == [[8.0, 7.0, 5.0], [8.0, 12.0, 0.0]]
    assert data["eliminated"] == [C] and data["eliminated_names"] == ["config 2"]
    assert data["voters"] == 20 and data["rule"] == "instant_runoff"


def test_instant_runoff_elimination_tie_goes_to_the_higher_index():
    # 9 voters (majority > 4.5): A 4, B 3, C 1, D 1. C and D tie on votes and on first-round
    # votes, so D (higher index) goes; its ballot moves to C: A 4, B 3, C 2. C goes; both C
    # ballots rank B next: A 4, B 5 -> B.
    ballots = profile([(4, (0, 1, 2, 3), set()), (3, (1, 0, 2, 3), set()), (1, (2, 1, 3, 0), set()), (1, (3, 2, 1, 0), set())])
    winner, rounds, eliminated = instant_runoff(ballots)
    assert eliminated == [3, 2]
    assert rounds == [[4.0, 3.0, 1.0, 1.0], [4.0, 3.0, 2.0, 0.0], [4.0, 5.0, 0.0, 0.0]]
    assert winner == 1


def test_instant_runoff_elimination_tie_goes_to_fewer_first_round_votes():
    # 11 voters (majority > 5.5): A 5, B 2, C 3, D 1. D goes, its ballot moves to B: A 5, B 3, C 3.
    # B and C tie; B had fewer first-round votes (2 < 3), so B goes although its index is lower.
    # B's three ballots rank C next: A 5, C 6 -> C.
    ballots = profile([(5, (0, 1, 2, 3), set()), (2, (1, 2, 0, 3), set()), (3, (2, 1, 0, 3), set()), (1, (3, 1, 2, 0), set())])
    winner, rounds, eliminated = instant_runoff(ballots)
    assert eliminated == [3, 1]
    assert rounds[-1] == [5.0, 0.0, 6.0, 0.0]
    assert winner == 2


def brute_force_irv(rankings, candidates):
    """Instant-runoff in plain Python, one ballot at a time."""
    remaining = set(range(candidates))
    first = [0] * candidates
    for r in rankings:
        first[r[0]] += 1
    order = []
    while True:
        counts = [0] * candidates
        for r in rankings:
            counts[next(c for c in r if c in remaining)] += 1
        best = max(remaining, key=lambda c: (counts[c], -c))
        if counts[best] * 2 > len(rankings):
            return best, order
        worst = min(remaining, key=lambda c: (counts[c], first[c], -c))
        remaining.remove(worst)
        order.append(worst)


def test_instant_runoff_matches_a_brute_force_count_on_random_profiles():
    rng = random.Random(0)
    for _ in range(300):
        candidates, voters = rng.randint(2, 6), rng.randint(1, 25)
        rankings = [rng.sample(range(candidates), candidates) for _ in range(voters)]
        ballots = Ballots(torch.tensor(rankings), torch.zeros(voters, candidates, dtype=torch.bool))
        winner, rounds, eliminated = instant_runoff(ballots)
        assert (winner, eliminated) == brute_force_irv(rankings, candidates)
        assert all(sum(r) == voters for r in rounds)


def test_plurality_and_approval_match_brute_force_counts_on_random_profiles():
    rng = random.Random(1)
    for _ in range(100):
        candidates, voters = rng.randint(2, 6), rng.randint(1, 25)
        rankings = [rng.sample(range(candidates), candidates) for _ in range(voters)]
        approved = [[rng.random() < 0.4 for _ in range(candidates)] for _ in range(voters)]
        ballots = Ballots(torch.tensor(rankings), torch.tensor(approved))
        firsts = [sum(r[0] == c for r in rankings) for c in range(candidates)]
        approvals = [sum(a[c] for a in approved) for c in range(candidates)]
        assert plurality(ballots) == (firsts.index(max(firsts)), [float(x) for x in firsts])
        assert approval(ballots) == (approvals.index(max(approvals)), [float(x) for x in approvals])


def test_ties_keep_the_lower_index_under_every_rule():
    # Two voters split evenly between the status quo (0) and a challenger (1), approving one each.
    ballots = profile([(1, (1, 0), {1}), (1, (0, 1), {0})])
    for rule in RULES:
        assert hold_election(rule, platforms(2), ballots).winner == 0
    # Three-way tie on first choices and approvals: index 0 wins plurality and approval.
    ballots = profile([(1, (0, 1, 2), {0}), (1, (1, 2, 0), {1}), (1, (2, 0, 1), {2})])
    assert plurality(ballots)[0] == 0 and approval(ballots)[0] == 0


def test_rankings_must_be_permutations():
    with pytest.raises(ValueError, match="voter 1 is not a permutation of 0..2"):
        Ballots(torch.tensor([[0, 1, 2], [0, 0, 2]]), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="not a permutation"):
        Ballots(torch.tensor([[0, 1, 3]]), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="integer platform indices"):
        Ballots(torch.tensor([[0.0, 1.0]]), torch.ones(1, 2, dtype=torch.bool))


def test_ballot_shapes_must_match():
    with pytest.raises(ValueError, match="approvals shape \\(2, 2\\) does not match rankings shape \\(2, 3\\)"):
        Ballots(torch.tensor([[0, 1, 2], [2, 1, 0]]), torch.ones(2, 2, dtype=torch.bool))
    ballots = profile(CLASSIC)
    with pytest.raises(ValueError, match="ballots rank 3 candidates but there are 4 platforms"):
        hold_election("plurality", platforms(4), ballots)


def test_an_election_needs_two_platforms_and_a_voter():
    with pytest.raises(ValueError, match="at least 2 platforms"):
        Ballots(torch.zeros(3, 1, dtype=torch.int64), torch.ones(3, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least 2 platforms"):
        hold_election("plurality", platforms(1), profile(CLASSIC))
    with pytest.raises(ValueError, match="no voters"):
        Ballots(torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0, 3, dtype=torch.bool))


def test_unknown_rule_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown rule 'borda'.*plurality.*instant_runoff.*approval"):
        hold_election("borda", platforms(3), profile(CLASSIC))


def test_platform_proposer_must_be_known():
    with pytest.raises(ValueError, match="proposer must be one of"):
        Platform("x", "lobbyist", torch.tensor([0.1]))


# --- sincere ballots of rational workers -------------------------------------------------------

ZERO, MODERATE, HIGH = [0.0, 0.0, 0.0], [0.1, 0.25, 0.35], [0.7, 0.7, 0.7]


@pytest.fixture
def population_model(wages):
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences(eta=0.0, elasticity=0.5))
    return PopulationModel(wages, prefs, RationalWorkers(prefs))


@pytest.fixture
def mechanism():
    return make_mechanism("three_bracket")  # full rebate of revenue


@pytest.fixture
def tax_platforms():
    return [
        Platform("zero tax", "status_quo", torch.tensor(ZERO, dtype=D)),
        Platform("moderate", "planner", torch.tensor(MODERATE, dtype=D)),
        Platform("high", "config", torch.tensor(HIGH, dtype=D)),
    ]


def direct_utilities(population_model, mechanism, tax_platforms):
    """(3, N) utilities: quasi-linear hours ignore the transfer, so best response then settle."""
    rows = []
    for p in tax_platforms:
        policy = mechanism.compile(p.theta)
        hours = best_response_hours(population_model.wage, policy.schedule, 0.0, population_model.prefs)
        rows.append(settle(population_model.wage, hours, policy, population_model.prefs).utility)
    return torch.stack(rows)


def test_low_wage_voters_rank_redistribution_first_and_high_wage_voters_zero_tax(population_model, mechanism, tax_platforms):
    ballots = rational_ballots(population_model, mechanism, tax_platforms)
    order = population_model.wage.argsort()
    poorest, richest = order[:100], order[-100:]
    assert (ballots.rankings[poorest, 0] == 2).all()
    assert (ballots.rankings[richest, 0] == 0).all()
    assert (ballots.rankings[richest, 2] == 2).all()  # the high-tax platform is their last choice


def test_rational_rankings_follow_directly_computed_utilities(population_model, mechanism, tax_platforms):
    ballots = rational_ballots(population_model, mechanism, tax_platforms)
    direct = direct_utilities(population_model, mechanism, tax_platforms)
    order = population_model.wage.argsort()
    for agent in order[[0, 500, 1000, 1500, 1999]].tolist():
        u = direct[:, agent].tolist()
        expected = sorted(range(3), key=lambda c: -u[c])
        assert ballots.rankings[agent].tolist() == expected


def test_rational_approval_is_relative_to_the_status_quo(population_model, mechanism, tax_platforms):
    direct = direct_utilities(population_model, mechanism, tax_platforms)
    ballots = rational_ballots(population_model, mechanism, tax_platforms, status_quo=1, approve="status_quo")
    assert ballots.approvals[:, 1].all()  # the status quo is always approved
    order = population_model.wage.argsort()
    for agent in order[[0, 700, 1999]].tolist():
        u = direct[:, agent]
        assert ballots.approvals[agent].tolist() == (u >= u[1] - 1e-9 * u[1].abs()).tolist()
    poorest, richest = order[0], order[-1]
    assert ballots.approvals[poorest].tolist() == [False, True, True]
    assert ballots.approvals[richest].tolist() == [True, True, False]


def test_status_quo_approval_ballots_never_unseat_the_status_quo(population_model, mechanism, tax_platforms):
    # Everyone approves the status quo, so a challenger can at best tie it, and ties keep it.
    for shift in range(3):
        reordered = tax_platforms[shift:] + tax_platforms[:shift]
        ballots = rational_ballots(population_model, mechanism, reordered, status_quo=0, approve="status_quo")
        assert hold_election("approval", reordered, ballots).winner == 0


def test_mean_approval_approves_platforms_at_least_as_good_as_the_voters_average(population_model, mechanism, tax_platforms):
    direct = direct_utilities(population_model, mechanism, tax_platforms)
    ballots = rational_ballots(population_model, mechanism, tax_platforms, approve="mean")
    order = population_model.wage.argsort()
    for agent in order[[0, 700, 1999]].tolist():
        u = direct[:, agent]
        assert ballots.approvals[agent].tolist() == (u >= u.mean()).tolist()
    assert ballots.approvals.gather(1, ballots.rankings[:, :1]).all()  # the favourite, always
    assert not ballots.approvals.gather(1, ballots.rankings[:, -1:]).any()  # the least-liked, never here
    with pytest.raises(ValueError, match=r"approve must be one of \['status_quo', 'mean'\]"):
        rational_ballots(population_model, mechanism, tax_platforms, approve="median")


class OneAtATime(BracketTax):
    batched = False


def test_unbatched_mechanisms_vote_the_same_as_batched_ones(wages, tax_platforms):
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences(eta=1.0, elasticity=0.5))
    population_model = PopulationModel(wages, prefs, RationalWorkers(prefs))
    batched = rational_ballots(population_model, make_mechanism("three_bracket"), tax_platforms)
    single = rational_ballots(population_model, OneAtATime([0.0, 50_000.0, 150_000.0], [0.1, 0.2, 0.3]), tax_platforms)
    assert torch.equal(batched.rankings, single.rankings)
    assert torch.equal(batched.approvals, single.approvals)


def test_rational_ballots_reject_platforms_outside_the_bounds(population_model, mechanism, tax_platforms):
    bad = tax_platforms + [Platform("confiscatory", "config", torch.tensor([0.5, 1.2, 0.5], dtype=D))]
    with pytest.raises(ValueError, match="platform 'confiscatory'.*rate_1 must lie in"):
        rational_ballots(population_model, mechanism, bad)


# --- proposals ----------------------------------------------------------------------------------


def test_a_low_wage_worker_proposes_higher_rates_than_a_high_wage_worker(population_model, mechanism):
    low, high = int(population_model.wage.argmin()), int(population_model.wage.argmax())
    poor, rich = worker_platforms(population_model, mechanism, [low, high], budget=64, seed=0)
    assert (poor.name, poor.proposer) == (f"worker {low}", "worker")
    assert poor.theta.mean() > rich.theta.mean() + 0.2


def test_worker_proposals_are_their_own_best_candidate(population_model, mechanism):
    agent = int(population_model.wage.argsort()[1000])
    proposal = worker_platforms(population_model, mechanism, [agent], budget=16, seed=3)[0]
    low, high = mechanism.bounds()
    g = torch.Generator().manual_seed(3)
    candidates = torch.cat([mechanism.initial().unsqueeze(0), low + (high - low) * torch.rand(15, 3, generator=g, dtype=D)])
    own = torch.stack([population_model.respond(mechanism.compile(t)).utility[agent] for t in candidates])
    assert torch.equal(proposal.theta, candidates[own.argmax()])


def test_worker_proposals_are_reproducible_under_a_seed(population_model, mechanism):
    agents = default_proposers(population_model.wage, 3)
    first = worker_platforms(population_model, mechanism, agents, budget=32, seed=7)
    again = worker_platforms(population_model, mechanism, agents, budget=32, seed=7)
    other = worker_platforms(population_model, mechanism, agents, budget=32, seed=8)
    assert all(torch.equal(a.theta, b.theta) for a, b in zip(first, again))
    assert any(not torch.equal(a.theta, b.theta) for a, b in zip(first, other))


def test_a_budget_of_one_proposes_the_initial_parameters(population_model, mechanism):
    (proposal,) = worker_platforms(population_model, mechanism, [0], budget=1)
    assert torch.equal(proposal.theta, mechanism.initial())


def test_worker_proposals_reject_unknown_agents(population_model, mechanism):
    with pytest.raises(ValueError, match="agent indices must lie in \\[0, 1999\\], got \\[2000\\]"):
        worker_platforms(population_model, mechanism, [3, 2000])


def test_default_proposers_sit_at_evenly_spaced_income_quantiles():
    g = torch.Generator().manual_seed(0)
    income = torch.randperm(600, generator=g).to(D) * 1000.0  # incomes 0, 1000, ..., 599000 in random order
    agents = default_proposers(income, 3)
    assert [income[a].item() for a in agents] == [100_000.0, 300_000.0, 500_000.0]  # 1/6, 1/2, 5/6 of 600
    assert len(set(default_proposers(income, 600))) == 600
    with pytest.raises(ValueError, match="count must lie in \\[1, 600\\]"):
        default_proposers(income, 0)


def test_config_platforms_take_lists_or_named_parameters(mechanism):
    made = config_platforms(mechanism, {"flat 20": [0.2, 0.2, 0.2], "progressive": {"rate_0": 0.1, "rate_1": 0.3, "rate_2": 0.5}})
    assert [p.name for p in made] == ["flat 20", "progressive"]
    assert made[1].theta.tolist() == [0.1, 0.3, 0.5] and made[1].proposer == "config"
    with pytest.raises(ValueError, match="platform 'bad': parameters must be exactly.*missing \\['rate_2'\\]"):
        config_platforms(mechanism, {"bad": {"rate_0": 0.1, "rate_1": 0.3}})
