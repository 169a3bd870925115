"""The shipped worker adapter judged by the behavioural probe: the tuned model, the base model on the
same prompts, and the target population it was tuned toward, all on one fresh census sample.

    python experiments/tune/probe_tuned.py [AGENTS]        # default 120 agents; about an hour on two cores

Each probe is `llm-economist behaviour` (its language-model replies cached, so a rerun is free);
the table goes to runs/tune_probe/table.md with 95% bootstrap intervals over agents.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFIG = "experiments/behaviour/llm_tuned.yaml"
OUT = Path("runs/tune_probe")
AGENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 120
POPULATIONS = {  # name -> overrides of CONFIG
    "tuned": [],
    "base": ["workers.llm_adapter=null"],
    "target": ["workers.kind=bounded", "workers.llm_adapter=null"],
}
ROWS = (  # behaviour.json key, what it is
    ("rate_grid_hours_all", "mean hours at own-bracket rate 10 / 30 / 50 / 70%"),
    ("hours_ratio_70_10", "hours at 70% / hours at 10%"),
    ("eti_interior", "ETI, agents not at a corner"),
    ("eti", "ETI, all agents"),
    ("wage_elasticity", "wage elasticity of hours"),
    ("income_effect_hours_per_10k", "income effect, h per $10k"),
    ("share_correct_sign", "share responding in the predicted direction"),
    ("response_sd", "spread of individual responses (SD)"),
    ("position_bias_js", "position bias (bits)"),
    ("top_bin_probability", "mean top-bin probability"),
    ("persistence", "persistence (weight on own last hours)"),
    ("social_pull", "social pull (weight on contacts' last hours)"),
    ("response_coherent", "local and large-change responses agree"),
)


def cell(result: dict, key: str) -> str:
    value, ci = result.get(key), result.get(f"{key}_ci95")
    if isinstance(value, list):
        return " / ".join(f"{v:.1f}" for v in value)
    if value is None or isinstance(value, bool):
        return str(value)
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def main() -> None:
    results = {}
    for name, overrides in POPULATIONS.items():
        out = OUT / name
        if not (out / "behaviour.json").is_file():
            sets = [x for o in overrides for x in ("--set", o)]
            subprocess.run([sys.executable, "-m", "llm_economist.cli", "behaviour", CONFIG, "--agents", str(AGENTS),
                            "--out", str(out), "--quiet", *sets], check=True)
        results[name] = json.loads((out / "behaviour.json").read_text())
    lines = [f"Probe of {AGENTS} census agents (seed 0), 95% bootstrap intervals over agents.", "",
             "| figure | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    lines += [f"| {label} | " + " | ".join(cell(r, key) for r in results.values()) + " |" for key, label in ROWS]
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
