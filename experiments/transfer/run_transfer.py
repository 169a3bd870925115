"""The transfer test, run twice: planners optimised against the rational model, against the
surrogate distilled from the workers and (where the workers have a population model of their own)
against the workers themselves, each mechanism judged on fresh populations of the real workers.

One command reruns each:  python experiments/transfer/run_transfer.py bounded|llm|tuned [SEEDS [WORKERS]]
Results go to runs/transfer_<run>/ (table.md, summary.json, a seed directory each), or
runs/transfer_<run>_<WORKERS>/ when the mechanisms are judged on another number of workers than
the run's; an interrupted run continues where it stopped.

- bounded: the real workers are bounded-rational with habit and imitation, the population the
  shipped `bounded_social` surrogate was distilled from (experiments/distill/bounded.yaml, seeds
  2000-2149); the truth is known, so gain captured is read against the best mechanism optimised on
  the workers themselves.
- llm: the real workers are the embedded language model's (experiments/distill/llm_embedded.yaml,
  seeds 1000-1017), judged against the best mechanism found; planners cannot optimise against the
  language-model workers themselves (their population model is the rational stand-in). 31 min
  for 3 seeds on 2 cores.
- tuned: the whole chain through a language-model population that responds. The workers are
  the embedded model with the shipped adapter (workers.llm_adapter: tuned). Their traces are
  collected (experiments/distill/llm_tuned.yaml: 30 episodes of 20 workers, seeds 6000-6029, into
  data/llm_tuned) and distilled into runs/transfer_tuned/surrogate.pt, whose wording noise is
  calibrated on the probe of the tuned workers that experiments/tune/probe_tuned.py makes
  (runs/tune_probe/tuned, seed 0; probed here first if missing); planners optimise against
  10,000 agents of the rational model, of that surrogate and of the target population the adapter
  was tuned toward (the known truth behind the tuning); each mechanism is judged on 50 tuned
  workers a seed, seeds 7000 onward, which neither the tuning (5000-5039) nor the distillation
  used. Gain is read against the best mechanism judged. Each stage's wall time goes to
  runs/transfer_tuned/chain.json and the table: about 100 min for 3 seeds on 2 cores (38 min of
  traces, then 20 min a seed, most of it judging).
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from llm_economist.planner_factory import load_config
from llm_economist.distill.calibrate import calibrate_wording
from llm_economist.distill.dataset import collect
from llm_economist.distill.train import TrainSettings, train_surrogate
from llm_economist.studies.transfer import run_transfer
from llm_economist.workers.surrogate import shipped_model_path

PLANNERS = "planners=[{kind: search, budget: 400}, {kind: gradient}, {kind: ppo, timesteps: 4096, n_steps: 256}]"
ECONOMY = ["mechanism.name=three_bracket", "economy.years=3", "economy.steps_per_year=1"]
RUNS = {
    "bounded": {
        "settings": ["population.n_agents=1000", "workers.kind=bounded", "workers.hour_bins=9", "workers.temperature=0.05",
                     "workers.persistence=0.3", "workers.social_pull=0.2", PLANNERS],
        "sources": ("rational", "surrogate", "workers"),
        "surrogate": str(shipped_model_path("bounded_social")),
    },
    "llm": {
        "settings": ["population.n_agents=20", "economy.years=2", "workers.kind=llm", "llm.temperature=0.7",
                     "planners=[{kind: search, budget: 400}, {kind: gradient}]"],
        "sources": ("rational", "surrogate"),
        "surrogate": str(shipped_model_path()),
    },
    "tuned": {
        "settings": ["seed=7000", "population.n_agents=50", "workers.kind=llm", "workers.decision_format=budget_menu",
                     "workers.memory=3", "workers.neighbours=20", "workers.llm_adapter=tuned", "llm.temperature=0.7",
                     "planners=[{kind: search, budget: 400}, {kind: gradient}]"],
        "sources": ("rational", "surrogate", "target"),
        "surrogate": "runs/transfer_tuned/surrogate.pt",
        "plan_agents": 10_000,
        "distil": {"config": "experiments/distill/llm_tuned.yaml", "data": "data/llm_tuned", "episodes": 30, "explore": 0.35,
                   "probe_config": "experiments/behaviour/llm_tuned.yaml", "probe": "runs/tune_probe/tuned", "probe_agents": 120},
    },
}


def distil(run: dict, out: Path) -> None:
    """Collect the workers' traces and distil the run's surrogate, each stage timed once, resumable."""
    chain = out / "chain.json"
    walls = json.loads(chain.read_text()) if chain.is_file() else {}
    spec = run["distil"]
    if "collect_s" not in walls:
        fresh, start = not Path(spec["data"]).exists(), time.perf_counter()
        collect(load_config(spec["config"]), spec["data"], spec["episodes"], explore=spec["explore"])
        walls["collect_s"] = round(time.perf_counter() - start, 1) if fresh else None  # a resumed collection is not timed
        chain.write_text(json.dumps(walls, indent=1))
    if not Path(run["surrogate"]).is_file():
        start = time.perf_counter()
        train_surrogate(spec["data"], run["surrogate"], TrainSettings())
        walls["distil_s"] = round(time.perf_counter() - start, 1)
        chain.write_text(json.dumps(walls, indent=1))
    if "calibrate_s" not in walls:
        probe = Path(spec["probe"])
        if not (probe / "behaviour.json").is_file():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "llm_economist.cli", "behaviour", spec["probe_config"], "--agents",
                            str(spec["probe_agents"]), "--out", str(probe), "--quiet"], check=True)
            walls["probe_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        found = calibrate_wording(run["surrogate"], load_config(spec["probe_config"]), probe, log=print)
        walls["calibrate_s"] = round(time.perf_counter() - start, 1)
        walls["wording_sd"] = found["sd"]
        chain.write_text(json.dumps(walls, indent=1))

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "bounded"
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    workers = [f"population.n_agents={sys.argv[3]}"] if len(sys.argv) > 3 else []
    run = RUNS[name]
    out = Path(f"runs/transfer_{name}" + (f"_{sys.argv[3]}" if workers else ""))
    config = load_config(None, [f"name={out.name}", "seed=5000", f"seeds={seeds}", *ECONOMY, *run["settings"], *workers])
    out.mkdir(parents=True, exist_ok=True)
    if "distil" in run:
        distil(run, out)
    run_transfer(config, out, run["sources"], run["surrogate"], progress=print, plan_agents=run.get("plan_agents"))
    print((out / "table.md").read_text())
