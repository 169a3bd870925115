"""The simulation loop: each planner faces the same population and seeds, year by year.

At the start of each tax year the planner proposes parameters; for every step of the year the
workers act on a batch of observations, the economy settles incomes, taxes, transfers and
utilities, and metrics and traces are recorded. A checkpoint after each year lets `resume`
continue an interrupted run without redoing finished years; traces go to disk year by year.
Beside the configured planners every run plays `no_tax` (no tax, no transfer) on the same
population and seed: the baseline that gain captured is measured against.

A language-model server that cannot heal (refused credentials, no such model, nothing listening,
or too many fallbacks in a row) stops the run at once; what finished is written and reported.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import RunConfig, dump_config, load_config
from .economy.outcome import Outcome, aggregates, settle
from .economy.policy import Policy
from .economy.tax import TaxSchedule
from .factory import DTYPES, OWN_MECHANISM_NAMES, llm_settings, make_planner, make_world, mechanism_name
from .llm import LLMClient, LLMUnavailable, open_client
from .mechanisms.governance import (
    ElectionResult,
    Platform,
    config_platforms,
    default_proposers,
    hold_election,
    rational_ballots,
    worker_platforms,
)
from .personas.population import Population, sample_population
from .planners.base import Planner, YearRecord
from .planners.fixed import no_tax_planner
from .results import BASELINE, combine
from .workers.base import Decisions, Observation
from .workers.llm import LLMWorkers
from .world import World

CHECKPOINT_DIR = "checkpoints"
TRACE_DIR = "trace_parts"
TRACE_COLUMNS = ["hours", "income", "tax", "consumption", "utility"]
METRIC_COLUMNS = ["planner", "year", "step", "step_in_year", "welfare"]
PARAMETER_COLUMNS = ["planner", "mechanism", "year", "parameter", "value"]


class ResumeError(RuntimeError):
    """A checkpoint exists but cannot be continued (for example, the config changed)."""


@dataclass
class PlannerRun:
    """Everything a planner's run has produced so far; checkpointed after each year."""

    label: str
    planner: Planner
    year: int = 0  # next year to play
    history: list[YearRecord] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    parameters: list[dict] = field(default_factory=list)
    generator_state: torch.Tensor | None = None
    recent: list[Outcome] = field(default_factory=list)  # the workers' memory of recent periods
    last_decisions: Decisions | None = None
    diagnostics: dict[str, float] = field(default_factory=dict)  # summed over steps
    elections: list[dict] = field(default_factory=list)
    usage: dict = field(default_factory=dict)  # language-model usage of the finished years, summed over resumes
    decisions: int = 0  # language-model worker decisions and planner proposals
    fallback_reasons: dict[str, int] = field(default_factory=dict)  # fallbacks among them, by reason
    wall_s: float = 0.0

    @property
    def last(self) -> Outcome | None:
        return self.recent[-1] if self.recent else None


class FallbackMonitor:
    """Stops a run whose language-model replies keep failing: `limit` fallbacks in a row, or every
    decision of a planner's first period (limit 0: never stops)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0

    def observe(self, reasons: list[str | None], first_period: bool = False) -> None:
        """`reasons`: one per decision in order, None where the reply was usable."""
        for reason in reasons:
            self.streak = self.streak + 1 if reason else 0
        if not self.limit:
            return
        failed = [r for r in reasons if r]
        if first_period and reasons and len(failed) == len(reasons):
            raise LLMUnavailable(
                f"every language-model decision of the first period fell back ({_reason_counts(failed)}); "
                "the server is not usable. Fix it and continue with --resume"
            )
        if self.streak >= self.limit:
            raise LLMUnavailable(
                f"{self.streak} language-model decisions in a row fell back (last: {failed[-1] if failed else '?'}; "
                f"llm.max_consecutive_fallbacks = {self.limit}); the server is not usable. Fix it and continue with --resume"
            )


def _reason_counts(reasons: list[str]) -> str:
    counts: dict[str, int] = {}
    for r in reasons:
        counts[r] = counts.get(r, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _usage_delta(after: dict, before: dict) -> dict:
    """Counters spent between two `Usage.as_dict()` snapshots (cost recomputed by the caller's sums)."""
    delta = {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, int)}
    if after.get("cost_usd") is not None:
        delta["cost_usd"] = after["cost_usd"] - (before.get("cost_usd") or 0.0)
    tags = {}
    for tag, row in after.get("by_tag", {}).items():
        old = before.get("by_tag", {}).get(tag, {})
        tags[tag] = {k: v - old.get(k, 0) for k, v in row.items()}
    delta["by_tag"] = tags
    return delta


