"""Agent-steps per second of the vectorised economy for rational workers; prints one JSON object.

A step is the whole period: every agent's exact best response to the 2024 US brackets (with the
expected rebate), taxes, the lump-sum rebate of revenue, utilities and inverse-income welfare.
Each size runs in its own process so its peak RSS is its own. Wages come from the census
sampler. `naive_n1000_*` is the same step with one Python call per agent, for the ratio.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

SIZES = (1_000, 100_000, 1_000_000)
DTYPES = ("float64", "float32")
MIN_SECONDS = 2.0


def _setup(n: int, dtype: torch.dtype):
    from llm_economist.economy import Preferences, TaxSchedule, calibrate_psi
    from llm_economist.mechanisms import make_mechanism
    from llm_economist.personas import sample_population

    wage = sample_population(n, seed=0).wage(dtype=dtype)
    prefs = calibrate_psi(wage[:20_000].double(), TaxSchedule.us_federal_2024(), Preferences())
    mechanism = make_mechanism("us_federal_2024")
    return wage, prefs, mechanism.compile(mechanism.initial())


def _step(wage, prefs, policy, transfer):
    from llm_economist.economy import best_response_hours, settle, social_welfare

    hours = best_response_hours(wage, policy.schedule, transfer, prefs)
    outcome = settle(wage, hours, policy, prefs)
    return outcome.transfer, social_welfare(outcome, "inverse_income")


def measure(n: int, dtype_name: str) -> dict[str, float]:
    dtype = getattr(torch, dtype_name)
    wage, prefs, policy = _setup(n, dtype)
    transfer = torch.zeros(1, dtype=dtype)
    transfer, _ = _step(wage, prefs, policy, transfer)  # warm-up
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < MIN_SECONDS or steps < 3:
        transfer, _ = _step(wage, prefs, policy, transfer)
        steps += 1
    seconds = (time.perf_counter() - start) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    key = f"n{n}_{dtype_name}"
    return {f"{key}_agent_steps_per_s": round(n / seconds), f"{key}_step_s": round(seconds, 5), f"{key}_peak_rss_gb": round(peak, 3)}


def measure_naive(n: int = 1_000) -> dict[str, float]:
    """One Python call per agent, as a loop-over-agents simulator would do."""
    from llm_economist.economy import best_response_hours

    wage, prefs, policy = _setup(n, torch.float64)
    start = time.perf_counter()
    hours = torch.stack([best_response_hours(wage[i : i + 1], policy.schedule, 0.0, prefs)[0] for i in range(n)])
    from llm_economist.economy import settle, social_welfare

    social_welfare(settle(wage, hours, policy, prefs), "inverse_income")
    seconds = time.perf_counter() - start
    return {f"naive_n{n}_float64_agent_steps_per_s": round(n / seconds)}


def main() -> None:
    if len(sys.argv) == 3:  # child process: one case
        print(json.dumps(measure(int(sys.argv[1]), sys.argv[2])))
        return
    result: dict[str, float] = {"torch_threads": torch.get_num_threads()}
    for dtype_name in DTYPES:
        for n in SIZES:
            out = subprocess.run([sys.executable, __file__, str(n), dtype_name], capture_output=True, text=True, check=True)
            result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    result.update(measure_naive())
    vectorised = result["n1000_float64_agent_steps_per_s"]
    result["n1000_float64_speedup_vs_naive"] = round(vectorised / result["naive_n1000_float64_agent_steps_per_s"], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
