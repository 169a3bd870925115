"""Language-model worker decisions per second against the embedded server; prints one JSON object.

For 20 and 100 census personas, one period of decisions is made three ways, all in this run
and with the response cache off: (a) one call per agent, sequentially, as a loop over agents
would; (b) our concurrent path (all agents' calls in flight up to the concurrency limit);
(c) archetypes (one call per archetype, K = N / 5). Also: mean prompt tokens per decision.
"""

from __future__ import annotations

import json
import time

import torch

from llm_economist.economy import Preferences, TaxSchedule, calibrate_psi
from llm_economist.llm import LLMSettings, open_client
from llm_economist.mechanisms import make_mechanism
from llm_economist.personas import population_graph, sample_population
from llm_economist.workers import Observation
from llm_economist.workers.llm import LLMWorkers

SIZES = (20, 100)
CONCURRENCY = 8


def decide(n: int, concurrency: int, archetypes: int) -> tuple[float, float, float]:
    """(decisions per second, calls made, mean prompt tokens per call) for one period."""
    population = sample_population(n, seed=0)
    wage = population.wage()
    prefs = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences())
    mechanism = make_mechanism("three_bracket")
    policy = mechanism.compile(mechanism.initial())
    with open_client(LLMSettings(concurrency=concurrency, cache_path=None)) as client:
        workers = LLMWorkers(population, population_graph(population, 0), client, prefs, archetypes=archetypes, archetype_check=0)
        obs = Observation(wage, policy, torch.zeros(1, dtype=wage.dtype), (), None, 0, 0)
        start = time.perf_counter()
        decisions = workers.act(obs, torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - start
    calls = decisions.diagnostics["llm_decisions"]
    return n / seconds, calls, decisions.diagnostics["llm_prompt_tokens"] / calls


def main() -> None:
    result: dict[str, float] = {}
    prompt_tokens, calls_total = 0.0, 0.0
    for n in SIZES:
        sequential, calls, tokens = decide(n, 1, 0)
        concurrent, _, _ = decide(n, CONCURRENCY, 0)
        archetype, archetype_calls, _ = decide(n, CONCURRENCY, max(1, n // 5))
        prompt_tokens += tokens * calls
        calls_total += calls
        result[f"n{n}_sequential_decisions_per_s"] = round(sequential, 2)
        result[f"n{n}_concurrent_decisions_per_s"] = round(concurrent, 2)
        result[f"n{n}_archetype_decisions_per_s"] = round(archetype, 2)
        result[f"n{n}_archetype_calls"] = int(archetype_calls)
        result[f"n{n}_concurrent_speedup"] = round(concurrent / sequential, 2)
        result[f"n{n}_archetype_speedup"] = round(archetype / sequential, 2)
    result["mean_prompt_tokens_per_decision"] = round(prompt_tokens / calls_total, 1)
    result["concurrency"] = CONCURRENCY
    print(json.dumps(result))


if __name__ == "__main__":
    main()
