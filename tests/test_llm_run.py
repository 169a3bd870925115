"""Runs with language-model workers against faulty servers: transient faults are retried and counted
by reason up to the headline, faults that cannot heal stop the run with exit code 3 and a report, the
key stays out of every file, usage adds up over a resume, and a rerun is served from the cache."""

import json
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from fault_server import FaultServer
from llm_economist.studies.comparison import run_comparison
from llm_economist.planner_factory import load_config
from llm_economist.reporting.report import comparison_table, write_report
from llm_economist.runner import Runner

KEY = "sk-test-SECRET-7f3a9c"
DECISION = '{"hours": 40, "fairness": 3, "trust": 4, "stress": 2, "reason": "steady week", "message": "all good"}'


def config(url, *extra):
    return load_config(None, [
        "population.n_agents=5", "economy.years=2", "economy.steps_per_year=1", "workers.kind=llm",
        f"llm.base_urls=[{url}]", "llm.api_key_env=LLM_ECONOMIST_TEST_KEY", "llm.timeout_s=0.5",
        "llm.max_retries=2", "llm.concurrency=1", "planners=[{kind: us_federal}]", *extra,
    ])


def test_faults_are_retried_and_counted_and_the_run_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ECONOMIST_TEST_KEY", KEY)
    # First request: 500, 429, then ok. Second: hangs past the timeout, then ok. Third: malformed
    # three times (first try + 2 retries): unusable, so that worker falls back. Then all ok.
    script = ["500", "429", "ok", "hang", "ok", "malformed", "malformed", "schema"]
    with FaultServer(script, content=DECISION, hang_s=2.0) as server:
        summary = Runner(config(server.url), tmp_path, progress=False).run()
        requests = server.chat_requests
    usage = summary["llm"]["usage"]
    assert usage["retries"] >= 5 and usage["failures"] == 1
    diagnostics = summary["planners"]["us_federal"]["worker_diagnostics"]
    assert diagnostics["llm_fallbacks"] == 1 and diagnostics["llm_decisions"] == 10
    traces = pd.read_parquet(tmp_path / "traces.parquet")
    assert traces["fallback"].sum() == 1
    assert len(traces) == 2 * 10  # every agent and step of us_federal and no_tax was settled: nothing lost
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in requests)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the key leaked into {path.name}"


