"""Every model-based planner against 10K, 100K and 1M surrogate workers, planning on a stratified
sample of households (`population.planning_agents`) where the population is larger than it, and
what the sample costs: at the size where both run, each planner also plans on the whole
population, and both mechanisms are played on the whole population.

    python experiments/scaling/run_planners.py [--sizes 10000,100000,1000000] [--sample 10000] [--full-at 100000]
        [--device cuda]

Workers: the shipped `bounded_social` surrogate (distilled from bounded workers with habit and
imitation, which respond to taxes), three rebated brackets, two tax years of one period. Planners:
Saez, search (400 evaluations), grid (11 points a rate, refined), gradient and PPO (4,096 steps).
For each size and planner: the wall time to plan, the welfare its mechanism reaches on the whole
population (the population model's fixed point) and, at `--full-at`, the gain over no tax of the
sampled plan as a share of the full plan's, in points. Resumable: each finished cell is kept in
runs/scaling_planners/cells.json; the table goes to runs/scaling_planners/table.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from llm_economist.factory import build_setup, make_config_mechanism
from llm_economist.planner_factory import load_config, make_planner
from llm_economist.workers.surrogate import shipped_model_path

PLANNERS = ("[{kind: saez}, {kind: search, budget: 400}, {kind: grid, points_per_parameter: 11}, {kind: gradient}, "
            "{kind: ppo, timesteps: 4096, n_steps: 256}]")
SETTINGS = ["workers.kind=surrogate", f"workers.surrogate_model={shipped_model_path('bounded_social')}", "mechanism.name=three_bracket",
            "economy.years=2", "economy.steps_per_year=1", f"planners={PLANNERS}"]


def cells_for(n: int, sample: int, full: bool, device: str, done: dict, out: Path) -> None:
    """Plan with every planner at size n (on the sample, and on everyone when `full`), each cell saved as it ends."""
    config = load_config(None, [*SETTINGS, f"population.n_agents={n}", f"population.planning_agents={sample}", f"workers.device={device}"])
    if all(f"{n}/{p.name}/{on}" in done for p in config.planners for on in ("sample", *(("all",) if full else ()))):
        return
    started = time.perf_counter()
    setup = build_setup(config)
    build_s = time.perf_counter() - started
    whole = setup.model
    models = {"sample": setup.planning_model, **({"all": whole} if full else {})}
    mechanism = make_config_mechanism(config)
    no_tax = float(whole.evaluate(mechanism, torch.zeros_like(mechanism.initial()).unsqueeze(0))[0])
    for planner in config.planners:
        for on, model in models.items():
            key = f"{n}/{planner.name}/{on}"
            if key in done:
                continue
            started = time.perf_counter()
            theta = make_planner(planner, config).propose(0, [], model)
            plan_s = time.perf_counter() - started
            welfare = float(whole.evaluate(mechanism, theta.unsqueeze(0))[0])
            done[key] = {"n_agents": n, "planner": planner.name, "device": device, "planned_on": int(model.wage.shape[0]),
                         "plan_s": round(plan_s, 1), "build_s": round(build_s, 1), "welfare": welfare, "no_tax_welfare": no_tax,
                         "theta": [round(float(x), 4) for x in theta]}
            (out / "cells.json").write_text(json.dumps(done, indent=1))
            print(json.dumps({key: done[key]}), flush=True)


def table(done: dict, full_at: int) -> str:
    sizes = sorted({c["n_agents"] for c in done.values()})
    planners = list(dict.fromkeys(c["planner"] for c in done.values()))
    lines = ["| planner | " + " | ".join(f"plan s at {n:,}" for n in sizes) + f" | gain of the sampled plan at {full_at:,} (% of the full plan's) |",
             "|---|" + "---:|" * (len(sizes) + 1)]
    for p in planners:
        times = [done.get(f"{n}/{p}/sample", {}).get("plan_s") for n in sizes]
        full, sampled = done.get(f"{full_at}/{p}/all"), done.get(f"{full_at}/{p}/sample")
        share = "" if not (full and sampled) else f"{100 * (sampled['welfare'] - sampled['no_tax_welfare']) / (full['welfare'] - full['no_tax_welfare']):.2f}"
        lines.append(f"| {p} | " + " | ".join("" if t is None else f"{t:,.1f}" for t in times) + f" | {share} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--sample", type=int, default=10_000, help="population.planning_agents")
    parser.add_argument("--full-at", type=int, default=100_000, help="the size at which every planner also plans on everyone")
    parser.add_argument("--device", default="cpu", help="workers.device: where the surrogate workers run (cpu or cuda)")
    parser.add_argument("--out", type=Path, default=Path("runs/scaling_planners"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    done = json.loads((args.out / "cells.json").read_text()) if (args.out / "cells.json").is_file() else {}
    for n in (int(x) for x in args.sizes.split(",")):
        cells_for(n, args.sample, n == args.full_at, args.device, done, args.out)
    text = table(done, args.full_at)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
