"""Specification of the run figures: nothing hidden. Negative rates and incomes from $0 shown,
every planner visible when lines coincide and the coincidence named, units on the axes, the
spread over seeds labelled, and a figure with nothing to draw says why."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from llm_economist.studies.behaviour import INCOME_GROUPS
from llm_economist.reporting import plots

SEEDS = (0, 1, 2)


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text)]


def planner_lines(ax, labels) -> dict:
    return {line.get_label(): line for line in ax.get_lines() if line.get_label() in labels}


def metrics(paths: dict[str, list[float]]) -> pd.DataFrame:
    """Per seed, planner and step: each planner's welfare path, shifted by the seed."""
    return pd.DataFrame([
        {"seed": seed, "planner": label, "year": step, "step": step, "step_in_year": 0, "welfare": w + 100.0 * seed}
        for seed in SEEDS for label, path in paths.items() for step, w in enumerate(path)
    ])


TIED = {"saez": [51_000.0, 52_000.0, 52_500.0], "search": [51_000.0, 52_000.0, 52_500.0],
        "us_federal": [49_000.0, 49_500.0, 49_600.0], "no_tax": [42_000.0, 42_000.0, 42_000.0]}


@pytest.fixture
def tied_welfare(tmp_path):
    colors = plots.planner_colors(list(TIED))
    return plots.plot_welfare_over_time(metrics(TIED), tmp_path / "welfare.png", colors, "ability_weighted", eta=0.0)


def test_every_planner_has_a_visible_line_with_its_own_marker_and_line_style(tied_welfare):
    lines = planner_lines(tied_welfare.axes[0], TIED)
    assert set(lines) == set(TIED)
    assert all(line.get_visible() and line.get_marker() not in (None, "None", "") for line in lines.values())
    assert len({(line.get_marker(), line.get_linestyle()) for line in lines.values()}) == len(TIED)
    assert len({line.get_marker() for line in lines.values()}) == len(TIED)


def test_identical_welfare_paths_are_named_in_a_note(tied_welfare):
    notes = [t for t in texts(tied_welfare) if "coincide" in t]
    assert notes == ["lines of saez and search coincide"]


def test_welfare_axis_states_its_unit_with_thousands_separators(tied_welfare):
    ax = tied_welfare.axes[0]
    assert "$/yr-equivalent utility per worker" in ax.get_ylabel()
    assert ax.yaxis.get_major_formatter()(52_500, 0) == "52,500"
    assert "per tax year" in ax.get_xlabel()


def test_welfare_unit_follows_the_welfare_function_and_the_utility():
    from llm_economist.economy.welfare import welfare_unit

    assert welfare_unit("atkinson", eta=1.0) == "$/yr per worker"
    assert welfare_unit("utilitarian", eta=1.0).startswith("utils per worker")
    assert "worst-off" in welfare_unit("rawlsian", eta=0.0)
    assert "if eta = 0" in welfare_unit("ability_weighted")


def test_the_legend_says_what_the_band_over_seeds_is(tmp_path, tied_welfare):
    assert "shaded: 95% interval of the mean over 3 seeds" in texts(tied_welfare)
    two = metrics(TIED).query("seed < 2")
    fig = plots.plot_welfare_over_time(two, tmp_path / "w.png", plots.planner_colors(list(TIED)), "utilitarian")
    assert "shaded: range of the 2 seeds (too few for an interval)" in texts(fig)


def test_lines_coincide_only_within_a_sliver_of_the_plotted_span():
    x = np.arange(3.0)
    lines = {"a": (x, np.array([0.0, 1.0, 2.0])), "b": (x, np.array([0.0, 1.001, 2.0])), "c": (x, np.array([0.0, 1.1, 2.0]))}
    assert plots.coinciding(lines) == [["a", "b"]]
    assert plots.tie_note({"a": lines["a"], "c": lines["c"]}) == ""


CREDIT = {"cutoffs": [0.0, 10_000.0, 40_000.0], "rates": [-0.3, 0.2, 0.4], "lump_sum": 0.0}  # a credit phased in to $10k
FLAT = {"cutoffs": [0.0], "rates": [0.25], "lump_sum": 5_000.0}


@pytest.fixture
def credit_schedules(tmp_path):
    planners = {"credit": {"schedules": [CREDIT] * 3}, "flat": {"schedules": [FLAT] * 3}, "same_flat": {"schedules": [FLAT] * 3}}
    return plots.plot_final_schedules(planners, None, tmp_path / "schedules.png", plots.planner_colors(list(planners)))


def test_marginal_rates_show_a_credit_phase_in_from_zero_income(credit_schedules):
    marginal, average = credit_schedules.axes[:2]
    for ax in (marginal, average):
        assert ax.get_xlim()[0] == 0.0
        assert ax.get_xscale() == "symlog"
        assert ax.xaxis.get_major_formatter()(250_000, 0) == "$250,000"
    x, y = planner_lines(marginal, ["credit"])["credit"].get_data()
    assert np.allclose(y[x < 10_000], -0.3)
    low, high = marginal.get_ylim()
    assert low < -0.3 and high > 0.4
    assert any(np.allclose(line.get_ydata(), 0.0) and line.get_color() == "black" for line in marginal.get_lines())


def test_schedules_that_coincide_are_named_on_each_panel(credit_schedules):
    assert [t for t in texts(credit_schedules) if "coincide" in t] == ["lines of flat and same_flat coincide"] * 2


def test_the_average_rate_panel_is_cut_at_minus_100_percent(credit_schedules):
    assert credit_schedules.axes[1].get_ylim()[0] == -1.0


