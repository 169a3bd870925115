"""Sweeps and distillation on Ray against independent truth: every cell is the comparison `compare`
itself produces for that setting and seed, a rerun reuses finished cells, and a real two-node Ray
cluster gives the same numbers as running the work one after another, with cells on both nodes,
also when a worker process dies mid-task."""

import json
import socket
import threading
import time

import pandas as pd
import psutil
import pytest
from click.testing import CliRunner

from llm_economist.cli import main
from llm_economist.studies.comparison import run_comparison
from llm_economist.config import ConfigError
from llm_economist.planner_factory import load_config
from llm_economist.distill.dataset import collect
from llm_economist.studies.sweep import parse_grid, run_sweep
from fault_server import FaultServer
from ray_cluster import RayCluster

BASE = ["population.n_agents=60", "economy.years=1", "economy.steps_per_year=1", "workers.kind=rational",
        "planners=[{kind: saez}, {kind: search, budget: 20, batch: 10}]"]
GRID = {"economy.elasticity": ["0.2", "0.5"]}
WHERE = ["node", "reused", "wall_s"]  # where and how a cell ran: everything else must match


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequential")
    return out, run_sweep(None, GRID, 2, out, BASE, address="none", progress=False)


def test_every_cell_is_the_comparison_of_its_setting_and_seed(sequential, tmp_path):
    out, table = sequential
    assert len(table) == 2 * 2 * 3  # points x seeds x (two planners and no tax)
    alone = run_comparison(load_config(None, [*BASE, "economy.elasticity=0.5", "seed=1"]), tmp_path, progress=False)
    rows = table[(table["economy.elasticity"] == 0.5) & (table["seed"] == 1)].set_index("planner")
    for label, p in alone["planners"].items():
        assert rows.loc[label, "welfare"] == p["per_seed"]["welfare"][0]
    # A larger elasticity makes labour respond more: Saez sets lower top rates, and the table shows it.
    assert (table[table["planner"] == "saez"].groupby("economy.elasticity")["mean_hours"].mean().is_monotonic_increasing)
    text = (out / "sweep.md").read_text()
    assert "## economy.elasticity" in text and "| 0.5 |" in text and (out / "sweep_economy_elasticity.png").is_file()


def test_a_rerun_reuses_finished_cells_and_reruns_a_missing_one(sequential):
    out, table = sequential
    (out / "cells" / "p001_seed1" / "summary.json").unlink()
    again = run_sweep(None, GRID, 2, out, BASE, address="none", progress=False)
    reused = again.drop_duplicates("cell").set_index("cell")["reused"]
    assert not reused["p001_seed1"] and reused.drop("p001_seed1").all()
    pd.testing.assert_frame_equal(again.drop(columns=WHERE), table.drop(columns=WHERE))


