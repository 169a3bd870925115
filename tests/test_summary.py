"""Specification of the statistics behind every comparison: intervals, gain captured, ranking, precision."""

import math

import pytest

from llm_economist.reporting.report import format_estimate
from llm_economist.reporting.summary import distinguishable, gain_captured, interval, ranking, tied_groups

T_975 = {2: 4.302653, 4: 2.776445, 9: 2.262157}  # Student t quantiles from printed tables


@pytest.mark.parametrize("values", [[1.0, 2.0, 3.0], [10.0, 12.5, 9.0, 14.0, 11.0], list(map(float, range(10)))])
def test_interval_is_the_textbook_t_interval_of_the_mean(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975[n - 1] * sd / math.sqrt(n)
    found = interval(values)
    assert found.mean == pytest.approx(mean)
    assert found.low == pytest.approx(mean - half, rel=1e-5)
    assert found.high == pytest.approx(mean + half, rel=1e-5)


def test_three_seeds_give_an_interval_that_contains_every_seed():
    values = [100.0, 180.0, 95.0]
    found = interval(values)
    assert all(found.low <= v <= found.high for v in values)


def test_below_three_values_there_is_no_interval_and_missing_values_are_left_out():
    assert interval([5.0]).low is None
    assert interval([5.0, 7.0]).low is None  # t with 1 degree of freedom: 12.7 standard errors each side
    assert interval([5.0, None, float("nan")]).n == 1
    assert interval([None]) is None


def test_an_interval_is_cut_to_the_quantitys_bounds_and_keeps_its_mean():
    shares = [0.02, 0.0, 0.07]  # t-interval [-0.06, 0.12]
    whole, cut = interval(shares), interval(shares, (0.0, 1.0))
    assert whole.low < 0 and cut.low == 0.0 and cut.high == pytest.approx(whole.high) and cut.mean == whole.mean


def test_values_without_spread_have_an_exact_interval():
    found = interval([3.0, 3.0, 3.0])
    assert (found.low, found.high) == (3.0, 3.0)


def test_gain_captured_is_the_share_of_the_best_gain_over_no_tax():
    assert gain_captured(150.0, 100.0, 200.0) == pytest.approx(50.0)
    assert gain_captured(200.0, 100.0, 200.0) == pytest.approx(100.0)
    assert gain_captured(90.0, 100.0, 200.0) == pytest.approx(-10.0)
    assert gain_captured(90.0, 100.0, 100.0) is None  # nobody beats no tax


def test_paired_seeds_separate_planners_whose_levels_vary_by_seed():
    # Seeds move both planners together; the paired difference is always +1.
    a, b = [100.0, 200.0, 300.0], [99.0, 198.5, 299.2]
    assert distinguishable(a, b) is True
    assert distinguishable(a, [101.0, 199.0, 300.5]) is False
    assert distinguishable([1.0], [0.0]) is None
    assert distinguishable([1.0, 2.0], [0.0, 1.5]) is None


def test_ranking_shares_a_rank_between_planners_the_seeds_cannot_separate():
    rows = ranking({
        "saez": [110.0, 210.0, 310.0],
        "llm": [100.0, 201.0, 299.0],
        "us_federal": [101.0, 199.0, 301.0],
        "no_tax": [50.0, 150.0, 250.0],
    })
    ranks = {r["planner"]: r["rank"] for r in rows}
    assert ranks == {"saez": 1, "llm": 2, "us_federal": 2, "no_tax": 4}
    llm = next(r for r in rows if r["planner"] == "llm")
    assert llm["not_distinguishable_from"] == ["us_federal"]


def test_tied_groups_are_the_largest_sets_no_two_of_which_the_seeds_separate():
    # a ~ b ~ c and b ~ c ~ d, but a and d are told apart: two overlapping groups, e alone.
    tied = {"a": ["b", "c"], "b": ["a", "c", "d"], "c": ["a", "b", "d"], "d": ["b", "c"], "e": []}
    rows = [{"planner": k, "not_distinguishable_from": v} for k, v in tied.items()]
    assert tied_groups(rows) == [["a", "b", "c"], ["b", "c", "d"]]
    assert tied_groups([{"planner": "a", "not_distinguishable_from": []}]) == []


def test_one_seed_ranks_by_the_means_but_marks_the_ranking_untested():
    rows = ranking({"a": [2.0], "b": [1.0]})
    assert [r["planner"] for r in rows] == ["a", "b"]
    assert not any(r["tested"] for r in rows)


@pytest.mark.parametrize(("estimate", "kwargs", "text"), [
    ({"mean": 18412.3, "ci95": [17200.1, 19624.5]}, {}, "18,400 [17,200, 19,600]"),
    ({"mean": 18412.3, "ci95": None}, {}, "18,400"),
    ({"mean": 0.31234, "ci95": [0.31, 0.3147]}, {}, "0.3123 [0.3100, 0.3147]"),
    ({"mean": 87.3, "ci95": [60.0, 114.6]}, {"suffix": "%"}, "87% [60%, 115%]"),
    ({"mean": -1234.5, "ci95": None}, {"prefix": "$"}, "-$1,230"),
    ({"mean": 0.052, "ci95": [0.041, 0.063]}, {"scale": 100, "suffix": "%"}, "5.2% [4.1%, 6.3%]"),
    ({"mean": 0.02, "ci95": [0.0, 0.12]}, {"scale": 100, "suffix": "%"}, "2.0% [0.0%, 12.0%]"),
    ({"mean": None, "ci95": None}, {}, "—"),
    ({"mean": float("nan"), "ci95": [1.0, 2.0]}, {}, "—"),
])
def test_figures_print_at_the_precision_their_interval_allows(estimate, kwargs, text):
    assert format_estimate(estimate, **kwargs) == text
