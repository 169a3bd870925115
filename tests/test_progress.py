"""The comparison's progress bar: its ETA sums the measured cost of like planner-years only."""

from __future__ import annotations

import pytest

from llm_economist.progress import YearProgress


def test_the_eta_waits_for_like_years_and_then_sums_them():
    bar = YearProgress("test", enabled=False)
    for _ in range(2):  # two seeds
        bar.plan("search", 3)
        bar.plan("fixed", 3)
    assert bar.bar.total == 12 and bar.eta_s() is None
    bar.done("search", 0, 10.0)  # model-based: the whole budget in the first year
    bar.done("search", 1, 1.0)
    assert bar.eta_s() is None  # fixed has played nothing yet
    bar.done("search", 2, 3.0)
    for year in range(3):
        bar.done("fixed", year, 0.5)
    # Left: the second seed, each year priced by the same planner's same year in the first.
    assert bar.eta_s() == pytest.approx(10.0 + 1.0 + 3.0 + 3 * 0.5)
    bar.done("search", 0, 20.0)
    assert bar.eta_s() == pytest.approx(1.0 + 3.0 + 3 * 0.5)
    bar.close()


def test_a_planners_later_years_price_each_other_and_resumed_years_are_not_left():
    bar = YearProgress("test", enabled=False)
    bar.plan("llm", 4)
    bar.skip("llm", 1)  # finished before a resume
    assert sum(bar.pending.values()) == 3 and bar.eta_s() is None
    bar.done("llm", 1, 6.0)
    assert bar.eta_s() == pytest.approx(2 * 6.0)  # years 2 and 3 cost as year 1 did
    bar.close()
