"""Specification of the run report: figures and report.md written from a finished run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.image import imread

from llm_economist.reporting import write_report
from llm_economist.reporting.report import FIGURES, format_money, format_number, format_share

N_AGENTS, YEARS, STEPS_PER_YEAR, MAX_HOURS = 300, 3, 4, 60.0
CUTOFFS = [0.0, 11_600.0, 47_150.0, 100_525.0, 191_950.0, 243_725.0, 609_350.0]
PLANNERS = {  # label -> (kind, final marginal rates, uses the population model)
    "US federal 2024": ("fixed", [0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37], False),
    "Saez": ("saez", [0.30, 0.28, 0.30, 0.33, 0.38, 0.42, 0.45], True),
    "Grid search": ("search", [0.25, 0.25, 0.30, 0.30, 0.40, 0.40, 0.50], True),
}
CAVEATS = ["Workers are exact utility maximisers; LLM workers may respond differently.",
           "Welfare is measured over 300 agents only."]


def _tax(z: np.ndarray, rates: list[float]) -> np.ndarray:
    c = np.asarray(CUTOFFS)
    widths = np.append(np.diff(c), np.inf)
    return np.clip(z[:, None] - c, 0.0, widths) @ np.asarray(rates)


def _step_rows(rng, wage, label, rates, year, step, step_in_year) -> pd.DataFrame:
    """One step of a quasi-linear economy: hours fall with the marginal rate, revenue is rebated."""
    mean_rate = float(np.mean(rates))
    hours = np.clip(40 * (1 - mean_rate) ** 0.4 * (wage / 30) ** 0.3 + rng.normal(0, 6, len(wage)), 0, MAX_HOURS)
    hours[rng.random(len(wage)) < 0.05] = 0.0
    income = 52 * wage * hours
    tax = _tax(income, rates)
    transfer = np.full(len(wage), tax.mean())
    consumption = income - tax + transfer
    utility = np.log1p(consumption) - 0.002 * hours**1.5
    marginal = np.asarray(rates)[np.searchsorted(CUTOFFS, income, side="right") - 1]
    return pd.DataFrame({
        "planner": label, "year": year, "step": step, "agent_id": np.arange(len(wage)), "hours": hours,
        "income": income, "tax": tax, "transfer": transfer, "consumption": consumption, "utility": utility,
        "marginal_rate": marginal,
    })


def _gini(x: np.ndarray) -> float:
    x = np.sort(np.clip(x, 0, None))
    n = len(x)
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * x.sum()))


def make_run_dir(path: Path, with_traces: bool = True) -> dict:
    """A finished run directory laid out exactly as the runner writes it; returns the summary."""
    rng = np.random.default_rng(7)
    wage = np.exp(rng.normal(np.log(28.0), 0.6, N_AGENTS))
    config = {
        "name": "saez-comparison-test", "seed": 7,
        "population": {"n_agents": N_AGENTS, "income_model": "gb2_acs2023"},
        "economy": {"years": YEARS, "steps_per_year": STEPS_PER_YEAR, "eta": 1.0, "elasticity": 0.4, "max_hours": MAX_HOURS},
        "welfare": {"name": "utilitarian"},
        "mechanism": {"name": "us_federal_2024", "options": {}},
        "workers": {"kind": "rational"},
        "planners": [{"kind": kind, "label": label} for label, (kind, _, _) in PLANNERS.items()],
    }
    traces, metrics, parameters = [], [], []
    for label, (_, final_rates, _) in PLANNERS.items():
        start = np.asarray(PLANNERS["US federal 2024"][1])
        for year in range(YEARS):
            rates = list(start + (np.asarray(final_rates) - start) * (year + 1) / YEARS)
            parameters += [{"planner": label, "year": year, "parameter": f"rate_{j}", "value": r} for j, r in enumerate(rates)]
            for k in range(STEPS_PER_YEAR):
                step = year * STEPS_PER_YEAR + k
                rows = _step_rows(rng, wage, label, rates, year, step, k)
                traces.append(rows)
                metrics.append({
                    "planner": label, "year": year, "step": step, "step_in_year": k,
                    "welfare": rows["utility"].mean(), "mean_hours": rows["hours"].mean(), "output": rows["income"].mean(),
                    "revenue": rows["tax"].mean(), "transfer": rows["transfer"].mean(),
                    "gini_income": _gini(rows["income"].to_numpy()), "gini_consumption": _gini(rows["consumption"].to_numpy()),
                    "share_zero_hours": (rows["hours"] == 0).mean(), "share_at_cap": (rows["hours"] >= MAX_HOURS).mean(),
                })
    traces, metrics = pd.concat(traces, ignore_index=True), pd.DataFrame(metrics)
    final = traces[traces["step"] == traces["step"].max()]
    last = metrics[metrics["step"] == metrics["step"].max()].set_index("planner")
    best = last["welfare"].idxmax()
    summary = {
        "name": config["name"], "created": "2025-06-01T12:00:00Z",
        "population": {"n_agents": N_AGENTS, "income_model": "gb2_acs2023", "median_wage": float(np.median(wage))},
        "calibration": {"psi": 0.0123, "median_hours_us_2024": 40.2, "share_zero_hours_us_2024": 0.051,
                        "share_at_cap_us_2024": 0.032},
        "welfare": {"name": "utilitarian"},
        "best": {"planner": best, "welfare": float(last.loc[best, "welfare"])},
        "planners": {
            label: {
                "kind": kind, "mechanism": "us_federal_2024", "final_welfare": float(last.loc[label, "welfare"]),
                "welfare_pct_of_best": float(100 * last.loc[label, "welfare"] / last.loc[best, "welfare"]),
                "gain_captured_pct": None if kind == "fixed" else 87.5,
                **{key: float(last.loc[label, key]) for key in ("revenue", "transfer", "gini_income", "gini_consumption",
                                                                "mean_hours", "output", "share_zero_hours", "share_at_cap")},
                "parameters": {f"rate_{j}": r for j, r in enumerate(rates)},
                "schedule": {"cutoffs": CUTOFFS, "rates": rates, "lump_sum": 0.0},
                "uses_population_model": uses_model, "evaluations": 0 if kind == "fixed" else 1200,
                "wall_s": 0.4 if kind == "fixed" else 95.3,
            }
            for label, (kind, rates, uses_model) in PLANNERS.items()
        },
        "caveats": CAVEATS,
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (path / "summary.json").write_text(json.dumps(summary, indent=2))
    metrics.to_csv(path / "metrics.csv", index=False)
    pd.DataFrame(parameters).to_csv(path / "parameters.csv", index=False)
    final.to_parquet(path / "final_outcomes.parquet", index=False)
    if with_traces:
        traces.to_parquet(path / "traces.parquet", index=False)
    return summary


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, dict, str]:
    run_dir = tmp_path_factory.mktemp("run")
    summary = make_run_dir(run_dir)
    report = write_report(run_dir)
    return run_dir, summary, report.read_text()


def test_report_is_written_into_the_run_directory(full_run):
    run_dir, _, text = full_run
    assert (run_dir / "report.md").is_file()
    assert text.startswith("# Run report: saez-comparison-test")


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_is_a_valid_png_of_sensible_size(full_run, name):
    run_dir, _, text = full_run
    path = run_dir / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = imread(path).shape[:2]
    assert 400 <= width <= 3000 and 300 <= height <= 3000
    assert f"]({name})" in text


def test_comparison_table_shows_each_planner_formatted_from_the_summary(full_run):
    _, summary, text = full_run
    for label, p in summary["planners"].items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        assert format_number(p["final_welfare"]) in row
        assert f"{p['welfare_pct_of_best']:.1f}%" in row
        assert format_money(p["revenue"]) in row and format_share(p["share_zero_hours"]) in row
        assert ("| yes |" if p["uses_population_model"] else "| no |") in row
    assert "| Planner | Welfare | % of best |" in text


def test_numbers_are_formatted_for_people():
    assert format_money(1234567.8) == "$1,234,568"
    assert format_money(-1200) == "-$1,200"
    assert format_share(0.0514) == "5.1%"
    assert format_number(10.81234) == "10.8123"
    assert format_number(None) == "—"


def test_report_states_what_was_run_and_the_calibration(full_run):
    _, _, text = full_run
    assert "300 workers" in text and "gb2_acs2023" in text and "`rational`" in text
    assert "3 tax years of 4 steps" in text and "seed 7" in text
    assert "psi = 0.0123" in text and "40.2 h/week" in text and "5.1% work 0 h" in text and "3.2% sit at the cap" in text


def test_report_lists_caveats_and_the_meaning_of_percent_of_best(full_run):
    _, _, text = full_run
    caveats = text.split("## Caveats")[1].split("## Files")[0]
    for caveat in CAVEATS:
        assert f"- {caveat}" in caveats
    assert "% of best" in caveats and "grid search" in caveats
    assert "learn only from the tax years" in caveats


def test_final_parameters_are_tabulated_per_planner(full_run):
    _, _, text = full_run
    section = text.split("## Final parameters")[1].split("##")[0]
    assert "| Parameter | US federal 2024 | Saez | Grid search |" in section
    assert "| rate_6 | 0.3700 | 0.4500 | 0.5000 |" in section


def test_files_section_links_the_run_outputs(full_run):
    _, _, text = full_run
    files = text.split("## Files")[1]
    for name in ["config.yaml", "metrics.csv", "traces.parquet", "final_outcomes.parquet", *FIGURES]:
        assert f"[`{name}`]({name})" in files


def test_report_without_traces_still_draws_every_figure(tmp_path):
    make_run_dir(tmp_path, with_traces=False)
    text = write_report(tmp_path).read_text()
    assert all((tmp_path / name).is_file() for name in FIGURES)
    assert "traces.parquet`: not written" in text


def test_report_without_any_per_agent_data_skips_those_figures_with_a_note(tmp_path):
    make_run_dir(tmp_path, with_traces=False)
    (tmp_path / "final_outcomes.parquet").unlink()
    text = write_report(tmp_path).read_text()
    assert not (tmp_path / "hours_distribution.png").exists() and not (tmp_path / "lorenz_curves.png").exists()
    assert "Hours and Lorenz figures are skipped" in text
    assert (tmp_path / "final_schedules.png").is_file()


def test_missing_summary_names_the_file(tmp_path):
    make_run_dir(tmp_path)
    (tmp_path / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="summary.json"):
        write_report(tmp_path)
