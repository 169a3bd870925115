"""A comparison over seeds: every planner (and the no-tax baseline) runs on seeds seed, seed+1, ...,
each seed in its own run directory `seed_<s>/` and one task for the executor (here, one after
another, or on Ray), all sharing one response cache and, for the embedded model, one server per
machine; the output directory then holds the tables of every seed and one summary with intervals.

Seed s draws the population, the social graph and all worker randomness; all planners share it.
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from .behaviour import population_response, read_probe
from ..config import RunConfig, config_fingerprint, dump_config
from ..planner_factory import load_config
from ..executor import IN_PROCESS, run_tasks
from ..factory import embedded_slots, llm_settings
from ..llm import LLMSettings, open_client
from ..progress import YearProgress
from ..reporting.summary import combine, write_summary
from ..reporting.run_results import tables as run_tables
from ..planners.fixed import BASELINE
from ..runner import ResumeError, Runner, selected_planners

BEHAVIOUR_DIR = "behaviour"  # the probe of the population compared (workers without a language model)
# What the tool writes into an output directory; `--overwrite` removes exactly these.
OUTPUT_PATTERNS = (
    "config.yaml", "summary.json", "timings.json", "metrics.csv", "parameters.csv", "final_outcomes.parquet", "traces.parquet",
    "planner_log.csv", "elections.json", "llm_cache.sqlite", "llm_cache.sqlite-*", "report.md", "*.png",
    "narrative_*.md", "checkpoints", "trace_parts", "seed_*", BEHAVIOUR_DIR,
)


class OutputDirError(ValueError):
    """The output directory holds an earlier run and neither --resume nor --overwrite was given."""


def prepare_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run with an old one's files: continue it, clear it, or pick another directory."""
    if resume and overwrite:
        raise OutputDirError("--resume and --overwrite exclude each other")
    if resume and not (out / "config.yaml").is_file():
        raise OutputDirError(f"--resume: {out} holds no run to continue (no config.yaml); leave out --resume to start one there")
    if not out.exists() or resume:
        return
    if not out.is_dir():
        raise OutputDirError(f"--out {out}: exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise OutputDirError(
            f"--out {out} already holds files; add --resume to continue the run there, --overwrite to replace it, "
            "or choose another --out"
        )
    for pattern in OUTPUT_PATTERNS:
        for path in out.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def seeds_of(config: RunConfig) -> list[int]:
    return [config.seed + i for i in range(config.seeds)]


def run_comparison(
    config: RunConfig, out: str | Path, labels: list[str] | None = None, resume: bool = False,
    overwrite: bool = False, progress: bool = True, behaviour: Path | None = None, address: str = IN_PROCESS,
) -> dict:
    """Run every seed, write the combined tables and summary.json into `out`, return the summary;
    `behaviour` is the directory of an earlier probe of a language-model population; `address`
    where the seeds run (`executor.run_tasks`).

    A seed stopped by an unusable language-model server ends the comparison (in this process; on Ray
    the other seeds stop by themselves): the seeds and years finished until then are combined, and
    `stopped` says why.
    """
    out = Path(out)
    measured = read_probe(config, behaviour) if behaviour is not None else None  # refused before anything runs
    prepare_out_dir(out, resume, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.yaml"
    # Changing only the number of seeds keeps a comparison resumable: finished seeds are reused.
    if resume and _fingerprint(before := load_config(saved)) != _fingerprint(config):
        raise ResumeError(f"{saved}: written by a different config ({', '.join(changed_fields(before, config))} changed); "
                          "rerun without --resume or use a new --out")
    saved.write_text(dump_config(config))
    settings = llm_settings(config, str((out / "llm_cache.sqlite").resolve())) if config.needs_llm else None
    # In this process one bar counts every planner-year of every seed; on a cluster a bar counts seeds.
    shared = YearProgress("comparison", progress) if address == IN_PROCESS else None
    if shared is not None:
        for _ in seeds_of(config):
            for label in [*selected_planners(config, labels), BASELINE]:
                shared.plan(label, config.economy.years)
    seeds = [(config.model_copy(update={"seed": seed, "seeds": 1}), str((out / f"seed_{seed}").resolve()), settings, resume,
              shared, labels) for seed in seeds_of(config)]
    try:
        done = run_tasks(run_seed, seeds, address, progress=progress and address != IN_PROCESS, description="seeds",
                         embedded_llm=embedded_slots(config), until=lambda seed: seed["stopped"])
    finally:
        if shared is not None:
            shared.close()
    summaries, tables = [d["summary"] for d in done], [d["tables"] for d in done]
    for name, suffix in (("metrics", "csv"), ("parameters", "csv"), ("final_outcomes", "parquet")):
        frame = pd.concat([t[name] for t in tables], ignore_index=True)
        path = out / f"{name}.{suffix}"
        frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path, index=False)
    summary = combine(summaries)
    summary["behaviour"] = population_response(config, out / BEHAVIOUR_DIR, measured)
    write_summary(out, summary)
    return summary


def run_seed(config: RunConfig, out: str, settings: LLMSettings | None, resume: bool, progress: YearProgress | None,
             labels: list[str] | None) -> dict:
    """One seed's run as a task: its summary, its tables and whether an unusable server stopped it."""
    with open_client(settings) if settings is not None else nullcontext() as client:
        runner = Runner(config, out, resume, progress, client)
        summary = runner.run(labels)
        return {"summary": summary, "tables": run_tables(runner.setup, runner.runs), "stopped": runner.stopped}


def changed_fields(before: RunConfig, after: RunConfig) -> list[str]:
    """The dotted names of the settings that differ, as a person would `--set` them: `economy.years`, `planners`."""
    def leaves(value, prefix: str = "") -> dict:
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in leaves(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    old, new = leaves(before.model_dump(mode="json")), leaves(after.model_dump(mode="json"))
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k != "seeds")


def _fingerprint(config: RunConfig) -> str:
    return config_fingerprint(config.model_copy(update={"seeds": 1}))