def _add_usage(total: dict, more: dict) -> dict:
    out = dict(total)
    for key, value in more.items():
        if key == "by_tag":
            tags = {t: dict(row) for t, row in out.get("by_tag", {}).items()}
            for tag, row in value.items():
                tags[tag] = {k: tags.get(tag, {}).get(k, 0) + v for k, v in row.items()}
            out["by_tag"] = tags
        elif value is not None:
            out[key] = (out.get(key) or 0) + value
    return out


def config_fingerprint(config: RunConfig) -> str:
    """Hash of everything that changes results or files, not of how language-model calls are transported
    (so a run stopped by a broken server resumes against a fixed or another one)."""
    data = config.model_dump(mode="json")
    for transport in ("base_urls", "api_key_env", "timeout_s", "max_retries", "concurrency", "cache_path",
                      "price_prompt_per_million", "price_completion_per_million", "max_consecutive_fallbacks"):
        data["llm"].pop(transport)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def outcome_frame(
    outcome: Outcome, policy: Policy, label: str, year: int, step: int, limit: int | None, columns: dict | None = None
) -> pd.DataFrame:
    """Tidy rows (one per agent) of one step, for at most `limit` agents, with the decisions' extra columns."""
    n = outcome.hours.shape[-1] if limit is None else min(limit, outcome.hours.shape[-1])
    frame = pd.DataFrame({name: getattr(outcome, name)[:n].detach().cpu().numpy() for name in TRACE_COLUMNS})
    frame.insert(0, "agent_id", range(n))
    frame.insert(0, "step", step)
    frame.insert(0, "year", year)
    frame.insert(0, "planner", label)
    frame["transfer"] = float(outcome.transfer.reshape(-1)[0])
    frame["marginal_rate"] = policy.schedule.marginal_rate(outcome.income[:n]).detach().cpu().numpy()
    for name, values in (columns or {}).items():
        frame[name] = values[:n].tolist() if isinstance(values, torch.Tensor) else list(values[:n])
    return frame


