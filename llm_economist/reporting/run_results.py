"""What one run (one seed) writes: tidy tables, the traces, the planner log, elections, and its
summary with the caveats that hold for its config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from ..economy.outcome import Outcome
from ..economy.policy import Policy
from ..factory import Setup, mechanism_name
from ..planner_factory import planner_kind
from ..llm.usage import add_usage
from .summary import combine, timings, write_summary

if TYPE_CHECKING:  # the runner writes its results through this module
    from ..runner import PlannerRun

TRACE_DIR = "trace_parts"  # one Parquet file per planner and tax year, written as the run goes
TRACE_COLUMNS = ["hours", "income", "tax", "consumption", "utility"]
METRIC_COLUMNS = ["planner", "year", "step", "step_in_year", "welfare"]
PARAMETER_COLUMNS = ["planner", "mechanism", "year", "parameter", "value"]


def outcome_frame(
    outcome: Outcome, policy: Policy, label: str, year: int, step: int, limit: int | None, columns: dict | None = None
) -> pd.DataFrame:
    """Tidy rows (one per agent) of one step, for at most `limit` agents, with the decisions' extra columns;
    `policy` as these agents face it (one schedule row per agent where it taxes by filing status)."""
    n = outcome.hours.shape[-1] if limit is None else min(limit, outcome.hours.shape[-1])
    frame = pd.DataFrame({name: getattr(outcome, name)[:n].detach().cpu().numpy() for name in TRACE_COLUMNS})
    frame.insert(0, "agent_id", range(n))
    frame.insert(0, "step", step)
    frame.insert(0, "year", year)
    frame.insert(0, "planner", label)
    frame["transfer"] = float(outcome.transfer.reshape(-1)[0])
    faced, _ = policy.faced(policy.expectation(outcome))  # marginal rates include any funding rate
    frame["marginal_rate"] = faced.schedule.marginal_rate(outcome.income)[:n].detach().cpu().numpy()
    for name, values in (columns or {}).items():
        frame[name] = values[:n].tolist() if isinstance(values, torch.Tensor) else list(values[:n])
    return frame


def tables(setup: Setup, runs: list[PlannerRun]) -> dict[str, pd.DataFrame]:
    """The tidy result tables of these runs, each row marked with the run's seed."""
    finals = []
    for r in runs:
        columns = r.carried.last_decisions.columns if r.carried.last_decisions is not None else None
        policy = setup.model.resolve(r.policy, r.carried.last)
        finals.append(outcome_frame(r.carried.last, policy, r.label, r.year - 1, len(r.metrics) - 1, None, columns))
    metrics = [m for r in runs for m in r.metrics]
    out = {
        "metrics": pd.DataFrame(metrics) if metrics else pd.DataFrame(columns=METRIC_COLUMNS),
        "parameters": pd.DataFrame([p for r in runs for p in r.parameters], columns=PARAMETER_COLUMNS),
        "final_outcomes": pd.concat(finals, ignore_index=True) if finals else pd.DataFrame(columns=["planner", "agent_id"]),
    }
    for frame in out.values():
        frame.insert(0, "seed", setup.config.seed)
    return out


def write_results(out: Path, setup: Setup, runs: list[PlannerRun], fingerprint: str, stopped: str | None,
                  unfinished: dict | None = None) -> dict:
    """Write tables, logs, traces and summary.json (a one-seed combined summary); return the seed's summary.
    `unfinished`: the usage and fallback reasons of years a stop cut short (`Runner`)."""
    tabled = tables(setup, runs)
    tabled["metrics"].to_csv(out / "metrics.csv", index=False)
    tabled["parameters"].to_csv(out / "parameters.csv", index=False)
    tabled["final_outcomes"].to_parquet(out / "final_outcomes.parquet", index=False)
    elections = {r.label: r.elections for r in runs if r.elections}
    if elections:
        (out / "elections.json").write_text(json.dumps(elections, indent=2))
    log = [{"seed": setup.config.seed, "planner": r.label, **row} for r in runs for row in r.planner.log]
    if log:
        pd.DataFrame(log).to_csv(out / "planner_log.csv", index=False)
    if setup.config.output.traces:
        finished = {r.label: r.year for r in runs}
        parts = sorted((out / TRACE_DIR).glob("*/year_*.parquet"))
        frames = [pd.read_parquet(p) for p in parts if int(p.stem.split("_")[1]) < finished.get(p.parent.name, 0)]
        if frames:
            pd.concat(frames, ignore_index=True).to_parquet(out / "traces.parquet", index=False)
    summary = summarise(setup, runs, fingerprint, stopped, unfinished)
    write_summary(out, combine([summary]))
    return summary


