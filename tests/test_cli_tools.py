"""Specification of the tool commands around a run: `report`, `narrate` and `sensitivity`.

Refusals are one line on stderr and exit code 2, never a traceback. Narratives are written
against a local scripted server (tests/fault_server.py), from run directories made by hand.
"""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fault_server import FaultServer

from llm_economist.config import dump_config
from llm_economist.planner_factory import load_config
from llm_economist.llm import LLMSettings, open_client
from llm_economist.reporting.narrate import agent_record, narrate, whole_sentences

TRACED_AGENTS = 4
DIARY = "I worked forty hours each week. The taxes took a bite, but the rebate helped."


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_economist.cli", *args], capture_output=True, text=True, timeout=300)


def assert_refused(result: subprocess.CompletedProcess) -> str:
    """The one-line refusal (exit 2) the command printed on stderr."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def make_run(path: Path, *overrides: str) -> Path:
    """A run directory as narrate reads it: the resolved config and the traces of agents 0..3 under saez."""
    config = load_config(None, ["population.n_agents=20", "economy.steps_per_year=2", *overrides])
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(dump_config(config))
    rows = [
        {"planner": "saez", "year": step // 2, "step": step, "agent_id": agent, "hours": 40.0, "income": 52_000.0,
         "tax": 8_000.0, "transfer": 1_000.0}
        for step in range(4) for agent in range(TRACED_AGENTS)
    ]
    pd.DataFrame(rows).to_parquet(path / "traces.parquet", index=False)
    return path


def served_run(path: Path, server: FaultServer) -> Path:
    return make_run(path, f"llm.base_urls=[{server.url}]", "llm.model=fault-model", "llm.max_retries=0")


def narrative(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().removeprefix("narrative: ")).read_text()


# ---- folders that hold no run, options that name nothing in it -----------------------------


def test_report_on_a_folder_without_a_run_says_so_in_one_line(tmp_path):
    line = assert_refused(cli("report", str(tmp_path)))
    assert f"{tmp_path} holds no finished run (no summary.json)" in line
    assert "llm-economist compare" in line


def test_narrate_on_a_folder_without_a_run_says_so_in_one_line(tmp_path):
    line = assert_refused(cli("narrate", str(tmp_path), "--agent", "1"))
    assert f"{tmp_path} holds no finished run (no config.yaml)" in line


def test_narrate_on_a_run_without_traces_names_the_missing_file(tmp_path):
    make_run(tmp_path).joinpath("traces.parquet").unlink()
    line = assert_refused(cli("narrate", str(tmp_path), "--agent", "1"))
    assert "no traces.parquet" in line


def test_narrate_on_a_run_that_kept_no_traces_says_how_to_keep_them(tmp_path):
    make_run(tmp_path, "output.traces=false").joinpath("traces.parquet").unlink()
    line = assert_refused(cli("narrate", str(tmp_path), "--agent", "1"))
    assert "--set output.traces=true" in line


def test_narrate_refuses_an_agent_that_was_not_traced(tmp_path):
    make_run(tmp_path)
    line = assert_refused(cli("narrate", str(tmp_path), "--agent", str(TRACED_AGENTS)))
    assert line.startswith(f"error: --agent {TRACED_AGENTS}:") and f"0..{TRACED_AGENTS - 1}" in line


def test_narrate_refuses_a_planner_not_in_the_run(tmp_path):
    make_run(tmp_path)
    line = assert_refused(cli("narrate", str(tmp_path), "--agent", "1", "--planner", "grid"))
    assert line.startswith("error: --planner grid:") and "saez" in line


# ---- narrate ---------------------------------------------------------------------------------


def test_narrate_writes_the_account_and_its_facts(tmp_path):
    with FaultServer(content=DIARY) as server:
        text = narrative(cli("narrate", str(served_run(tmp_path, server)), "--agent", "2"))
    assert text.startswith("# Agent 2 under saez")
    assert DIARY in text
    assert "Year 1, week 1: worked 40 h" in text.split("## The facts the account was written from")[1]
    assert "cut at the length limit" not in text and "Caveat" not in text


def test_narrate_fails_when_the_model_gives_no_usable_text_and_keeps_the_facts(tmp_path):
    with FaultServer(content="   ") as server:
        done = cli("narrate", str(served_run(tmp_path, server)), "--agent", "2", "--quiet")
    assert done.returncode == 1 and "narrative:" not in done.stdout
    assert "the language model gave no usable text" in done.stderr
    facts = (tmp_path / "narrative_saez_agent_2.md").read_text().split("## The facts the account was written from")[1]
    assert "Year 1, week 1: worked 40 h" in facts


def test_narrate_shows_progress_on_stderr_unless_quiet(tmp_path):
    with FaultServer(content=DIARY) as server:
        run = str(served_run(tmp_path, server))
        loud = cli("narrate", run, "--agent", "2")
        quiet = cli("narrate", run, "--agent", "2", "--quiet")
    assert f"narrating agent 2 under saez with fault-model at {server.url} ..." in loud.stderr
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_an_account_cut_at_the_length_limit_ends_at_its_last_full_sentence_with_a_note(tmp_path):
    with FaultServer(content=DIARY + " Next year I hope to", finish_reason="length") as server:
        text = narrative(cli("narrate", str(served_run(tmp_path, server)), "--agent", "2", "--max-tokens", "50"))
    account = text.split("## In their words")[1].split("## The facts")[0]
    assert DIARY in account and "I hope to" not in account
    assert "cut at the length limit (50 tokens)" in account and "--max-tokens" in account


def test_an_account_by_the_embedded_model_carries_a_caveat_and_how_to_name_a_real_model(tmp_path):
    config = load_config(make_run(tmp_path) / "config.yaml")  # no llm.base_urls: the embedded model
    record = agent_record(tmp_path, config, 2, None)
    with FaultServer(content=DIARY) as server, open_client(LLMSettings(base_urls=(server.url,), model="fault-model")) as client:
        text = narrate(record, config, client).read_text()
    caveat = text.split("## In their words")[1].split(DIARY)[0]
    assert "tiny local model" in caveat and "may be inaccurate" in caveat
    assert "--set 'llm.base_urls=[http://HOST:PORT/v1]' --set llm.model=MODEL" in caveat


def test_narrate_reads_the_first_seed_of_a_comparison_over_seeds(tmp_path):
    with FaultServer(content=DIARY) as server:
        served_run(tmp_path / "seed_0", server)
        (tmp_path / "config.yaml").write_text((tmp_path / "seed_0" / "config.yaml").read_text())
        result = cli("narrate", str(tmp_path), "--agent", "2", "--quiet")
    assert DIARY in narrative(result)
    assert result.stdout.strip() == f"narrative: {tmp_path / 'seed_0' / 'narrative_saez_agent_2.md'}"


def test_narrate_takes_only_llm_overrides(tmp_path):
    result = cli("narrate", str(make_run(tmp_path)), "--agent", "2", "--set", "population.n_agents=5")
    assert result.returncode == 2 and "--set" in result.stderr and "llm.*" in result.stderr


@pytest.mark.parametrize(("text", "kept"), [
    ("One. Two! Three? Four", "One. Two! Three?"),
    ('He said "stop." Then', 'He said "stop."'),
    ("It cost 3.5 dollars and", ""),
])
def test_whole_sentences_ends_at_the_last_complete_sentence(text, kept):
    assert whole_sentences(text) == kept


# ---- sensitivity -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rational", "llm"])
def test_sensitivity_refuses_workers_whose_hours_are_piecewise_flat_in_the_rates(tmp_path, kind):
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\n")
    result = cli("sensitivity", str(config), "--set", f"workers.kind={kind}")
    line = assert_refused(result)
    assert f"workers.kind = {kind}" in line and "workers.kind=bounded" in line and "surrogate" in line
    assert result.stdout == ""


def test_sensitivity_on_bounded_workers_prints_a_gradient_for_every_parameter(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\n")
    out = tmp_path / "sensitivity.json"
    result = cli("sensitivity", str(config), "--set", "population.n_agents=200", "--set", "workers.kind=bounded", "--out", str(out))
    assert result.returncode == 0, result.stderr
    gradient = json.loads(out.read_text())["gradient"]
    assert gradient and all(value != 0.0 for value in gradient.values())
    assert all(name in result.stdout for name in gradient)
