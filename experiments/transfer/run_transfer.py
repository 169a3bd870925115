"""The transfer test, run twice: planners optimised against the rational model, against the
surrogate distilled from the workers and (where the workers have a population model of their own)
against the workers themselves, each mechanism judged on fresh populations of the real workers.

One command reruns each:  python experiments/transfer/run_transfer.py bounded|llm [SEEDS]
Results go to runs/transfer_<run>/ (table.md, summary.json, a seed directory each); an
interrupted run continues where it stopped.

- bounded: the real workers are bounded-rational with habit and imitation, the population the
  shipped `bounded_social` surrogate was distilled from (experiments/distill/bounded.yaml, seeds
  2000-2149); the truth is known, so gain captured is read against the best mechanism optimised on
  the workers themselves.
- llm: the real workers are the embedded language model's (experiments/distill/llm_embedded.yaml,
  seeds 1000-1017), judged against the best mechanism found; planners cannot optimise against the
  language-model workers themselves (their population model is the rational stand-in). 31 min
  for 3 seeds on 2 cores.
"""

import sys
from pathlib import Path

from llm_economist.config import load_config
from llm_economist.transfer import run_transfer
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
}

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "bounded"
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    run = RUNS[name]
    config = load_config(None, [f"name=transfer_{name}", "seed=5000", f"seeds={seeds}", *ECONOMY, *run["settings"]])
    out = Path(f"runs/transfer_{name}")
    run_transfer(config, out, run["sources"], run["surrogate"], progress=print)
    print((out / "table.md").read_text())