class Runner:
    """Runs the configured planners, and the no-tax baseline, for one seed into one output directory."""

    def __init__(
        self, config: RunConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
        client: LLMClient | None = None, baseline: bool = True,
    ) -> None:
        self.config = config
        self.baseline = baseline  # play the no-tax baseline (data collection that needs no comparison skips it)
        self.out = Path(out_dir)
        self.resume = resume
        self.progress = progress
        self.fingerprint = config_fingerprint(config)
        self.population: Population | None = None
        self.world: World | None = None
        self.calibration: dict[str, float] = {}
        self.runs: list[PlannerRun] = []  # what the last `run` finished, for callers that combine seeds
        self.stopped: str | None = None  # why the last `run` stopped early, if it did
        # A client handed in stays open for its owner (several runs can share one server).
        self.client = client
        self._owns_client = client is None

    # -- set-up -----------------------------------------------------------------------------
    def prepare(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / CHECKPOINT_DIR).mkdir(exist_ok=True)
        saved = self.out / "config.yaml"
        if self.resume and saved.is_file() and config_fingerprint(load_config(saved)) != self.fingerprint:
            raise ResumeError(f"{saved}: written by a different config; rerun without --resume or use a new --out")
        saved.write_text(dump_config(self.config))
        pop = self.config.population
        self.population = sample_population(pop.n_agents, self.config.seed, pop.income_model)
        wage = self.population.wage(dtype=DTYPES[self.config.economy.dtype])
        if self.config.needs_llm and self.client is None:
            self.client = open_client(llm_settings(self.config, str(self.out / "llm_cache.sqlite")))
        self.world, self.calibration = make_world(self.config, self.population, wage, self.client)

    def _checkpoint_path(self, label: str) -> Path:
        return self.out / CHECKPOINT_DIR / f"{label}.pt"

    def _load(self, label: str) -> PlannerRun | None:
        path = self._checkpoint_path(label)
        if not path.exists():
            return None
        saved = torch.load(path, weights_only=False)
        if saved["fingerprint"] != self.fingerprint:
            raise ResumeError(f"{path}: written by a different config; rerun without --resume or use a new --out")
        return saved["run"]

    def _start(self, label: str) -> PlannerRun:
        if self.resume:
            saved = self._load(label)
            if saved is not None:
                return saved
        self._checkpoint_path(label).unlink(missing_ok=True)  # a fresh start must never resume an older run's checkpoint
        stale = self.out / TRACE_DIR / label
        if stale.exists():
            for part in stale.glob("*.parquet"):
                part.unlink()
        planner = no_tax_planner() if label == BASELINE else make_planner(self._planner_config(label), self.config)
        run = PlannerRun(label, planner)
        run.generator_state = torch.Generator().manual_seed(self.config.seed + 1).get_state()
        return run

    def _save(self, run: PlannerRun) -> None:
        path = self._checkpoint_path(run.label)
        tmp = path.with_suffix(".tmp")
        torch.save({"fingerprint": self.fingerprint, "run": run}, tmp)
        tmp.replace(path)  # atomic: a crash mid-write never corrupts the last good checkpoint

    # -- the loop ---------------------------------------------------------------------------
    def play_year(self, run: PlannerRun, monitor: FallbackMonitor | None = None) -> None:
        """One tax year: propose, then steps_per_year settled periods; appends metrics and traces."""
        assert self.world is not None
        e, world, year = self.config.economy, self.world, run.year
        monitor = monitor or FallbackMonitor(0)
        started = time.perf_counter()
        usage_before = self.client.usage.as_dict() if self.client is not None else None
        generator = torch.Generator()
        generator.set_state(run.generator_state)
        proposals_before = len(run.planner.log)
        theta = run.planner.mechanism.validate(self.choose_parameters(run))
        proposals = [row["failure"] for row in run.planner.log[proposals_before:]]
        self._count(run, proposals)
        monitor.observe(proposals)
        policy = run.planner.mechanism.policy(theta.to(world.wage.dtype))
        year_metrics, traces = [], []
        for k in range(e.steps_per_year):
            step = year * e.steps_per_year + k
            expected = run.last.transfer if run.last is not None else torch.zeros(1, dtype=world.wage.dtype)
            obs = Observation(world.wage, policy, expected, tuple(run.recent), run.last_decisions, year, step)
            decisions = world.workers.act(obs, generator)
            self._count(run, list(decisions.fallbacks))
            monitor.observe(list(decisions.fallbacks), first_period=step == 0)
            outcome = settle(world.wage, decisions.hours.clamp(0.0, e.max_hours), policy, world.prefs)
            metrics = {"welfare": float(world.welfare(outcome)), **aggregates(outcome, e.max_hours)}
            year_metrics.append(metrics)
            run.metrics.append({"planner": run.label, "year": year, "step": step, "step_in_year": k, **metrics})
            if self.config.output.traces:
                traces.append(outcome_frame(outcome, policy, run.label, year, step, self.config.output.trace_agents, decisions.columns))
            run.recent = (run.recent + [outcome])[-world.workers.memory :]
            run.last_decisions = decisions
            for key, value in decisions.diagnostics.items():
                run.diagnostics[key] = run.diagnostics.get(key, 0.0) + value
        if traces:
            part = self.out / TRACE_DIR / run.label / f"year_{year:05d}.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            pd.concat(traces, ignore_index=True).to_parquet(part, index=False)
        mean = {key: sum(m[key] for m in year_metrics) / len(year_metrics) for key in year_metrics[0]}
        run.history.append(YearRecord(year, theta.clone(), mean["welfare"], mean))
        run.parameters.extend(
            {"planner": run.label, "mechanism": mechanism_name(self._kind(run.label), self.config), "year": year, "parameter": name, "value": value}
            for name, value in run.planner.mechanism.as_dict(theta).items()
        )
        if usage_before is not None:
            run.usage = _add_usage(run.usage, _usage_delta(self.client.usage.as_dict(), usage_before))
        run.generator_state = generator.get_state()
        run.year += 1
        run.wall_s += time.perf_counter() - started

    @staticmethod
    def _count(run: PlannerRun, reasons: list[str | None]) -> None:
        run.decisions += len(reasons)
        for reason in reasons:
            if reason:
                run.fallback_reasons[reason] = run.fallback_reasons.get(reason, 0) + 1

    def choose_parameters(self, run: PlannerRun) -> torch.Tensor:
        """The planner's proposal, or, in an election year, the winning platform (held until the next)."""
        assert self.world is not None
        g, year = self.config.governance, run.year
        if not g.every_years or run.label == BASELINE:  # the baseline is no tax, whatever a vote would say
            return run.planner.propose(year, run.history, self.world)
        if year % g.every_years:
            return run.history[-1].theta
        result = self.elect(run)
        run.elections.append({"year": year, **result.to_dict(run.planner.mechanism)})
        return result.winning_platform.theta

    def _planner_config(self, label: str):
        return next(p for p in self.config.planners if p.name == label)

    def _kind(self, label: str) -> str:
        return BASELINE if label == BASELINE else self._planner_config(label).kind

    def elect(self, run: PlannerRun) -> ElectionResult:
        """Candidates: the status quo, the planner's proposal, config platforms, workers' proposals."""
        assert self.world is not None
        g, world, mechanism = self.config.governance, self.world, run.planner.mechanism
        status_quo = run.history[-1].theta if run.history else mechanism.initial()
        platforms = [Platform("status quo", "status_quo", status_quo)]
        if g.planner_platform:
            platforms.append(Platform("planner", "planner", run.planner.propose(run.year, run.history, world)))
        if g.platforms and self._kind(run.label) not in OWN_MECHANISM_NAMES:
            platforms += config_platforms(mechanism, {p.name: p.parameters for p in g.platforms})
        if g.worker_platforms:
            income = run.last.income if run.last is not None else world.respond(mechanism.policy(status_quo)).income
            proposers = default_proposers(income, g.worker_platforms)
            platforms += worker_platforms(world, mechanism, proposers, seed=self.config.seed + run.year)
        if len(platforms) < 2:
            raise ValueError("governance: an election needs at least two platforms; enable planner_platform, platforms or worker_platforms")
        if isinstance(world.workers, LLMWorkers):
            ballots, diagnostics = world.workers.ballots(platforms, mechanism, world, run.last, run.year)
            for key, value in diagnostics.items():
                run.diagnostics[key] = run.diagnostics.get(key, 0.0) + value
        else:
            ballots = rational_ballots(world, mechanism, platforms)
        return hold_election(g.rule, platforms, ballots)

    def run(self, labels: list[str] | None = None, on_year_end: Callable[[PlannerRun], None] | None = None) -> dict:
        """Play every selected planner and the baseline to the last year, then write the result files.

        A language-model server that cannot heal ends the loop early: the years finished (and
        checkpointed) until then are written, and `stopped` in the summary says why.
        """
        try:
            return self._run(labels, on_year_end)
        finally:
            if self.client is not None and self._owns_client:
                self.client.close()  # also stops the embedded server
                self.client = None

    def _run(self, labels: list[str] | None, on_year_end: Callable[[PlannerRun], None] | None) -> dict:
        selected = self._select(labels) + ([BASELINE] if self.baseline else [])
        self.prepare()
        self.runs, self.stopped = [], None
        monitor = FallbackMonitor(self.config.llm.max_consecutive_fallbacks)
        total = len(selected) * self.config.economy.years
        with tqdm(total=total, desc=f"seed {self.config.seed}", disable=not self.progress, unit="year") as bar:
            for label in selected:
                run = self._start(label)
                bar.update(run.year)
                try:
                    while run.year < self.config.economy.years:
                        bar.set_postfix_str(f"{run.label} year {run.year + 1}")
                        self.play_year(run, monitor)
                        self._save(run)
                        bar.update(1)
                        if on_year_end is not None:
                            on_year_end(run)
                except LLMUnavailable as err:
                    self.stopped = str(err)
                    finished = self._load(label)  # the unfinished year is dropped; its checkpoint is not
                    if finished is not None:
                        self.runs.append(finished)
                    break
                self.runs.append(run)
        return self.write_results(self.runs)

    def _select(self, labels: list[str] | None) -> list[str]:
        names = [p.name for p in self.config.planners]
        if not labels:
            return names
        unknown = [l for l in labels if l not in names]
        if unknown:
            raise ValueError(f"planners {unknown} are not in the config; it has {names}")
        return [n for n in names if n in labels]

    # -- results ----------------------------------------------------------------------------
    def tables(self, runs: list[PlannerRun]) -> dict[str, pd.DataFrame]:
        """The tidy result tables of these runs, each row marked with the run's seed."""
        finals = []
        for r in runs:
            columns = r.last_decisions.columns if r.last_decisions is not None else None
            finals.append(outcome_frame(r.last, self.final_policy(r), r.label, r.year - 1, len(r.metrics) - 1, None, columns))
        metrics = [m for r in runs for m in r.metrics]
        tables = {
            "metrics": pd.DataFrame(metrics) if metrics else pd.DataFrame(columns=METRIC_COLUMNS),
            "parameters": pd.DataFrame([p for r in runs for p in r.parameters], columns=PARAMETER_COLUMNS),
            "final_outcomes": pd.concat(finals, ignore_index=True) if finals else pd.DataFrame(columns=["planner", "agent_id"]),
        }
        for frame in tables.values():
            frame.insert(0, "seed", self.config.seed)
        return tables

    def write_results(self, runs: list[PlannerRun]) -> dict:
        """Write tables, logs, traces and summary.json (a one-seed combined summary); return the seed's summary."""
        assert self.world is not None and self.population is not None
        tables = self.tables(runs)
        tables["metrics"].to_csv(self.out / "metrics.csv", index=False)
        tables["parameters"].to_csv(self.out / "parameters.csv", index=False)
        tables["final_outcomes"].to_parquet(self.out / "final_outcomes.parquet", index=False)
        elections = {r.label: r.elections for r in runs if r.elections}
        if elections:
            (self.out / "elections.json").write_text(json.dumps(elections, indent=2))
        log = [{"planner": r.label, **row} for r in runs for row in r.planner.log]
        if log:
            pd.DataFrame(log).to_csv(self.out / "planner_log.csv", index=False)
        if self.config.output.traces:
            parts = sorted((self.out / TRACE_DIR).glob("*/year_*.parquet"))
            wanted = {r.label: r.year for r in runs}
            frames = [pd.read_parquet(p) for p in parts if int(p.stem.split("_")[1]) < wanted.get(p.parent.name, 0)]
            if frames:
                pd.concat(frames, ignore_index=True).to_parquet(self.out / "traces.parquet", index=False)
        summary = self.summarise(runs)
        (self.out / "summary.json").write_text(json.dumps(combine([summary]), indent=2))
        return summary

    def final_policy(self, run: PlannerRun) -> Policy:
        assert self.world is not None
        return run.planner.mechanism.policy(run.history[-1].theta.to(self.world.wage.dtype))

    def summarise(self, runs: list[PlannerRun]) -> dict:
        """This seed's figures per planner: the last year's means, parameters, schedule, fallbacks."""
        assert self.world is not None and self.population is not None
        planners = {}
        for r in runs:
            final = r.history[-1].metrics  # the last year's means
            policy = self.final_policy(r)
            schedule = policy.schedule
            mechanism = r.planner.mechanism
            fallbacks = sum(r.fallback_reasons.values())
            planners[r.label] = {
                "kind": self._kind(r.label),
                "mechanism": mechanism_name(self._kind(r.label), self.config),
                "final_welfare": final["welfare"],
                **{k: v for k, v in final.items() if k != "welfare"},
                "parameters": mechanism.as_dict(r.history[-1].theta),
                "parameter_info": {p.name: {"description": p.description, "unit": p.unit} for p in mechanism.parameters},
                "schedule": {
                    "cutoffs": schedule.cutoffs.tolist(),
                    "rates": schedule.rates.detach().tolist(),
                    "lump_sum": float(torch.as_tensor(policy.lump_sum)),
                },
                "uses_population_model": r.planner.uses_population_model,
                "evaluations": r.planner.evaluations,
                "decisions": r.decisions,
                "fallbacks": fallbacks,
                "fallback_share": fallbacks / r.decisions if r.decisions else None,
                "fallback_reasons": dict(r.fallback_reasons),
                "worker_diagnostics": r.diagnostics,
                "wall_s": r.wall_s,
                "years": r.year,
                "notes": list(r.planner.notes),
            }
        wage = self.population.table["hourly_wage"]
        return {
            "name": self.config.name,
            "seed": self.config.seed,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config_fingerprint": self.fingerprint,
            "population": {
                "n_agents": self.population.n,
                "income_model": self.config.population.income_model,
                "median_wage": float(wage.median()),
                "mean_wage": float(wage.mean()),
            },
            "calibration": self.calibration,
            "welfare": {"name": self.config.welfare.name, **self.config.welfare.params()},
            "llm": self.llm_summary(runs),
            "stopped": self.stopped,
            "planners": planners,
            "caveats": self.caveats(),
        }

    def llm_summary(self, runs: list[PlannerRun]) -> dict | None:
        """Model, endpoints (never the key) and usage of the runs' language-model calls, resumed parts included."""
        if not self.config.needs_llm:
            return None
        c = self.config.llm
        usage: dict = {}
        for r in runs:
            usage = _add_usage(usage, r.usage)
        return {
            "model": c.model,
            "endpoints": c.base_urls
            or ([f"in-process transformers: {c.transformers_model}"] if c.backend == "transformers" else ["embedded SmolLM2-135M-Instruct (llama.cpp on 127.0.0.1)"]),
            "backend": c.backend,
            "usage": usage,
        }

    def caveats(self) -> list[str]:
        notes = [
            "Workers are simulated, not people: hours follow the stated utility model, calibrated only so that the "
            "median worker works the target hours under the 2024 US schedule.",
            "Every mechanism rebates its net revenue equally, including the US-federal baseline, whose real revenue "
            "funds public spending; welfare comparisons are between rebated schedules.",
        ]
        if self.config.workers.kind == "bounded":
            notes.append("Bounded-rational workers draw hours at random: realised welfare carries sampling noise of the period.")
        if self.config.needs_llm and not self.config.llm.base_urls and self.config.llm.backend == "openai":
            notes.append(
                "The language model is the embedded SmolLM2-135M-Instruct: a tiny model that exercises the pipeline, "
                "not one whose choices mean anything economically. Set llm.base_urls and llm.model to use a real model."
            )
        if self.config.workers.kind == "llm":
            notes.append(
                "Model-based planners (Saez, search, grid) plan against the rational model of these workers, "
                "not against the language model's choices; they are then judged on the language-model workers."
            )
        if self.config.workers.kind == "surrogate":
            notes.append(
                "Surrogate workers are a transformer distilled from recorded worker decisions (by default those of the "
                "embedded SmolLM2-135M workers): they reproduce that population, quirks included, not people. Model-based "
                "planners plan against the surrogate itself. `llm-economist distill eval` states how closely it matches."
            )
        if self.config.economy.eta == 0.0:
            notes.append("Utility is quasi-linear (eta = 0): no income effects, so a utilitarian planner would not redistribute.")
        return notes