def test_a_rerun_of_the_same_config_makes_no_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ECONOMIST_TEST_KEY", KEY)
    with FaultServer(content=DECISION) as server:
        first = Runner(config(server.url), tmp_path, progress=False).run()
        calls = len(server.chat_requests)
        second = Runner(config(server.url), tmp_path, progress=False).run()
        assert len(server.chat_requests) == calls
    assert second["llm"]["usage"]["cache_hits"] == second["llm"]["usage"]["requests"] == calls
    assert second["planners"]["us_federal"]["final_welfare"] == first["planners"]["us_federal"]["final_welfare"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["llm"]["usage"]["http_calls"] == 0


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A three-year run whole, and the same run cut after us_federal's second year and resumed:
    (whole summary, resumed summary, calls the resumed part made, directory)."""
    tmp_path = tmp_path_factory.mktemp("interrupted")
    with pytest.MonkeyPatch.context() as patch, FaultServer(content=DECISION) as server:
        patch.setenv("LLM_ECONOMIST_TEST_KEY", KEY)
        full = Runner(config(server.url, "economy.years=3"), tmp_path / "full", progress=False).run()

        def interrupt(run):
            if run.year == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            Runner(config(server.url, "economy.years=3"), tmp_path / "cut", progress=False).run(on_year_end=interrupt)
        before = len(server.chat_requests)
        resumed = Runner(config(server.url, "economy.years=3"), tmp_path / "cut", resume=True, progress=False).run()
        return full, resumed, len(server.chat_requests) - before, tmp_path


def test_an_interrupted_language_model_run_resumes_without_repeating_calls(interrupted):
    full, resumed, calls, tmp_path = interrupted
    assert calls == 5 + 3 * 5  # us_federal's unfinished year, then no_tax's three
    assert resumed["planners"]["us_federal"]["final_welfare"] == full["planners"]["us_federal"]["final_welfare"]
    cut = pd.read_parquet(tmp_path / "cut/traces.parquet").drop(columns=["cached"])
    whole = pd.read_parquet(tmp_path / "full/traces.parquet").drop(columns=["cached"])
    assert cut.equals(whole)


def test_usage_adds_up_over_a_resume(interrupted):
    full, resumed, _, _ = interrupted
    for counter in ("requests", "http_calls", "prompt_tokens", "completion_tokens"):
        assert resumed["llm"]["usage"][counter] == full["llm"]["usage"][counter] > 0


# ---- a server that cannot serve: the run stops, keeps what finished and says why ----------------------


def write_config(path, url, *extra):
    lines = [
        "name: broken", "population: {n_agents: 5}", "economy: {years: 2, steps_per_year: 1}",
        "workers: {kind: llm}", "planners: [{kind: us_federal}]",
        f"llm: {{base_urls: ['{url}'], api_key_env: LLM_ECONOMIST_TEST_KEY, timeout_s: 0.5, max_retries: 1, concurrency: 2}}",
        *extra,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args, cwd):
    env = {**os.environ, "LLM_ECONOMIST_TEST_KEY": KEY}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "llm_economist.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env=env)
    return done, time.perf_counter() - started


def test_a_server_that_fails_every_request_stops_the_run_with_exit_3_and_a_complete_report(tmp_path):
    with FaultServer(default="500") as server:
        config = write_config(tmp_path / "broken.yaml", server.url)
        done, _ = cli("compare", str(config), "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "fell back" in done.stderr and "--resume" in done.stderr
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert "first period" in summary["stopped"]
    report = (tmp_path / "out/report.md").read_text()
    assert "The run stopped early." in report and "## Caveats" in report
    assert "Revenue: ." not in report and "Revenue: no planner set a policy before the run stopped." in report


def test_with_stopping_off_every_reply_falls_back_and_the_report_still_renders(tmp_path):
    with FaultServer(default="500") as server:
        config = write_config(tmp_path / "broken.yaml", server.url)
        done, _ = cli("compare", str(config), "--out", str(tmp_path / "out"), "--quiet",
                      "--set", "llm.max_consecutive_fallbacks=0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning: ") == 1 and "us_federal 100%" in done.stderr  # even with --quiet
    report = (tmp_path / "out/report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| ") and "| us_federal |" in line)
    assert "| 100.0% |" in row
    channels = report.split("## Reasoning channels")[1].split("\n## ")[0]
    assert "| us_federal | — | — | — |" in channels
    assert "us_federal: 10 of 10 language-model decisions" in report  # the caveat names the planner
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["fallback_reasons"] == {"http_500": 20}


def test_a_401_stops_the_run_within_seconds_naming_the_key_variable(tmp_path):
    with FaultServer(default="401") as server:
        config = write_config(tmp_path / "broken.yaml", server.url)
        done, seconds = cli("compare", str(config), "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
        calls = len(server.chat_requests)
    assert done.returncode == 3 and "401" in done.stderr and "LLM_ECONOMIST_TEST_KEY" in done.stderr
    assert KEY not in done.stderr and calls < 5  # not even every worker asked once: no retries
    assert seconds < 30  # most of it is starting Python and torch
    assert (tmp_path / "out/report.md").is_file()


def test_nothing_listening_stops_the_run_naming_the_url(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    done, _ = cli("compare", str(write_config(tmp_path / "broken.yaml", url)), "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert done.returncode == 3 and url in done.stderr


def test_some_failures_are_counted_by_reason_in_traces_summary_and_headline(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ECONOMIST_TEST_KEY", KEY)
    # No retries: one decision gets a reply with no JSON in it, another an HTTP 500; the rest are fine.
    with FaultServer(["malformed", "500"], content=DECISION) as server:
        summary = run_comparison(config(server.url, "llm.max_retries=0"), tmp_path, progress=False)
    planner = summary["planners"]["us_federal"]
    assert planner["fallback_reasons"] == {"invalid_json": 1, "http_500": 1} and planner["decisions"] == 10
    assert summary["fallback_reasons"] == {"invalid_json": 1, "http_500": 1}
    traces = pd.read_parquet(tmp_path / "seed_0/traces.parquet")
    reasons = sorted(traces.loc[traces["fallback"], "fallback_reason"])
    assert reasons[0].startswith("http_500: ")
    assert reasons[1].startswith("invalid_json: ") and "forty hours" in reasons[1]  # the offending reply
    table = comparison_table(summary)
    assert table.set_index("Planner").loc["us_federal", "Fallbacks"] == "20.0%"
    assert any(c.startswith("us_federal: 2 of 10") for c in summary["caveats"])


def test_a_stopped_run_resumes_against_a_working_server(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ECONOMIST_TEST_KEY", KEY)
    # Year 0 of us_federal (5 decisions) succeeds, then the key is refused.
    with FaultServer(["ok"] * 5, default="401", content=DECISION) as broken:
        stopped = run_comparison(config(broken.url), tmp_path, progress=False)
    assert "401" in stopped["stopped"] and stopped["planners"]["us_federal"]["years"] == [1]
    assert "no_tax" not in stopped["planners"]
    with FaultServer(content=DECISION) as fixed:
        resumed = run_comparison(config(fixed.url), tmp_path, resume=True, progress=False)
        assert len(fixed.chat_requests) == 5 + 2 * 5  # us_federal's last year, then no_tax's two
    assert resumed["stopped"] is None and resumed["planners"]["us_federal"]["years"] == [2]
    # Every request the servers received is counted, the stopping period's and the resumed ones.
    sent = len(broken.chat_requests)
    assert stopped["llm"]["usage"]["by_server"][broken.url]["calls"] == sent
    assert resumed["llm"]["usage"]["by_server"][broken.url]["calls"] == sent
    assert resumed["llm"]["usage"]["by_server"][fixed.url]["calls"] == len(fixed.chat_requests)


def test_a_refusing_server_in_a_pool_is_retired_and_the_run_finishes_on_the_other(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ECONOMIST_TEST_KEY", KEY)
    with FaultServer(default="401") as refusing, FaultServer(content=DECISION) as healthy:
        cfg = config(refusing.url, "llm.concurrency=1")
        cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"base_urls": (refusing.url, healthy.url)})})
        summary = run_comparison(cfg, tmp_path, progress=False)
    assert summary["stopped"] is None and len(refusing.chat_requests) == 1
    assert all(summary["planners"][p]["worker_diagnostics"]["llm_fallbacks"] == 0 for p in ("us_federal", "no_tax"))
    assert summary["llm"]["usage"]["by_server"][refusing.url]["retired"] == 1
    assert f"| {refusing.url} | 1 | 0 | 1 | 0 | yes |" in write_report(tmp_path).read_text()


def test_a_server_stopped_mid_run_hands_its_work_to_the_other_with_no_fallbacks(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ECONOMIST_TEST_KEY", KEY)
    with FaultServer(content=DECISION, delay_s=0.02, max_requests=6) as dying, \
            FaultServer(content=DECISION, delay_s=0.02) as survivor:
        cfg = config(dying.url, "llm.concurrency=2", "economy.years=3")
        cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"base_urls": (dying.url, survivor.url)})})
        summary = run_comparison(cfg, tmp_path, progress=False)
        answered = len(dying.chat_requests), len(survivor.chat_requests)
    assert summary["stopped"] is None
    for planner in ("us_federal", "no_tax"):
        diagnostics = summary["planners"][planner]["worker_diagnostics"]
        assert diagnostics["llm_fallbacks"] == 0 and diagnostics["llm_decisions"] == 15
    usage = summary["llm"]["usage"]
    dead, alive = usage["by_server"][dying.url], usage["by_server"][survivor.url]
    assert answered[0] == 6 and usage["failures"] == 0
    assert dead["failures"] >= 1 and dead["failovers"] == dead["failures"] and dead["rested"] >= 1
    assert alive == {"calls": answered[1], "failures": 0, "failovers": 0, "rested": 0, "retired": 0}
    assert answered[0] + answered[1] == 30  # one answer per decision, each from one of the two
    report = write_report(tmp_path).read_text()
    assert "| Server | Calls | Failures | Moved to another server | Out of rotation | Retired" in report
    assert f"| {dying.url} | {dead['calls']} | {dead['failures']} |" in report


def test_the_fallback_stop_says_how_the_streak_stands_to_the_limit():
    from llm_economist.llm import LLMUnavailable
    from llm_economist.llm.fallbacks import FallbackMonitor

    monitor = FallbackMonitor(3)
    monitor.observe(["timeout", None])  # a usable reply ends a streak
    with pytest.raises(LLMUnavailable, match=r"^5 language-model decisions in a row fell back \(last: schema\), past the limit "
                                             r"llm.max_consecutive_fallbacks = 3 \(decisions are counted a period at a time\)"):
        monitor.observe(["timeout"] * 4 + ["schema"])
    exact = FallbackMonitor(2)
    with pytest.raises(LLMUnavailable, match="^2 language-model decisions in a row fell back .*, reaching the limit"):
        exact.observe([None, "timeout", "timeout"])
    assert FallbackMonitor(0).observe(["timeout"] * 50) is None  # 0: never stops
