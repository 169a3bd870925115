"""A CPU-bound sweep run one cell after another in this process, then as Ray tasks on a local
instance with two workers, side by side in one run; prints one JSON object.

Cells: rational workers, a three-bracket schedule found by search, at 4 elasticities x 2 seeds,
in two cases. `n1000` (1,000 workers, 4,000 evaluations) is CPU-bound: a batch of 40 candidate
schedules over 1,000 workers stays in each core's cache. `n20000` (20,000 workers, 400
evaluations) is memory-bound: its tensors (6.4 MB each) do not, and two cells at once share the
memory bandwidth.
Ray gives each one-CPU task one thread (OMP_NUM_THREADS=1), so the sequential run is timed with
one torch thread too (`sequential_cells_per_s`, the base of the speed-up: what the executor adds)
and with torch's default threads (`sequential_all_threads_cells_per_s`: what a user without Ray
gets from this machine).
`processes_2_cells_per_s` runs the same cells in two plain worker processes (one thread each, no
Ray), the ceiling this machine gives two parallel cells: Ray's own cost is the gap between the two.
`python_loop_processes_2_speedup` times a pure-Python loop (no memory traffic, no torch) on one
process and on two: what the machine's two cores give any two parallel jobs.
`ray_startup_s` is the time from `ray.init` until every worker has imported the package (the
instance and warm workers); `ray_cells_per_s` counts from submitting the first cell, on that warm
instance, so the two figures add up to what a one-off sweep pays. Each run writes into its own temporary
directory, so nothing is reused between them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import ray
import torch

from llm_economist.studies.sweep import cell_config, grid_cells, run_cell, run_sweep

CASES = {  # case -> (workers, search evaluations)
    "n1000": (1000, 4000),
    "n20000": (20000, 400),
}
GRID = {"economy.elasticity": ["0.2", "0.3", "0.4", "0.5"]}
SEEDS = 2
WORKERS = 2


@ray.remote(num_cpus=1)
def warm() -> None:
    """Import what a cell imports, and hold the worker long enough that each warms its own."""
    import llm_economist.studies.sweep  # noqa: F401

    time.sleep(1.0)


def settings(case: str) -> list[str]:
    workers, budget = CASES[case]
    return [f"population.n_agents={workers}", "economy.years=1", "economy.steps_per_year=1", "workers.kind=rational",
            f"planners=[{{kind: search, budget: {budget}, batch: 40}}]"]


def timed_sweep(case: str, address: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        table = run_sweep(None, GRID, SEEDS, out, settings(case), address=address, progress=False)
        return table["cell"].nunique() / (time.perf_counter() - started)


def one_thread() -> None:
    torch.set_num_threads(1)
    import llm_economist.studies.sweep  # noqa: F401  (warm, as the Ray workers are)


def timed_processes(case: str) -> float:
    """The cells on two plain processes, each cell one call of `run_cell` as a Ray task makes it."""
    cells = grid_cells(GRID, list(range(SEEDS)))
    os.environ["OMP_NUM_THREADS"] = "1"  # what Ray gives its one-CPU workers; spawned processes read it
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as out, ProcessPoolExecutor(WORKERS, spawn, initializer=one_thread) as pool:
        list(pool.map(time.sleep, [0.5] * WORKERS))  # both workers started and warm
        started = time.perf_counter()
        jobs = [pool.submit(run_cell, cell_config(None, settings(case), cell), str(Path(out) / cell.name)) for cell in cells]
        for job in jobs:
            job.result()
        rate = len(cells) / (time.perf_counter() - started)
    del os.environ["OMP_NUM_THREADS"]
    return rate


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def python_loop_speedup(jobs: int = 4, n: int = 20_000_000) -> float:
    """Time of `jobs` loops on one process over their time on two."""
    spawn = multiprocessing.get_context("spawn")
    times = []
    for workers in (1, WORKERS):
        with ProcessPoolExecutor(workers, spawn) as pool:
            list(pool.map(time.sleep, [0.5] * workers))
            started = time.perf_counter()
            list(pool.map(spin, [n] * jobs))
            times.append(time.perf_counter() - started)
    return times[0] / times[1]


if __name__ == "__main__":
    figures: dict = {"cells": len(GRID["economy.elasticity"]) * SEEDS, "python_loop_processes_2_speedup": round(python_loop_speedup(), 3)}
    threads = torch.get_num_threads()
    alone: dict[str, tuple[float, float, float]] = {}  # case -> (one thread, all threads, two processes) cells/s
    for case in CASES:
        torch.set_num_threads(threads)
        all_threads = timed_sweep(case, "none")
        torch.set_num_threads(1)
        sequential = timed_sweep(case, "none")
        processes = timed_processes(case)
        figures.update({
            f"{case}_sequential_cells_per_s": round(sequential, 4),
            f"{case}_sequential_all_threads_cells_per_s": round(all_threads, 4),
            f"{case}_processes_{WORKERS}_speedup": round(processes / sequential, 3),
        })
        alone[case] = (sequential, all_threads, processes)
    torch.set_num_threads(threads)
    started = time.perf_counter()
    ray.init(num_cpus=WORKERS, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.get([warm.remote() for _ in range(WORKERS)])
    figures["ray_startup_s"] = round(time.perf_counter() - started, 2)
    for case in CASES:
        sequential, all_threads, processes = alone[case]
        parallel = timed_sweep(case, "local")  # the instance started above
        figures.update({
            f"{case}_ray_{WORKERS}_workers_cells_per_s": round(parallel, 4),
            f"{case}_ray_{WORKERS}_workers_speedup": round(parallel / sequential, 3),
            f"{case}_ray_{WORKERS}_workers_speedup_over_all_threads": round(parallel / all_threads, 3),
            f"{case}_ray_{WORKERS}_workers_over_processes": round(parallel / processes, 3),
        })
    ray.shutdown()
    print(json.dumps(figures))
