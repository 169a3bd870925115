"""Agent-steps per second of the vectorised economy for rational workers; prints one JSON object.

A step is the whole period: every agent's exact best response to the 2024 US brackets (with the
expected rebate), taxes, the lump-sum rebate of revenue, utilities and inverse-income welfare.
Each size runs in its own process so its peak RSS is its own. Wages come from the census
sampler. `naive_n1000_*` is the same step with one Python call per agent, for the ratio.

At 1M agents two more cases run a period as the simulation plays it (`simulation.play_period`,
then welfare): `three_bracket` (the default mechanism) and `us_tax_2024` (filing statuses, child
tax credit, payroll tax, EITC, couples on joint returns facing the return above their partner's
last earnings, and an extensive margin: 19% not working). Each prints the bytes a step must move
at least (every agent's wage, filing group and partner read, hours, income, tax, consumption and
utility written) beside the machine's memory bandwidth, measured in the same run by a
STREAM-like copy, so `*_share_of_bandwidth` says how close the step is to the memory-bound limit.
Each case runs twice: with the C library's default allocator settings, and with glibc told to
keep the memory it frees (`KEEP_FREED_MEMORY`, keys `*_kept_memory_*`). By default glibc hands
large freed arrays back to the system and faults fresh pages in for the next period's, which
can double a three-bracket step; the environment variables are how a user turns that off.
"""

from __future__ import annotations

import json
import os
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


def seconds_per_step(step) -> float:
    """Mean seconds of `step` after a warm-up, over at least MIN_SECONDS and 3 steps."""
    step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < MIN_SECONDS or steps < 3:
        step()
        steps += 1
    return (time.perf_counter() - start) / steps


def measure(n: int, dtype_name: str) -> dict[str, float]:
    dtype = getattr(torch, dtype_name)
    wage, prefs, policy = _setup(n, dtype)
    transfer = [torch.zeros(1, dtype=dtype)]

    def step() -> None:
        transfer[0], _ = _step(wage, prefs, policy, transfer[0])

    seconds = seconds_per_step(step)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    key = f"n{n}_{dtype_name}"
    return {f"{key}_agent_steps_per_s": round(n / seconds), f"{key}_step_s": round(seconds, 5), f"{key}_peak_rss_gb": round(peak, 3)}


CASES = {  # mechanism and extensive margin (share of workers at 0 h under the 2024 US taxes)
    "three_bracket": ("three_bracket", 0.0),
    "us_tax_2024": ("us_tax_2024", 0.19),
}
CASE_AGENTS = 1_000_000
CALIBRATION_AGENTS = 20_000  # preferences are calibrated on the first agents, as in `_setup`
COPY_BYTES = 2**28  # 256 MiB each way: far beyond any cache
# glibc: serve every allocation from the heap and never trim it, so a period's arrays reuse the
# pages the last period's freed (mallopt(3): M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD).
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**36), "MALLOC_TOP_PAD_": str(2**30)}


def copy_bandwidth() -> float:
    """Bytes per second of a large copy (read plus write), the best of several."""
    a = torch.ones(COPY_BYTES // 8, dtype=torch.float64)
    b = torch.empty_like(a)
    b.copy_(a)
    best = min(_timed(lambda: b.copy_(a)) for _ in range(5))
    return 2 * COPY_BYTES / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_case(case: str, dtype_name: str) -> dict[str, float]:
    """One period of the case's population model at CASE_AGENTS census agents, as the simulation
    plays it (`play_period`, from a settled first period, then welfare). Preferences come from the run's calibration
    on the first CALIBRATION_AGENTS agents; fixed costs of working are drawn for everyone from the
    log-normal law that calibration found."""
    from dataclasses import replace

    from llm_economist.config import EconomyConfig
    from llm_economist.factory import calibrated_preferences, population_units
    from llm_economist.mechanisms import make_mechanism
    from llm_economist.personas import sample_population
    from llm_economist.population_model import PopulationModel
    from llm_economist.simulation import Carried, play_period
    from llm_economist.workers import RationalWorkers

    name, share = CASES[case]
    dtype = getattr(torch, dtype_name)
    population = sample_population(CASE_AGENTS, seed=0)
    wage, units = population.wage(dtype=dtype), population_units(population)
    economy = EconomyConfig(share_not_working=share, dtype=dtype_name)
    calibration = population.subset(range(CALIBRATION_AGENTS))
    prefs, found = calibrated_preferences(economy, calibration.wage(), 0, population_units(calibration))
    if share > 0:
        draws = torch.randn(CASE_AGENTS, generator=torch.Generator().manual_seed(0), dtype=dtype)
        prefs = replace(prefs, fixed_cost=found["fixed_cost_median"] * torch.exp(found["fixed_cost_log_sd"] * draws))
    mechanism = make_mechanism(name)
    by_filing = getattr(mechanism, "by_filing", False)
    model = PopulationModel(wage, prefs, RationalWorkers(prefs), units=units if by_filing else None)
    policy = mechanism.compile(mechanism.initial().to(dtype))
    generator = torch.Generator().manual_seed(0)
    _, carried = play_period(model, policy, Carried(), 0, 0, 0, generator)
    seconds = seconds_per_step(lambda: model.welfare(play_period(model, policy, carried, 0, 1, 1, generator)[0].outcome))
    size = wage.element_size()
    moved = CASE_AGENTS * (size + (16 if by_filing else 0) + 5 * size)
    key = f"n{CASE_AGENTS}_{case}_{dtype_name}"
    return {f"{key}_agent_steps_per_s": round(CASE_AGENTS / seconds), f"{key}_step_s": round(seconds, 5),
            f"{key}_min_bytes_per_step": moved, f"{key}_min_bytes_per_s": round(moved / seconds)}


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


def _child(case, dtype_name: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """One size or case in a fresh process (so its peak memory is its own), with `env` added."""
    out = subprocess.run([sys.executable, __file__, str(case), dtype_name], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 3:  # child process: one size or case
        child = measure_case(sys.argv[1], sys.argv[2]) if sys.argv[1] in CASES else measure(int(sys.argv[1]), sys.argv[2])
        print(json.dumps(child))
        return
    result: dict[str, float] = {"torch_threads": torch.get_num_threads(), "copy_bandwidth_bytes_per_s": round(copy_bandwidth())}
    for dtype_name in DTYPES:
        for case in (*SIZES, *CASES):
            result.update(_child(case, dtype_name))
        for case in CASES:
            key = f"n{CASE_AGENTS}_{case}_{dtype_name}"
            kept = {name.replace(key, f"{key}_kept_memory"): value for name, value in _child(case, dtype_name, KEEP_FREED_MEMORY).items()}
            result.update(kept)
            for variant in (key, f"{key}_kept_memory"):
                result[f"{variant}_share_of_bandwidth"] = round(result[f"{variant}_min_bytes_per_s"] / result["copy_bandwidth_bytes_per_s"], 4)
    result.update(measure_naive())
    vectorised = result["n1000_float64_agent_steps_per_s"]
    result["n1000_float64_speedup_vs_naive"] = round(vectorised / result["naive_n1000_float64_agent_steps_per_s"], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
