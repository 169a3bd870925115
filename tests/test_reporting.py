"""Specification of the run report: figures and report.md written from a finished run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.image import imread

from llm_economist.studies.comparison import run_comparison
from llm_economist.planner_factory import load_config
from llm_economist.reporting import write_report
from llm_economist.reporting.report import FIGURES, NoRunError, format_estimate, format_money, format_number, format_share
from llm_economist.reporting.summary import tied_groups

SMALL = [
    "name=report-test",
    "population.n_agents=150",
    "economy.years=2",
    "economy.steps_per_year=1",
    "workers.kind=bounded",
    "mechanism.name=three_bracket",
    "planners=[{kind: saez}, {kind: search, budget: 40, batch: 20}, {kind: us_federal}, {kind: random}, "
    "{kind: ppo, timesteps: 256, n_steps: 128}]",
]


def compare(out: Path, *extra: str) -> dict:
    return run_comparison(load_config(None, SMALL + list(extra)), out, progress=False)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, dict, str]:
    run_dir = tmp_path_factory.mktemp("run")
    summary = compare(run_dir, "seeds=3")
    return run_dir, summary, write_report(run_dir).read_text()


def section(text: str, title: str) -> str:
    return text.split(f"## {title}")[1].split("\n## ")[0]


def test_report_is_written_into_the_run_directory(full_run):
    run_dir, _, text = full_run
    assert (run_dir / "report.md").is_file()
    assert text.startswith("# Run report: report-test")


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_is_a_valid_png_of_sensible_size(full_run, name):
    run_dir, _, text = full_run
    path = run_dir / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = imread(path).shape[:2]
    assert 400 <= width <= 3000 and 300 <= height <= 3000
    assert f"]({name})" in text


def test_comparison_table_shows_each_planner_as_a_mean_with_its_interval(full_run):
    _, summary, text = full_run
    table = section(text, "Planners compared")
    assert "| Rank | Tied | Planner | Welfare | Gain captured | Fallbacks |" in table
    for label, p in summary["planners"].items():
        row = next(line for line in table.splitlines() if f"| {label} |" in line)
        welfare = format_estimate({"mean": p["welfare_mean"], "ci95": p["welfare_ci95"]})
        assert welfare.count("[") == 1 and welfare in row
        assert ("| yes |" if p["uses_population_model"] else "| no |") in row


def test_the_ranking_says_which_planners_the_seeds_cannot_separate(full_run):
    _, summary, text = full_run
    note = section(text, "Planners compared")
    assert "95% confidence" in note
    groups = tied_groups(summary["ranking"])
    for row in summary["ranking"]:  # every pair the seeds cannot separate shares a group named in the note
        for other in row["not_distinguishable_from"]:
            assert any(row["planner"] in g and other in g for g in groups)
    for group in groups:
        assert "{" + ", ".join(group) + "}" in note


def test_the_report_opens_with_its_answer_drawn_from_the_ranking(full_run):
    _, summary, text = full_run
    first = text.split("\n\n")[1]
    best = next(row["planner"] for row in summary["ranking"] if row["planner"] != "no_tax")
    assert first.startswith(f"**{best}") and first.endswith(".**") and ". " not in first  # one sentence, in bold
    assert "above no tax" in first
    top = [row["planner"] for row in summary["ranking"] if row["rank"] == 1 and row["planner"] != "no_tax"]
    assert all(label in first for label in top) and ("cannot tell them apart" in first) == (len(top) > 1)


def test_report_states_the_seeds_and_what_the_intervals_are(full_run):
    _, _, text = full_run
    assert "**3 seeds** (0, 1, 2)" in text and "95% t-interval" in text


def test_a_planner_stopped_short_of_the_last_tax_year_is_not_ranked_with_the_finished_ones(tmp_path):
    from llm_economist.reporting.report import _ranking_note, answer
    from llm_economist.reporting.summary import combine
    from llm_economist.runner import Runner

    config = load_config(None, [*SMALL[:5], "planners=[{kind: saez}, {kind: search, budget: 20, batch: 10}, {kind: us_federal}]"])
    seeds = [Runner(config.model_copy(update={"seed": s}), tmp_path / str(s), progress=False).run() for s in (0, 1, 2)]
    seeds[1]["planners"]["search"]["years"] -= 1  # as a run stopped in its last year leaves it
    summary = combine(seeds)
    assert "search" not in {row["planner"] for row in summary["ranking"]} and "search" in summary["planners"]
    assert "Not ranked, because they did not finish every seed and tax year: search." in _ranking_note(summary)
    alone = combine([{**s, "planners": {k: v for k, v in s["planners"].items() if k in ("search", "saez")}} for s in seeds])
    assert [row["planner"] for row in alone["ranking"]] == ["saez"]
    assert answer(alone) == "**Only saez finished every seed and tax year, so this run ranks nothing yet.**"
    assert _ranking_note(alone).startswith("Only 1 planner finished every seed and tax year, so nothing is ranked.")


def test_one_seed_says_that_no_interval_can_be_given(tmp_path):
    compare(tmp_path)
    text = write_report(tmp_path).read_text()
    assert "**1 seed** (0): figures are means with no interval and the ranking is not tested" in text
    assert "[" not in section(text, "Planners compared").split("|---")[1].split("\n\n")[0]
    assert "cannot say whether that order would hold" in text.split("\n\n")[1]


def test_report_states_what_was_run_with_correct_counts(full_run):
    _, _, text = full_run
    assert "150 workers" in text and "`census`" in text and "`bounded`" in text
    assert "2 tax years of 1 step each" in text


def test_a_planner_that_brings_its_own_mechanism_is_named_as_such(full_run):
    _, _, text = full_run
    assert "saez (`saez`, sets `three_bracket`)" in text
    assert "us_federal (`us_federal`, brings its own mechanism, `us_tax_2024`)" in text
    assert "no_tax (baseline: no tax, no transfer)" in text


def test_planners_on_different_instruments_are_said_to_be(full_run, tmp_path):
    _, _, text = full_run
    warning = next(line for line in text.splitlines() if "**The planners use different instruments**" in line)
    assert "saez, search, random, ppo set `three_bracket` (A progressive income tax with 3 brackets" in warning
    assert "us_federal set `us_tax_2024` (The 2024 US taxes on earnings (income tax, standard deduction, child tax credit, payroll tax, EITC)" in warning
    compare(tmp_path, "planners=[{kind: saez}, {kind: grid, points_per_parameter: 3}]")  # both set the config's mechanism
    assert "different instruments" not in write_report(tmp_path).read_text()


def test_final_schedules_show_each_planners_own_cutoffs(full_run):
    _, _, text = full_run
    table = section(text, "Final schedules")
    us_rate_2 = next(line for line in table.splitlines() if line.startswith("| us_federal |") and "| rate_2 |" in line)
    saez_rate_2 = next(line for line in table.splitlines() if line.startswith("| saez |") and "| rate_2 |" in line)
    assert "$47,150 to $100,525" in us_rate_2 and "22.0" in us_rate_2
    assert "$150,000 upward" in saez_rate_2


def test_calibration_is_reported(full_run):
    _, _, text = full_run
    calibration = section(text, "Calibration")
    assert "psi = " in calibration and "h/week" in calibration and "sit at the cap of 80.0 h" in calibration


def test_numbers_are_formatted_for_people():
    assert format_money(1234567.8) == "$1,234,568"
    assert format_money(-1200) == "-$1,200"
    assert format_share(0.0514) == "5.1%"
    assert format_number(10.81234) == "10.8123"
    assert format_number(None) == "—" and format_number(float("nan")) == "—"


def test_report_lists_caveats_including_the_meaning_of_gain_captured(full_run):
    _, _, text = full_run
    caveats = section(text, "Caveats")
    assert "no_tax" in caveats and "(W - W_0) / (W_best - W_0)" in caveats
    assert "learn only from the tax years" in caveats


def test_files_section_links_the_outputs_and_each_seed(full_run):
    _, _, text = full_run
    files = section(text, "Files")
    for name in ["config.yaml", "summary.json", "metrics.csv", "final_outcomes.parquet", *FIGURES]:
        assert f"[`{name}`]({name})" in files
    for seed in range(3):
        assert f"[`seed_{seed}/`](seed_{seed}/)" in files


def test_report_without_any_per_agent_data_skips_those_figures_with_a_note(tmp_path):
    compare(tmp_path)
    (tmp_path / "final_outcomes.parquet").unlink()
    text = write_report(tmp_path).read_text()
    assert not (tmp_path / "hours_distribution.png").exists() and not (tmp_path / "lorenz_curves.png").exists()
    assert "Not drawn: hours and Lorenz curves" in text
    assert (tmp_path / "final_schedules.png").is_file()


def test_a_run_with_no_finished_year_still_gets_a_report(tmp_path):
    compare(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary.update(planners={}, ranking=[], stopped="HTTP 401 from http://127.0.0.1:9/v1")
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    for name in ("metrics.csv", "parameters.csv"):
        pd.read_csv(tmp_path / name).iloc[0:0].to_csv(tmp_path / name, index=False)
    pd.read_parquet(tmp_path / "final_outcomes.parquet").iloc[0:0].to_parquet(tmp_path / "final_outcomes.parquet")
    text = write_report(tmp_path).read_text()
    assert "The run stopped early." in text and "HTTP 401" in text
    assert "none finished a tax year" in text and "*(no rows)*" in text


def test_missing_summary_names_the_file(tmp_path):
    with pytest.raises(NoRunError, match="summary.json"):
        write_report(tmp_path)
