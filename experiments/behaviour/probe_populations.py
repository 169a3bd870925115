"""The behavioural probe on every population kind, side by side: rational and bounded-rational
workers (the bounded ones on the language model's 10-hour bins), bounded workers with habit and
imitation and the surrogate distilled from them, the embedded language model in each decision
format, and the surrogate distilled from it.

One command reruns it:  python experiments/behaviour/probe_populations.py [AGENTS_LLM]
Results go to OUT/<population>/ (behaviour.json, behaviour.md, plots) and OUT/table.md. Language-
model replies are cached there, so a rerun is free.
"""

import json
import sys
from pathlib import Path

from llm_economist.studies.behaviour import run_probe
from llm_economist.planner_factory import load_config
from llm_economist.workers.surrogate import shipped_model_path

OUT = Path("runs/behaviour_populations")
AGENTS = 500  # rational, bounded and surrogate workers
AGENTS_LLM = int(sys.argv[1]) if len(sys.argv) > 1 else 24  # the probe's default sample for language models
BASE = ["planners=[{kind: saez}]"]  # the default economy and mechanism (three brackets)
POPULATIONS = {
    "rational": (["workers.kind=rational"], AGENTS),
    "bounded_10h_bins": (["workers.kind=bounded", "workers.hour_bins=9"], AGENTS),
    "bounded_habit_imitation": (["workers.kind=bounded", "workers.hour_bins=9", "workers.persistence=0.3",
                                 "workers.social_pull=0.2"], AGENTS),
    "surrogate_of_bounded": (["workers.kind=surrogate", f"workers.surrogate_model={shipped_model_path('bounded_social')}"], AGENTS),
    "llm_narrative": (["workers.kind=llm", "workers.decision_format=narrative"], AGENTS_LLM),
    "llm_budget_menu": (["workers.kind=llm", "workers.decision_format=budget_menu"], AGENTS_LLM),
    "surrogate_of_embedded": (["workers.kind=surrogate"], AGENTS),
}
COLUMNS = ("eti", "eti_interior", "hours_elasticity", "wage_elasticity", "income_effect_hours_per_10k", "share_correct_sign",
           "response_sd", "position_bias_js", "top_bin_probability", "persistence", "social_pull", "fairness_per_10_points",
           "trust_per_10_points", "stress_per_10_points")


def cell(result: dict, key: str) -> str:
    value, ci = result.get(key), result.get(f"{key}_ci95")
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


if __name__ == "__main__":
    rows = []
    for name, (settings, agents) in POPULATIONS.items():
        result = run_probe(load_config(None, BASE + settings), OUT / name, agents, progress=print)
        rows.append((name, result))
        print(name, json.dumps({k: result.get(k) for k in COLUMNS}))
    header = ["population", "agents", "mean hours", *COLUMNS, "prompt tokens", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in rows:
        tokens = f"{r['mean_prompt_tokens']:.0f}" if r.get("mean_prompt_tokens") else "n/a"
        lines.append(f"| {name} | {r['n_agents']} | {r['mean_hours']:.1f} | " + " | ".join(cell(r, k) for k in COLUMNS)
                     + f" | {tokens} | {r['wall_s']:.0f} |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
