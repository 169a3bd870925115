"""A run with language-model workers against a faulty server: it finishes, counts retries and
fallbacks, keeps the key out of every file, and a rerun is served from the cache."""

import json

import pandas as pd
import pytest

from fault_server import FaultServer
from llm_economist.config import load_config
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
    assert len(traces) == 10  # every agent and step was settled: nothing lost
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


def test_an_interrupted_language_model_run_resumes_without_repeating_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ECONOMIST_TEST_KEY", KEY)
    with FaultServer(content=DECISION) as server:
        full = Runner(config(server.url, "economy.years=3"), tmp_path / "full", progress=False).run()

        def interrupt(run):
            if run.year == 1:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            Runner(config(server.url, "economy.years=3"), tmp_path / "cut", progress=False).run(on_year_end=interrupt)
        before = len(server.chat_requests)
        resumed = Runner(config(server.url, "economy.years=3"), tmp_path / "cut", resume=True, progress=False).run()
        assert len(server.chat_requests) - before == 2 * 5  # only the two unfinished years' decisions
    assert resumed["planners"]["us_federal"]["final_welfare"] == full["planners"]["us_federal"]["final_welfare"]
    cut = pd.read_parquet(tmp_path / "cut/traces.parquet").drop(columns=["cached"])
    whole = pd.read_parquet(tmp_path / "full/traces.parquet").drop(columns=["cached"])
    assert cut.equals(whole)