def test_bad_grids_are_named_errors():
    with pytest.raises(ConfigError, match="--grid 'economy.elasticity': expected KEY=V1,V2"):
        parse_grid(["economy.elasticity"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["seed=1", "seed=2"])
    result = CliRunner().invoke(main, ["sweep", "experiments/configs/quickstart.yaml", "--grid", "economy.elasticity=-1",
                                       "--address", "none"])
    assert result.exit_code == 2 and "economy.elasticity" in result.output


def test_an_address_where_no_cluster_listens_is_refused_quickly_and_named():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", "experiments/configs/getting_started.yaml", "--grid", "economy.elasticity=0.2,0.5",
                                       "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2 and f"--address 127.0.0.1:{port}: nothing accepts connections there" in result.output
    assert time.monotonic() - start < 30


def test_address_auto_with_no_cluster_running_is_refused_quickly_and_named(monkeypatch, tmp_path):
    """Before the module's cluster starts: `auto` finds nothing to join."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    start = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", "experiments/configs/getting_started.yaml", "--grid", "economy.elasticity=0.2,0.5",
                                       "--address", "auto", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--address auto: no Ray cluster found" in result.output and "ray start --head" in result.output
    assert time.monotonic() - start < 30


@pytest.fixture(scope="module")
def cluster():
    with RayCluster() as running:
        yield running


def test_a_two_node_ray_cluster_runs_cells_on_both_nodes_with_the_same_results(sequential, cluster, tmp_path):
    _, table = sequential
    on_ray = run_sweep(None, GRID, 2, tmp_path, BASE, address=cluster.address, progress=False)
    assert on_ray.drop_duplicates("cell")["node"].nunique() == 2
    pd.testing.assert_frame_equal(on_ray.drop(columns=WHERE), table.drop(columns=WHERE), check_exact=True)
    summary = json.loads((tmp_path / "cells" / "p000_seed0" / "summary.json").read_text())
    assert summary["seeds"] == [0]


def test_a_worker_killed_mid_task_is_retried_and_the_sweep_completes(sequential, cluster, tmp_path):
    _, table = sequential
    killed = []

    def kill_one_running_task(cluster: RayCluster, stop: threading.Event) -> None:
        while not stop.is_set() and not killed:
            for process in cluster.descendants():
                try:
                    if process.name().startswith("ray::_timed") or "ray::_timed" in " ".join(process.cmdline()):
                        process.kill()
                        killed.append(process.pid)
                        return
                except psutil.NoSuchProcess:
                    continue
            time.sleep(0.02)

    stop = threading.Event()
    killer = threading.Thread(target=kill_one_running_task, args=(cluster, stop))
    killer.start()
    try:
        on_ray = run_sweep(None, GRID, 2, tmp_path, BASE, address=cluster.address, progress=False)
    finally:
        stop.set()
        killer.join()
    assert killed, "no task was caught running"
    pd.testing.assert_frame_equal(on_ray.drop(columns=WHERE), table.drop(columns=WHERE), check_exact=True)


def test_distillation_episodes_collected_on_the_cluster_are_the_ones_collected_here(cluster, tmp_path):
    config = load_config(None, ["population.n_agents=30", "economy.years=2", "economy.steps_per_year=1", "workers.kind=bounded",
                                "workers.hour_bins=9", "workers.persistence=0.3", "workers.social_pull=0.2",
                                "planners=[{kind: random}]"])
    collect(config, tmp_path / "here", 4, progress=False)
    collect(config, tmp_path / "ray", 4, progress=False, address=cluster.address)
    for episode in range(4):
        name = f"episode_{episode:05d}.parquet"
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray" / name), pd.read_parquet(tmp_path / "here" / name),
                                      check_exact=True)


def test_language_model_episodes_collected_on_the_cluster_are_the_ones_collected_here(cluster, tmp_path):
    def decision(body: dict) -> str:  # hours that depend on the prompt, so every episode differs
        hours = 10 * (sum(map(ord, json.dumps(body["messages"]))) % 9)
        return json.dumps({"hours": hours, "fairness": 3, "trust": 4, "stress": 2, "reason": "r", "message": "m"})

    with FaultServer(content=decision) as server:
        config = load_config(None, ["population.n_agents=4", "economy.years=2", "economy.steps_per_year=1",
                                    "workers.kind=llm", f"llm.base_urls=[{server.url}]", "planners=[{kind: random}]"])
        collect(config, tmp_path / "here", 3, progress=False)
        collect(config, tmp_path / "ray", 3, progress=False, address=cluster.address)
    for episode in range(3):
        name = f"episode_{episode:05d}.parquet"
        ray_frame, here = pd.read_parquet(tmp_path / "ray" / name), pd.read_parquet(tmp_path / "here" / name)
        assert not here["fallback"].any() and here["stated_hours"].nunique() > 1
        pd.testing.assert_frame_equal(ray_frame, here, check_exact=True)


def test_compare_seeds_on_the_cluster_are_the_seeds_run_here(cluster, tmp_path):
    config = load_config(None, [*BASE, "seeds=3"])
    here = run_comparison(config, tmp_path / "here", progress=False)
    on_ray = run_comparison(config, tmp_path / "ray", progress=False, address=cluster.address)
    for label, p in here["planners"].items():
        assert on_ray["planners"][label]["per_seed"] == p["per_seed"]
    for name in ("metrics.csv", "parameters.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ray" / name), pd.read_csv(tmp_path / "here" / name),
                                      check_exact=True)


def test_language_model_cells_share_one_embedded_server_per_node(cluster, tmp_path):
    tiny = ["population.n_agents=2", "economy.years=1", "economy.steps_per_year=1", "workers.kind=llm",
            "llm.concurrency=2", "planners=[{kind: us_federal}]"]
    table = run_sweep(None, {"economy.elasticity": ["0.2", "0.5"]}, 2, tmp_path, tiny, address=cluster.address,
                      progress=False)
    cells = table.drop_duplicates("cell").set_index("cell")
    servers = {}  # cell -> the one server its calls went to
    for cell in cells.index:
        summary = json.loads((tmp_path / "cells" / cell / "summary.json").read_text())
        used = summary["llm"]["usage"]["by_server"]
        assert len(used) == 1 and summary["llm"]["usage"]["failures"] == 0
        servers[cell] = next(iter(used))
    by_node = cells.assign(server=pd.Series(servers)).groupby("node")["server"].nunique()
    assert len(by_node) == 2 and (by_node == 1).all()  # every task on a node used that node's one server
    assert len(set(servers.values())) == len(by_node)  # and each node had its own
