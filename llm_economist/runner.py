"""The simulation loop: each planner faces the same population and seeds, year by year.

At the start of each tax year the planner proposes parameters; for every step of the year the
workers act on a batch of observations, the economy settles incomes, taxes, transfers and
utilities, and metrics and traces are recorded. A checkpoint after each year lets `resume`
continue an interrupted run without redoing finished years; traces go to disk year by year.
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
from .factory import DTYPES, llm_settings, make_planner, make_world
from .llm import LLMClient, open_client
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
from .workers.base import Decisions, Observation
from .workers.llm import LLMWorkers
from .world import World

CHECKPOINT_DIR = "checkpoints"
OWN_MECHANISM_KINDS = ("us_federal", "flat")  # planners that bring their own mechanism
TRACE_DIR = "trace_parts"
TRACE_COLUMNS = ["hours", "income", "tax", "consumption", "utility"]


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
    wall_s: float = 0.0

    @property
    def last(self) -> Outcome | None:
        return self.recent[-1] if self.recent else None


def config_fingerprint(config: RunConfig) -> str:
    """Hash of everything that changes results or files (not how language-model calls are transported)."""
    data = config.model_dump(mode="json")
    for transport in ("timeout_s", "max_retries", "concurrency", "cache_path", "price_prompt_per_million", "price_completion_per_million"):
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
    """Runs the configured planners into one output directory."""

    def __init__(
        self, config: RunConfig, out_dir: str | Path, resume: bool = False, progress: bool = True, client: LLMClient | None = None
    ) -> None:
        self.config = config
        self.out = Path(out_dir)
        self.resume = resume
        self.progress = progress
        self.fingerprint = config_fingerprint(config)
        self.population: Population | None = None
        self.world: World | None = None
        self.calibration: dict[str, float] = {}
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

    def _start(self, index: int) -> PlannerRun:
        planner_config = self.config.planners[index]
        path = self._checkpoint_path(planner_config.name)
        if self.resume and path.exists():
            saved = torch.load(path, weights_only=False)
            if saved["fingerprint"] != self.fingerprint:
                raise ResumeError(f"{path}: written by a different config; rerun without --resume or use a new --out")
            return saved["run"]
        path.unlink(missing_ok=True)  # a fresh start must never resume an older run's checkpoint
        stale = self.out / TRACE_DIR / planner_config.name
        if stale.exists():
            for part in stale.glob("*.parquet"):
                part.unlink()
        run = PlannerRun(planner_config.name, make_planner(planner_config, self.config))
        run.generator_state = torch.Generator().manual_seed(self.config.seed + 1).get_state()
        return run

    def _save(self, run: PlannerRun) -> None:
        path = self._checkpoint_path(run.label)
        tmp = path.with_suffix(".tmp")
        torch.save({"fingerprint": self.fingerprint, "run": run}, tmp)
        tmp.replace(path)  # atomic: a crash mid-write never corrupts the last good checkpoint

    # -- the loop ---------------------------------------------------------------------------
    def play_year(self, run: PlannerRun) -> None:
        """One tax year: propose, then steps_per_year settled periods; appends metrics and traces."""
        assert self.world is not None
        e, world, year = self.config.economy, self.world, run.year
        started = time.perf_counter()
        generator = torch.Generator()
        generator.set_state(run.generator_state)
        theta = run.planner.mechanism.validate(self.choose_parameters(run))
        policy = run.planner.mechanism.policy(theta.to(world.wage.dtype))
        year_metrics, traces = [], []
        for k in range(e.steps_per_year):
            step = year * e.steps_per_year + k
            expected = run.last.transfer if run.last is not None else torch.zeros(1, dtype=world.wage.dtype)
            obs = Observation(world.wage, policy, expected, tuple(run.recent), run.last_decisions, year, step)
            decisions = world.workers.act(obs, generator)
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
            {"planner": run.label, "year": year, "parameter": name, "value": value}
            for name, value in run.planner.mechanism.as_dict(theta).items()
        )
        run.generator_state = generator.get_state()
        run.year += 1
        run.wall_s += time.perf_counter() - started

    def choose_parameters(self, run: PlannerRun) -> torch.Tensor:
        """The planner's proposal, or, in an election year, the winning platform (held until the next)."""
        assert self.world is not None
        g, year = self.config.governance, run.year
        if not g.every_years:
            return run.planner.propose(year, run.history, self.world)
        if year % g.every_years:
            return run.history[-1].theta
        result = self.elect(run)
        run.elections.append({"year": year, **result.to_dict(run.planner.mechanism)})
        return result.winning_platform.theta

    def _planner_config(self, label: str):
        return next(p for p in self.config.planners if p.name == label)

    def elect(self, run: PlannerRun) -> ElectionResult:
        """Candidates: the status quo, the planner's proposal, config platforms, workers' proposals."""
        assert self.world is not None
        g, world, mechanism = self.config.governance, self.world, run.planner.mechanism
        status_quo = run.history[-1].theta if run.history else mechanism.initial()
        platforms = [Platform("status quo", "status_quo", status_quo)]
        if g.planner_platform:
            platforms.append(Platform("planner", "planner", run.planner.propose(run.year, run.history, world)))
        if g.platforms and self._planner_config(run.label).kind not in OWN_MECHANISM_KINDS:
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
        """Play every selected planner to the last year, then write the result files."""
        try:
            return self._run(labels, on_year_end)
        finally:
            if self.client is not None and self._owns_client:
                self.client.close()  # also stops the embedded server
                self.client = None

    def _run(self, labels: list[str] | None, on_year_end: Callable[[PlannerRun], None] | None) -> dict:
        indices = self._select(labels)
        self.prepare()
        runs = []
        total = len(indices) * self.config.economy.years
        with tqdm(total=total, desc="tax years", disable=not self.progress, unit="year") as bar:
            for index in indices:
                run = self._start(index)
                bar.update(run.year)
                while run.year < self.config.economy.years:
                    bar.set_postfix_str(f"{run.label} year {run.year + 1}")
                    self.play_year(run)
                    self._save(run)
                    bar.update(1)
                    if on_year_end is not None:
                        on_year_end(run)
                runs.append(run)
        return self.write_results(runs)

    def _select(self, labels: list[str] | None) -> list[int]:
        names = [p.name for p in self.config.planners]
        if not labels:
            return list(range(len(names)))
        unknown = [l for l in labels if l not in names]
        if unknown:
            raise ValueError(f"planners {unknown} are not in the config; it has {names}")
        return [names.index(l) for l in labels]

    # -- results ----------------------------------------------------------------------------
    def write_results(self, runs: list[PlannerRun]) -> dict:
        assert self.world is not None and self.population is not None
        pd.DataFrame([m for r in runs for m in r.metrics]).to_csv(self.out / "metrics.csv", index=False)
        pd.DataFrame([p for r in runs for p in r.parameters]).to_csv(self.out / "parameters.csv", index=False)
        elections = {r.label: r.elections for r in runs if r.elections}
        if elections:
            (self.out / "elections.json").write_text(json.dumps(elections, indent=2))
        log = [{"planner": r.label, **row} for r in runs for row in getattr(r.planner, "log", [])]
        if log:
            pd.DataFrame(log).to_csv(self.out / "planner_log.csv", index=False)
        finals = []
        for r in runs:
            policy = self.final_policy(r)
            columns = r.last_decisions.columns if r.last_decisions is not None else None
            finals.append(outcome_frame(r.last, policy, r.label, r.year - 1, len(r.metrics) - 1, None, columns))
        pd.concat(finals, ignore_index=True).to_parquet(self.out / "final_outcomes.parquet", index=False)
        if self.config.output.traces:
            parts = sorted((self.out / TRACE_DIR).glob("*/year_*.parquet"))
            wanted = {r.label for r in runs}
            frames = [pd.read_parquet(p) for p in parts if p.parent.name in wanted]
            pd.concat(frames, ignore_index=True).to_parquet(self.out / "traces.parquet", index=False)
        summary = self.summarise(runs)
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def final_policy(self, run: PlannerRun) -> Policy:
        assert self.world is not None
        return run.planner.mechanism.policy(run.history[-1].theta.to(self.world.wage.dtype))

    def summarise(self, runs: list[PlannerRun]) -> dict:
        assert self.world is not None and self.population is not None
        world = self.world
        laissez_faire = Policy(TaxSchedule.from_lists([0.0], [0.0], dtype=world.wage.dtype), rebate_share=0.0)
        baseline = float(world.welfare(world.respond(laissez_faire)))
        planners = {}
        for r in runs:
            final = r.history[-1].metrics  # the last year's means
            policy = self.final_policy(r)
            schedule = policy.schedule
            planners[r.label] = {
                "kind": r.planner.kind,
                "mechanism": r.planner.mechanism.name,
                "final_welfare": final["welfare"],
                **{k: v for k, v in final.items() if k != "welfare"},
                "parameters": r.planner.mechanism.as_dict(r.history[-1].theta),
                "schedule": {
                    "cutoffs": schedule.cutoffs.tolist(),
                    "rates": schedule.rates.detach().tolist(),
                    "lump_sum": float(torch.as_tensor(policy.lump_sum)),
                },
                "uses_population_model": r.planner.uses_population_model,
                "evaluations": r.planner.evaluations,
                "planner_fallbacks": getattr(r.planner, "fallbacks", None),
                "worker_diagnostics": r.diagnostics,
                "wall_s": r.wall_s,
            }
        best_label = max(planners, key=lambda k: planners[k]["final_welfare"])
        best = planners[best_label]["final_welfare"]
        for p in planners.values():
            p["welfare_pct_of_best"] = 100.0 * p["final_welfare"] / best if best > 0 else None
            gain = best - baseline
            p["gain_captured_pct"] = 100.0 * (p["final_welfare"] - baseline) / gain if gain > 0 else None
        wage = self.population.table["hourly_wage"]
        return {
            "name": self.config.name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config_fingerprint": self.fingerprint,
            "population": {
                "n_agents": self.population.n,
                "income_model": self.config.population.income_model,
                "median_wage": float(wage.median()),
                "mean_wage": float(wage.mean()),
            },
            "calibration": self.calibration,
            "welfare": {"name": self.config.welfare.name, **self.config.welfare.params(), "laissez_faire": baseline},
            "best": {"planner": best_label, "welfare": best},
            "llm": self.llm_summary(),
            "planners": planners,
            "caveats": self.caveats() + [f"{r.label}: {note}" for r in runs for note in getattr(r.planner, "notes", [])],
        }

    def llm_summary(self) -> dict | None:
        """Model, endpoints (never the key) and usage of the run's language-model calls."""
        if self.client is None:
            return None
        c = self.config.llm
        return {
            "model": c.model,
            "endpoints": c.base_urls
            or ([f"in-process transformers: {c.transformers_model}"] if c.backend == "transformers" else ["embedded SmolLM2-135M-Instruct (llama.cpp on 127.0.0.1)"]),
            "backend": c.backend,
            "usage": self.client.usage.as_dict(),  # calls of this invocation (a resumed run: the resumed part)
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