def summarise(setup: Setup, runs: list[PlannerRun], fingerprint: str, stopped: str | None, unfinished: dict | None = None) -> dict:
    """This seed's figures per planner: the last year's means, parameters, schedule, fallbacks."""
    config = setup.config
    planners = {}
    for r in runs:
        final = r.history[-1].metrics  # the last year's means
        policy = r.policy
        mechanism = r.planner.mechanism
        fallbacks = sum(r.fallback_reasons.values())
        planners[r.label] = {
            "kind": planner_kind(r.label, config),
            "mechanism": mechanism_name(planner_kind(r.label, config), config),
            "instrument": mechanism.describe(),
            "final_welfare": final["welfare"],
            **{k: v for k, v in final.items() if k != "welfare"},
            "parameters": mechanism.as_dict(r.history[-1].theta),
            "parameter_info": {p.name: {"description": p.description, "unit": p.unit, "bounds": [p.low, p.high]}
                               for p in mechanism.parameters},
            "schedule": {  # by filing status: the first group's (a single filer without children)
                "cutoffs": policy.schedule.for_agent(0).cutoffs.tolist(),
                "rates": policy.schedule.for_agent(0).rates.detach().tolist(),
                "lump_sum": float(torch.as_tensor(policy.lump_sum)),
            },
            "uses_population_model": r.planner.uses_population_model,
            "evaluations": r.planner.evaluations,
            "decisions": r.decisions,
            "fallbacks": fallbacks,
            "fallback_share": fallbacks / r.decisions if r.decisions else None,
            "fallback_reasons": dict(r.fallback_reasons),
            "worker_diagnostics": r.diagnostics,
            "years": r.year,
            "notes": list(r.planner.notes),
            "training_curve": getattr(r.planner, "training_curve", None),  # learning planners: (steps, mean reward)
        }
    wage = setup.population.table["hourly_wage"]
    return {
        "name": config.name,
        "seed": config.seed,
        "timings": timings([r.wall_s for r in runs], [r.label for r in runs]),
        "config_fingerprint": fingerprint,
        "population": {
            "n_agents": setup.population.n,
            "income_model": config.population.income_model,
            "median_wage": float(wage.median()),
            "mean_wage": float(wage.mean()),
        },
        "calibration": setup.calibration,
        "welfare": {"name": config.welfare.name, **config.welfare.params()},
        "llm": llm_summary(setup, runs, unfinished),
        "stopped": stopped,
        "planners": planners,
        "caveats": caveats(setup, runs),
    }


def llm_summary(setup: Setup, runs: list[PlannerRun], unfinished: dict | None = None) -> dict | None:
    """Model, endpoints (never the key) and usage of the runs' language-model calls, resumed parts and
    the years a stop cut short included (every request sent is counted)."""
    if not setup.config.needs_llm:
        return None
    c = setup.config.llm
    usage: dict = dict((unfinished or {}).get("usage", {}))
    for r in runs:
        usage = add_usage(usage, r.usage)
    return {
        "model": c.model,
        "endpoints": c.base_urls
        or ([f"in-process transformers: {c.transformers_model}"] if c.backend == "transformers" else ["embedded SmolLM2-135M-Instruct (llama.cpp on 127.0.0.1)"]),
        "backend": c.backend,
        "usage": usage,
        "unfinished_fallback_reasons": dict((unfinished or {}).get("fallback_reasons", {})),
    }


def revenue_use(policy: Policy) -> str:
    """What a policy does with its net revenue, in words."""
    if policy.funding == "flat_rate":
        return "a flat rate on all income pays for the guarantee, nothing else is paid back"
    if policy.rebate_share == 1:
        return "paid back equally to every worker"
    return f"{100 * policy.rebate_share:.0f}% paid back equally, the rest kept as government spending (not valued in welfare)"


def caveats(setup: Setup, runs: list[PlannerRun]) -> list[str]:
    """What a reader must know about results from this config."""
    config = setup.config
    uses: dict[str, list[str]] = {}
    for r in runs:
        if r.policy is not None:
            uses.setdefault(revenue_use(r.policy), []).append(r.label)
    spent = "; ".join(f"{', '.join(labels)}: {use}" for use, labels in uses.items()) or "no planner set a policy before the run stopped"
    notes = [
        "Workers are simulated, not people: hours follow the stated utility model, calibrated only so that the "
        "median worker works the target hours under the 2024 US taxes on earnings.",
        f"Revenue: {spent}. The US federal "
        "baseline is the 2024 taxes on earnings by filing status (income tax above the standard deduction, child tax "
        "credit, payroll tax, EITC; couples who both work on one joint return); paying its revenue back equally, as the reference paper does, makes it a large basic income "
        "the real US does not pay (`rebate_share: 0` keeps it as spending).",
    ]
    if config.workers.kind == "bounded":
        notes.append("Bounded-rational workers draw hours at random: realised welfare carries sampling noise of the period.")
    if config.needs_llm and not config.llm.base_urls and config.llm.backend == "openai":
        notes.append(
            "The language model is the embedded SmolLM2-135M-Instruct: a tiny model that exercises the pipeline, "
            "not one whose choices mean anything economically. Set llm.base_urls and llm.model to use a real model."
        )
    if config.workers.kind == "llm":
        notes.append(
            "Model-based planners (Saez, search, grid) plan against the rational model of these workers, "
            "not against the language model's choices; they are then judged on the language-model workers."
        )
    if config.workers.kind == "surrogate":
        notes.append(
            "Surrogate workers are a transformer distilled from recorded worker decisions (by default those of the "
            "embedded SmolLM2-135M workers): they reproduce that population, quirks included, not people. Model-based "
            "planners plan against the surrogate itself. `llm-economist distill eval` states how closely it matches."
        )
    if config.economy.eta == 0.0:
        notes.append("Utility is quasi-linear (eta = 0): no income effects, so a utilitarian planner would not redistribute.")
    return notes
