"""Small compare runs whose outputs are pinned to files in tests/pinned/: what the tool computes and
writes must not change by accident. After an intended change, regenerate them with
`LLM_ECONOMIST_REPIN=1 pytest tests/test_pinned_outputs.py` and review the diff. Numbers match to
RELATIVE digits, not to the last bit: the order of a floating-point sum differs between CPUs."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import pandas as pd

from fault_server import FaultServer
from llm_economist.studies.comparison import run_comparison
from llm_economist.planner_factory import load_config

PINNED = Path(__file__).parent / "pinned"
REPIN = os.environ.get("LLM_ECONOMIST_REPIN") == "1"
RELATIVE = 1e-9
DECISION = '{"hours": 30, "fairness": 3, "trust": 4, "stress": 2, "reason": "steady week", "message": "all good"}'

BOUNDED = [
    "population.n_agents=60", "economy.years=3", "economy.steps_per_year=2", "workers.kind=bounded", "seeds=2",
    "output.trace_agents=12",
    "planners=[{kind: saez}, {kind: search, budget: 40, batch: 20}, {kind: us_federal}, {kind: random}, "
    "{kind: fixed, label: voted, parameters: [0.1, 0.1, 0.1]}]",
    "governance={every_years: 2, worker_platforms: 2, platforms: [{name: high, parameters: [0.5, 0.5, 0.5]}]}",
]
LLM = [
    "population.n_agents=4", "economy.years=2", "economy.steps_per_year=1", "workers.kind=llm",
    "llm.api_key_env=LLM_ECONOMIST_TEST_KEY", "llm.concurrency=1", "planners=[{kind: us_federal}, {kind: saez}]",
]


def outputs(out: Path) -> dict[str, str]:
    """The run's result files as text: tables, the summary (its clock readings are in timings.json), every seed's traces."""
    files = {"summary.json": json.dumps(json.loads((out / "summary.json").read_text()), indent=1, sort_keys=True)}
    for name in ("metrics.csv", "parameters.csv"):
        files[name] = (out / name).read_text()
    for seed_dir in sorted(out.glob("seed_*")):
        traces = pd.read_parquet(seed_dir / "traces.parquet").drop(columns=["cached"], errors="ignore")
        files[f"{seed_dir.name}_traces.csv"] = traces.to_csv(index=False)
    return files


def check(name: str, files: dict[str, str]) -> None:
    folder = PINNED / name
    if REPIN:
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in files.items():
            (folder / file).write_text(text)
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    for file, text in files.items():
        pinned = (folder / file).read_text()
        if file.endswith(".json"):
            assert same(json.loads(text), json.loads(pinned)), f"{name}/{file} changed"
        else:
            pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(text)), pd.read_csv(io.StringIO(pinned)),
                                          check_exact=False, rtol=RELATIVE, obj=f"{name}/{file}")


def same(a, b) -> bool:
    """Equal structure and text, numbers equal to RELATIVE."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=RELATIVE, abs_tol=1e-12)
    return a == b


def test_a_bounded_rational_comparison_with_elections_writes_the_pinned_outputs(tmp_path):
    run_comparison(load_config(None, BOUNDED), tmp_path, progress=False)
    check("bounded", outputs(tmp_path))


def test_a_language_model_comparison_writes_the_pinned_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ECONOMIST_TEST_KEY", "sk-test-pinned")
    with FaultServer(content=DECISION) as server:
        run_comparison(load_config(None, [*LLM, f"llm.base_urls=[{server.url}]"]), tmp_path, progress=False)
    files = outputs(tmp_path)
    files["summary.json"] = files["summary.json"].replace(server.url, "http://127.0.0.1:PORT/v1")
    check("llm", files)
