"""The runner end to end: outputs, determinism, checkpoint/resume, and the CLI's contract."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from llm_economist.studies.comparison import run_comparison
from llm_economist.config import ConfigError
from llm_economist.planner_factory import load_config
from llm_economist.runner import ResumeError, Runner

SMALL = [
    "population.n_agents=150",
    "economy.years=3",
    "economy.steps_per_year=2",
    "workers.kind=bounded",
    "planners=[{kind: saez}, {kind: search, budget: 40, batch: 20}, {kind: us_federal}]",
]


def small_config(*extra):
    return load_config(None, SMALL + list(extra))


def strip_timing(summary):
    summary.pop("timings")
    return summary


def test_outputs_have_one_row_per_planner_step_and_agent_step(tmp_path):
    config = small_config()
    summary = Runner(config, tmp_path, progress=False).run()
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert len(metrics) == 4 * 3 * 2  # (planners + the no-tax baseline) x years x steps
    traces = pd.read_parquet(tmp_path / "traces.parquet")
    assert len(traces) == 4 * 3 * 2 * 150
    assert set(summary["planners"]) == {"saez", "search", "us_federal", "no_tax"}
    assert summary["planners"]["no_tax"]["revenue"] == 0.0 and summary["planners"]["us_federal"]["kind"] == "us_federal"
    params = pd.read_csv(tmp_path / "parameters.csv")
    assert set(params[params.planner == "us_federal"].parameter) == {f"rate_{j}" for j in range(7)}
    # Budget balance in every traced step: consumption adds up to income.
    sums = traces.groupby(["planner", "step"])[["income", "consumption"]].sum()
    assert (sums.income - sums.consumption).abs().max() < 1e-6 * sums.income.max()


def test_same_seed_same_run_and_another_seed_differs(tmp_path):
    a = strip_timing(Runner(small_config(), tmp_path / "a", progress=False).run())
    b = strip_timing(Runner(small_config(), tmp_path / "b", progress=False).run())
    c = strip_timing(Runner(small_config("seed=7"), tmp_path / "c", progress=False).run())
    assert a["planners"] == b["planners"]
    # The clock readings are kept apart, so identical runs write identical summaries, byte for byte.
    assert (tmp_path / "a/summary.json").read_bytes() == (tmp_path / "b/summary.json").read_bytes()
    timings = json.loads((tmp_path / "a/timings.json").read_text())
    assert set(timings["wall_s"]) == set(a["planners"]) and all(s > 0 for s in timings["wall_s"].values()) and timings["created"]
    assert pd.read_parquet(tmp_path / "a/traces.parquet").equals(pd.read_parquet(tmp_path / "b/traces.parquet"))
    assert a["planners"]["saez"]["final_welfare"] != c["planners"]["saez"]["final_welfare"]


def test_interrupted_run_resumes_to_the_uninterrupted_result_without_redoing_years(tmp_path):
    full = strip_timing(Runner(small_config(), tmp_path / "full", progress=False).run())

    def interrupt(run):
        if run.label == "search" and run.year == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(small_config(), tmp_path / "cut", progress=False).run(on_year_end=interrupt)
    played = []
    resumed = strip_timing(Runner(small_config(), tmp_path / "cut", resume=True, progress=False).run(on_year_end=lambda r: played.append((r.label, r.year))))
    assert played == [("search", 3), ("us_federal", 1), ("us_federal", 2), ("us_federal", 3), ("no_tax", 1), ("no_tax", 2), ("no_tax", 3)]
    assert resumed["planners"] == full["planners"]
    for name in ("metrics.csv", "parameters.csv"):
        assert (tmp_path / "full" / name).read_text() == (tmp_path / "cut" / name).read_text()
    assert pd.read_parquet(tmp_path / "full/traces.parquet").equals(pd.read_parquet(tmp_path / "cut/traces.parquet"))


def test_every_table_of_a_seed_names_that_seed_in_its_first_column(tmp_path):
    config = small_config("seeds=2", "population.n_agents=20", "economy.years=1", "planners=[{kind: us_federal}]")
    run_comparison(config, tmp_path, progress=False)
    for seed in (0, 1):
        folder = tmp_path / f"seed_{seed}"
        tables = {path.name: pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
                  for path in [*folder.glob("*.csv"), *folder.glob("*.parquet")]}
        assert {"traces.parquet", "metrics.csv", "parameters.csv", "final_outcomes.parquet"} <= set(tables)
        for name, table in tables.items():
            assert table.columns[0] == "seed" and set(table["seed"]) == {seed}, name


def test_resume_refuses_a_checkpoint_from_another_config(tmp_path):
    Runner(small_config(), tmp_path, progress=False).run()
    with pytest.raises(ResumeError, match="different config"):
        Runner(small_config("economy.elasticity=0.3"), tmp_path, resume=True, progress=False).run()


@pytest.mark.parametrize(
    "override, field",
    [
        ("economy.years=0", "economy.years"),
        ("welfare.name=happiness", "welfare.name"),
        ("population.n_agents=-5", "population.n_agents"),
        ("mechanism.colour=red", "mechanism.colour"),
        ("planners=[{kind: oracle}]", "planners.0.kind"),
        ("economy.max_hours=30", "target_median_hours"),
    ],
)
def test_invalid_configs_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", "\\.")):
        load_config(None, [override])


def test_bad_mechanism_parameters_in_a_planner_name_the_parameter():
    with pytest.raises(ConfigError, match="planners.0.parameters.*rate_2 must lie in"):
        small_config("planners=[{kind: fixed, parameters: [0.1, 0.2, 1.7]}]")


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "llm_economist.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_cli_compare_writes_the_report_and_exit_codes_mean_something(tmp_path):
    config = Path(__file__).resolve().parents[1] / "experiments/configs/bounded_rational.yaml"
    sets = ["--set", "population.n_agents=120", "--set", "economy.years=2", "--set", "planners.4.points_per_parameter=6"]
    ok = _cli("compare", str(config), "--out", str(tmp_path / "run"), "--quiet", *sets, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert set(summary["planners"]) == {"us_federal", "flat", "saez", "search", "grid", "no_tax"}
    report = (tmp_path / "run/report.md").read_text()
    assert "saez" in report and (tmp_path / "run/welfare_over_time.png").exists()

    again = _cli("compare", str(config), "--out", str(tmp_path / "run"), "--quiet", *sets, cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    changed = _cli("compare", str(config), "--out", str(tmp_path / "run"), "--resume", "--quiet", *sets,
                   "--set", "economy.elasticity=0.3", cwd=tmp_path)
    assert changed.returncode == 2 and "different config" in changed.stderr

    bad = _cli("compare", str(config), "--set", "economy.years=0", cwd=tmp_path)
    assert bad.returncode == 2 and "economy.years" in bad.stderr
    unknown = _cli("compare", str(config), "--planners", "nobody", "--out", str(tmp_path / "x"), *sets, cwd=tmp_path)
    assert unknown.returncode == 2 and "nobody" in unknown.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ("llm.api_key_env=sk-proj-abc123", "api_key_env must be the NAME"),
        ("llm.base_urls=[\"http://127.0.0.1:1/v1?key=abc123\"]", "must not carry credentials"),
        ("planners=[{kind: saez, label: a/b}]", "planners.0.label"),
        ("governance={every_years: 1, planner_platform: false}", "needs a challenger"),
        ("governance={every_years: 1, platforms: [{name: x, parameters: [0, 0, 0]}, {name: x, parameters: [1, 1, 1]}]}", "distinct"),
    ],
)
def test_unsafe_or_impossible_settings_are_refused_without_echoing_secrets(override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(None, [override])
    assert "abc123" not in str(caught.value)


def test_elections_choose_the_mechanism_and_the_winner_holds_until_the_next(tmp_path):
    config = small_config(
        "workers.kind=rational",
        "economy.years=4",
        "planners=[{kind: fixed, parameters: [0.0, 0.0, 0.0]}, {kind: us_federal}]",
        "governance={every_years: 2, rule: instant_runoff, worker_platforms: 3, "
        "platforms: [{name: redistribute, parameters: [0.6, 0.6, 0.6]}]}",
    )
    Runner(config, tmp_path, progress=False).run()
    elections = json.loads((tmp_path / "elections.json").read_text())
    fixed = elections["fixed"]
    assert [e["year"] for e in fixed] == [0, 2]
    names = [p["name"] for p in fixed[0]["platforms"]]
    assert names[:3] == ["status quo", "planner", "redistribute"] and len(names) == 6
    # The us_federal planner has its own brackets: the three-bracket platform is not offered to it.
    assert "redistribute" not in [p["name"] for p in elections["us_federal"][0]["platforms"]]
    params = pd.read_csv(tmp_path / "parameters.csv")
    rates = params[params.planner == "fixed"].pivot(index="year", columns="parameter", values="value")
    assert (rates.loc[1] == rates.loc[0]).all() and (rates.loc[3] == rates.loc[2]).all()
    winner = fixed[0]["platforms"][fixed[0]["winner"]]["parameters"]
    assert list(rates.loc[0]) == pytest.approx(list(winner.values()))