def outcomes(hours: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"seed": seed, "planner": label, "hours": h, "income": 1_000.0 * (1 + h), "consumption": 900.0 * (1 + h)}
            for seed in SEEDS for label, values in hours.items() for h in values]
    return pd.DataFrame(rows)


def test_a_histogram_of_equal_hours_says_so(tmp_path):
    data = outcomes({"no_tax": [40.0] * 5, "saez": [30.0, 40.0, 40.0, 50.0, 20.0]})
    fig = plots.plot_hours_distribution(data, tmp_path / "h.png", plots.planner_colors(["no_tax", "saez"]), 80.0)
    assert "every no_tax worker works 40 h/week" in texts(fig)
    assert "error bars: 95% interval of the mean over 3 seeds" in texts(fig)
    assert fig.axes[0].get_xlabel() == "hours worked per week (h/week)"


def test_a_histogram_without_hours_says_why_it_is_empty(tmp_path):
    fig = plots.plot_hours_distribution(outcomes({}).reindex(columns=["seed", "planner", "hours"]), tmp_path / "h.png", {}, 80.0)
    assert "no worker's hours were recorded in the final step" in texts(fig)


def test_hours_on_many_values_are_binned_with_each_value_inside_one_bin(tmp_path):
    grid = [5.0 * k for k in range(17)]  # 0, 5, ..., 80: language-model workers' choices
    fig = plots.plot_hours_distribution(outcomes({"saez": grid}), tmp_path / "h.png", plots.planner_colors(["saez"]), 80.0)
    (stairs, _band) = fig.axes[0].patches
    shares, edges = stairs.get_data().values, stairs.get_data().edges
    assert np.allclose(shares, 1 / 17) and np.allclose((edges[:-1] + edges[1:]) / 2, grid)


def test_individual_responses_say_why_there_is_no_spread(tmp_path):
    empty = plots.plot_individual_responses({"workers": 10, "individual_elasticities": []}, tmp_path / "i.png", (0.12, 0.4))
    assert "no agent off a corner: no elasticity to show" in texts(empty)
    equal = plots.plot_individual_responses({"workers": 10, "individual_elasticities": [0.2] * 10}, tmp_path / "i.png", (0.12, 0.4))
    assert "all 10 agents off a corner have elasticity 0.2: no spread" in texts(equal)


def test_lorenz_curves_draw_every_planner_with_its_band_labelled(tmp_path):
    data = outcomes({"saez": [10.0, 20.0, 40.0], "search": [10.0, 20.0, 40.0]})
    fig = plots.plot_lorenz_curves(data, tmp_path / "l.png", plots.planner_colors(["saez", "search"]))
    for ax in fig.axes:
        lines = planner_lines(ax, ["saez", "search"])
        assert len({(line.get_marker(), line.get_linestyle()) for line in lines.values()}) == 2
        assert "%" in ax.get_xlabel() and "%" in ax.get_ylabel()
    assert texts(fig).count("lines of saez and search coincide") == 2
    assert "shaded: 95% interval of the mean over 3 seeds" in texts(fig)


def test_parameter_panels_are_in_their_units(tmp_path):
    rows = [{"seed": seed, "planner": "llm", "mechanism": "nit", "year": year, "parameter": name, "value": value * (1 + year)}
            for seed in SEEDS for year in range(3) for name, value in (("phase_out", 0.2), ("guarantee", 5_000.0))]
    units = {("nit", "phase_out"): "fraction", ("nit", "guarantee"): "$/year"}
    fig = plots.plot_parameters_over_time(pd.DataFrame(rows), tmp_path / "p.png", plots.planner_colors(["llm"]), units)
    by_title = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert float(by_title["nit: phase_out"].yaxis.get_major_formatter()(0.25, 0).rstrip("%")) == 25
    assert by_title["nit: guarantee"].yaxis.get_major_formatter()(12_000, 0) == "$12,000"
    assert by_title["nit: guarantee"].get_ylabel() == "$/year"


def test_training_curves_say_there_is_one_line_per_seed(tmp_path):
    curves = {"ppo": [[(0, -1.0), (1_000, -0.5)], [(0, -1.1), (1_000, -0.4)]]}
    fig = plots.plot_training_curves(curves, tmp_path / "t.png", plots.planner_colors(["ppo"]))
    assert "ppo, one line per seed (2)" in texts(fig)
    assert fig.axes[0].xaxis.get_major_formatter()(2_048, 0) == "2,048"


def test_behaviour_figures_state_their_units(tmp_path):
    result = {"workers": 10, "rate_grid": [0.1, 0.4, 0.7], "rate_grid_hours_all": [40.0, 38.0, 35.0],
              "rate_grid_hours_all_ci95": [[39.0, 41.0], None, [34.0, 36.0]]}
    result |= {f"rate_grid_hours_{g}": None for g in INCOME_GROUPS}
    ax = plots.plot_hours_against_rate(result, tmp_path / "r.png", list(INCOME_GROUPS), (0.12, 0.4)).axes[0]
    assert ax.get_ylabel() == "mean hours worked (h/week)" and float(ax.xaxis.get_major_formatter()(0.4, 0).rstrip("%")) == 40


def test_a_sweep_names_planners_whose_gains_coincide(tmp_path):
    table = pd.DataFrame([{"seed": seed, "planner": p, "economy.elasticity": e, "gain_captured": 100.0 if p != "us_federal" else 50.0 + seed}
                          for seed in SEEDS for p in ("saez", "grid", "us_federal") for e in (0.25, 0.5)])
    fig = plots.sweep_plot(table, "economy.elasticity", ["saez", "grid", "us_federal"], tmp_path / "s.png")
    assert "lines of saez and grid coincide" in texts(fig)
    assert "shaded: 95% interval of the mean over 3 runs" in texts(fig)
