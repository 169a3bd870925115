"""Time the social-graph builder at 1e3, 1e5 and 1e6 agents; prints one JSON object.

Inputs are synthetic with census-like cardinalities: about 800 occupations (skewed sizes),
51 states (skewed sizes), ages 18-80, 16 education levels, households of 1-2 people.
Peak RSS is the process maximum (resource.getrusage), so it is read after the largest build.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import torch

from llm_economist.personas.graph import build_social_graph

SIZES = (1_000, 100_000, 1_000_000)
SEED = 0
N_OCCUPATIONS = 800
N_STATES = 51
N_EDUCATION = 16


def synthetic_population(n: int, seed: int) -> dict[str, np.ndarray]:
    """Per-agent arrays with realistic cardinalities and skewed group sizes."""
    rng = np.random.default_rng(seed)
    occ_weights = 1.0 / np.arange(1, N_OCCUPATIONS + 1)  # Zipf-like: a few large occupations
    state_weights = rng.lognormal(0.0, 1.0, N_STATES)  # a few populous states
    household_size = rng.integers(1, 3, n)  # 1 or 2 people; the tail is trimmed to n agents
    household_id = np.repeat(np.arange(n), household_size)[:n]
    return {
        "household_id": household_id,
        "occupation": rng.choice(N_OCCUPATIONS, n, p=occ_weights / occ_weights.sum()),
        "state": rng.choice(N_STATES, n, p=state_weights / state_weights.sum()),
        "age": rng.integers(18, 81, n),
        "education": rng.integers(0, N_EDUCATION, n),
    }


def peak_rss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return kb / (1024**3 if sys.platform == "darwin" else 1024**2)


def main() -> None:
    result: dict[str, float | int | str] = {"torch_threads": torch.get_num_threads()}
    for n in SIZES:
        arrays = synthetic_population(n, SEED)
        t0 = time.perf_counter()
        graph = build_social_graph(**arrays, seed=SEED)
        result[f"n{n}_build_s"] = round(time.perf_counter() - t0, 3)
        degree = graph.degree
        result[f"n{n}_mean_degree"] = round(degree.double().mean().item(), 3)
        result[f"n{n}_width"] = graph.width
        if n == SIZES[-1]:
            values = torch.randn(n, 16)
            t0 = time.perf_counter()
            graph.neighbour_mean(values)
            result[f"n{n}_neighbour_mean_d16_s"] = round(time.perf_counter() - t0, 3)
            result[f"n{n}_graph_mb"] = round(
                (graph.neighbours.nbytes + graph.edge_type.nbytes) / 2**20, 1
            )
            result[f"n{n}_peak_rss_gb"] = round(peak_rss_gb(), 3)
        del graph, arrays
    print(json.dumps(result))


if __name__ == "__main__":
    main()
