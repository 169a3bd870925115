"""Scaling study: one config, LLM workers at the smallest size, surrogate workers above it.

Each size is a full `compare` run (its own directory under --out, with its report), so an
interrupted study resumes: finished sizes are read back, an unfinished one continues from its
last tax year. The study ends with scaling.json and scaling.md: welfare per planner and wall
time per size.

    python experiments/scaling/run_scaling.py [--sizes llm:100,surrogate:10000,...] [--out runs/scaling] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llm_economist.planner_factory import load_config
from llm_economist.reporting import write_report
from llm_economist.runner import Runner
from llm_economist.surrogate import SurrogatePopulation
from llm_economist.workers.surrogate import shipped_model_path

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = "llm:100,surrogate:10000,surrogate:100000,surrogate:1000000"


def run_size(kind: str, n: int, config_path: Path, out: Path, overrides: list[str]) -> dict:
    run_dir = out / f"{kind}_{n}"
    if (run_dir / "summary.json").is_file() and (run_dir / "wall.json").is_file():
        return {**json.loads((run_dir / "summary.json").read_text()), **json.loads((run_dir / "wall.json").read_text())}
    config = load_config(config_path, [*overrides, f"workers.kind={kind}", f"population.n_agents={n}"])
    started = time.perf_counter()
    summary = Runner(config, run_dir, resume=True, progress=True).run()
    wall = {"wall_s": time.perf_counter() - started}
    (run_dir / "wall.json").write_text(json.dumps(wall))
    write_report(run_dir)
    return {**summary, **wall}


def table(results: list[tuple[str, int, dict]]) -> str:
    planners = list(results[0][2]["planners"])
    columns = [f"{p} welfare" for p in planners] + [f"{p} hours" for p in planners] + [f"{p} s" for p in planners]
    lines = ["| workers | agents | " + " | ".join(columns) + " | run wall s |", "|---|---:|" + "---:|" * (len(columns) + 1)]
    for kind, n, s in results:
        cells = [f"{s['planners'][p]['final_welfare']:,.0f}" for p in planners]
        cells += [f"{s['planners'][p]['mean_hours']:.1f}" for p in planners]
        cells += [f"{s['planners'][p]['wall_s']:,.1f}" for p in planners]
        lines.append(f"| {kind} | {n:,} | " + " | ".join(cells) + f" | {s['wall_s']:,.1f} |")
    return "\n".join(lines)


def populations(config_path: Path, overrides: list[str]) -> str:
    """Which language model and which surrogate the study used, from the config and the model file."""
    config = load_config(config_path, overrides)
    llm = config.llm.model + (f" at {', '.join(config.llm.base_urls)}" if config.llm.base_urls else " (embedded)")
    path = Path(config.workers.surrogate_model) if config.workers.surrogate_model else shipped_model_path()
    meta = SurrogatePopulation.load(path).meta
    source = meta["source"]["model"] or meta["workers"]
    return (
        f"Language-model workers: {llm}. Surrogate workers: `{path.name}`, distilled from {meta['workers']} workers "
        f"({source}). Model-based planners (Saez) plan against the rational model for language-model workers "
        "and against the surrogate itself for surrogate workers."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=HERE / "scaling.yaml")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated kind:n (kind llm or surrogate)")
    parser.add_argument("--out", type=Path, default=Path("runs/scaling"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every size, e.g. --set workers.surrogate_model=my.pt (repeatable)")
    args = parser.parse_args()
    sizes = [(kind, int(n)) for kind, n in (item.split(":") for item in args.sizes.split(","))]
    args.out.mkdir(parents=True, exist_ok=True)
    results = [(kind, n, run_size(kind, n, args.config, args.out, args.overrides)) for kind, n in sizes]
    (args.out / "scaling.json").write_text(json.dumps(
        [{"workers": k, "n_agents": n, "wall_s": s["wall_s"],
          "planners": {p: {k: v[k] for k in ("final_welfare", "mean_hours", "wall_s")} for p, v in s["planners"].items()}}
         for k, n, s in results], indent=2))
    text = "\n".join([
        "# Scaling study", "",
        f"Config: `{args.config}`; the same planners, mechanism and seed at every size. Welfare is the mean "
        "per-agent welfare of the final year; wall time covers planning and simulation.", "",
        table(results), "",
        populations(args.config, args.overrides), "",
    ])
    (args.out / "scaling.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
