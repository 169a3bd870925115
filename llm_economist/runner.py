"""The runner: each planner, and the no-tax baseline, plays the tax years of one seed.

At the start of each tax year the planner proposes parameters (or an election picks them), then
the population plays the year through `simulation.play_year`; metrics and traces are recorded
and a checkpoint after each year lets `--resume` continue without redoing finished years. The
no-tax baseline (`no_tax`) plays on the same population and seed: gain captured is measured
against it. A language-model server that cannot heal (refused credentials, no such model,
nothing listening, or too many fallbacks in a row) stops the run at once; what finished is
written and reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .config import RunConfig, config_fingerprint, dump_config
from .economy.policy import Policy
from .factory import Setup, build_setup, mechanism_name
from .planner_factory import TALKING_PLANNERS, load_config, planner_for, planner_kind, sets_config_mechanism
from .governance import ElectionResult, Platform, config_platforms, default_proposers, hold_election, worker_platforms
from .llm import LLMClient, LLMUnavailable
from .llm.fallbacks import FallbackMonitor
from .llm.usage import add_usage, usage_spent
from .planners.base import Planner, YearRecord
from .progress import YearProgress
from .planners.fixed import BASELINE
from .reporting.run_results import TRACE_DIR, outcome_frame, write_results
from .simulation import Carried, Period, play_year

CHECKPOINT_DIR = "checkpoints"
UNFINISHED = "unfinished.json"  # what years a stop cut short spent, summed over resumes
PLANNER_DIR = "planners"  # files planners leave, one folder per planner


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
    carried: Carried = field(default_factory=Carried)  # the workers' memory and last decisions
    policy: Policy | None = None  # the policy of the last year played
    diagnostics: dict[str, float] = field(default_factory=dict)  # summed over steps
    elections: list[dict] = field(default_factory=list)
    usage: dict = field(default_factory=dict)  # language-model usage of the finished years, summed over resumes
    decisions: int = 0  # language-model worker decisions and planner proposals
    fallback_reasons: dict[str, int] = field(default_factory=dict)  # fallbacks among them, by reason
    wall_s: float = 0.0

    def count(self, reasons: list[str | None]) -> None:
        """Add language-model decisions, None where usable, else why they fell back."""
        self.decisions += len(reasons)
        for reason in filter(None, reasons):
            self.fallback_reasons[reason] = self.fallback_reasons.get(reason, 0) + 1


def selected_planners(config: RunConfig, labels: list[str] | None) -> list[str]:
    """The configured planners a run plays: all, or those `labels` name (each must be configured)."""
    names = [p.name for p in config.planners]
    unknown = [l for l in labels or [] if l not in names]
    if unknown:
        raise ValueError(f"planners {unknown} are not in the config; it has {names}")
    return [n for n in names if not labels or n in labels]


class Runner:
    """Runs the configured planners, and the no-tax baseline, for one seed into one output directory."""

    def __init__(
        self, config: RunConfig, out_dir: str | Path, resume: bool = False, progress: bool | YearProgress | None = True,
        client: LLMClient | None = None, baseline: bool = True,
    ) -> None:
        """`progress`: draw this seed's own bar (True), none (False or None), or count into a bar shared
        across seeds (`YearProgress`)."""
        self.config = config
        self.out = Path(out_dir)
        self.resume = resume
        self.progress = progress
        self.baseline = baseline  # play the no-tax baseline (data collection that needs no comparison skips it)
        self.fingerprint = config_fingerprint(config)
        self.client = client  # one handed in stays open for its owner (seeds share one server)
        self.setup: Setup | None = None
        self.runs: list[PlannerRun] = []  # what the last `run` finished, for callers that combine seeds
        self.stopped: str | None = None  # why the last `run` stopped early, if it did
        self._usage_at_year_start: dict | None = None  # the client's usage when the year in play began

    # -- set-up and checkpoints -------------------------------------------------------------
    def prepare(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / CHECKPOINT_DIR).mkdir(exist_ok=True)
        saved = self.out / "config.yaml"
        if self.resume and saved.is_file() and config_fingerprint(load_config(saved)) != self.fingerprint:
            raise ResumeError(f"{saved}: written by a different config; rerun without --resume or use a new --out")
        saved.write_text(dump_config(self.config))
        if not self.resume:
            self._unfinished_path().unlink(missing_ok=True)
        self.setup = build_setup(self.config, self.client, str(self.out / "llm_cache.sqlite"))

    def _unfinished_path(self) -> Path:
        return self.out / CHECKPOINT_DIR / UNFINISHED

    def _unfinished(self) -> dict | None:
        """The seed's record of what years a stop cut short spent, None when no stop cut one short."""
        path = self._unfinished_path()
        return json.loads(path.read_text()) if path.is_file() else None

    def _record_unfinished(self, run: PlannerRun, finished: PlannerRun | None) -> None:
        """Add what the year a stop cut short spent, and why its replies fell back, to the seed's record
        of such years: the year is replayed on resume, but its requests were sent."""
        record = self._unfinished() or {"usage": {}, "fallback_reasons": {}}
        client = self.setup.client
        if client is not None and self._usage_at_year_start is not None:
            record["usage"] = add_usage(record["usage"], usage_spent(client.usage.as_dict(), self._usage_at_year_start))
        before = finished.fallback_reasons if finished is not None else {}
        lost = {k: n - before.get(k, 0) for k, n in run.fallback_reasons.items() if n > before.get(k, 0)}
        record["fallback_reasons"] = add_usage(record["fallback_reasons"], lost)
        self._unfinished_path().write_text(json.dumps(record, indent=1))

    def _checkpoint(self, label: str) -> Path:
        return self.out / CHECKPOINT_DIR / f"{label}.pt"

    def _load(self, label: str) -> PlannerRun | None:
        path = self._checkpoint(label)
        if not path.exists():
            return None
        saved = torch.load(path, weights_only=False)
        if saved["fingerprint"] != self.fingerprint:
            raise ResumeError(f"{path}: written by a different config; rerun without --resume or use a new --out")
        run = saved["run"]
        if planner_kind(label, self.config) in TALKING_PLANNERS:
            run.planner.client = self.setup.client  # never pickled: handed back
        return run

    def _start(self, label: str, progress: bool) -> PlannerRun:
        run = self._load(label) if self.resume else None
        if run is None:
            run = self._fresh(label)
        run.planner.progress = progress  # planners that train for long draw their own bar when the run draws one
        return run

    def _fresh(self, label: str) -> PlannerRun:
        self._checkpoint(label).unlink(missing_ok=True)  # a fresh start must never resume an older run's checkpoint
        for part in (self.out / TRACE_DIR / label).glob("*.parquet"):
            part.unlink()
        run = PlannerRun(label, planner_for(label, self.config, self.setup.client))
        run.generator_state = torch.Generator().manual_seed(self.config.seed + 1).get_state()
        return run

    def _save(self, run: PlannerRun) -> None:
        path = self._checkpoint(run.label)
        torch.save({"fingerprint": self.fingerprint, "run": run}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)  # atomic: a crash mid-write never corrupts the last good checkpoint

    # -- a tax year -------------------------------------------------------------------------
    def play_year(self, run: PlannerRun, monitor: FallbackMonitor | None = None) -> None:
        """Propose, play the year's periods, record metrics and traces, account for language-model use."""
        e, model, client, monitor = self.config.economy, self.setup.model, self.setup.client, monitor or FallbackMonitor(0)
        started = time.perf_counter()
        usage_before = self._usage_at_year_start = client.usage.as_dict() if client is not None else None
        generator = torch.Generator()
        generator.set_state(run.generator_state)
        proposals_before = len(run.planner.log)
        theta = run.planner.mechanism.validate(self.choose_parameters(run))
        proposals = [row["failure"] for row in run.planner.log[proposals_before:]]
        run.count(proposals)
        monitor.observe(proposals)
        policy = run.policy = run.planner.mechanism.compile(theta)
        year_metrics, traces = [], []

        def record(period: Period) -> None:
            reasons = list(period.decisions.fallbacks)
            run.count(reasons)
            monitor.observe(reasons, first_period=period.step == 0)
            metrics = period.metrics(model)
            year_metrics.append(metrics)
            run.metrics.append({"planner": run.label, "year": period.year, "step": period.step, "step_in_year": period.step_in_year, **metrics})
            if self.config.output.traces:
                traces.append(outcome_frame(period.outcome, model.resolve(policy, period.outcome), run.label, period.year, period.step,
                                            self.config.output.trace_agents, period.decisions.columns))
            for key, value in period.decisions.diagnostics.items():
                run.diagnostics[key] = run.diagnostics.get(key, 0.0) + value

        run.carried = play_year(model, policy, run.carried, run.year, e.steps_per_year, generator, record)
        if traces:
            part = self.out / TRACE_DIR / run.label / f"year_{run.year:05d}.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            frame = pd.concat(traces, ignore_index=True)
            frame.insert(0, "seed", self.config.seed)  # as in the other tables: rows of several seeds stay apart when combined
            frame.to_parquet(part, index=False)
        run.history.append(YearRecord.of(run.year, theta, year_metrics))
        for name, data in run.planner.artifacts.items():
            path = self.out / PLANNER_DIR / run.label / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        mechanism = mechanism_name(planner_kind(run.label, self.config), self.config)
        run.parameters.extend(
            {"planner": run.label, "mechanism": mechanism, "year": run.year, "parameter": name, "value": value}
            for name, value in run.planner.mechanism.as_dict(theta).items()
        )
        if usage_before is not None:
            run.usage = add_usage(run.usage, usage_spent(client.usage.as_dict(), usage_before))
        run.generator_state = generator.get_state()
        run.year += 1
        run.wall_s += time.perf_counter() - started

    def choose_parameters(self, run: PlannerRun) -> torch.Tensor:
        """The planner's proposal, or, in an election year, the winning platform (held until the next)."""
        g, year = self.config.governance, run.year
        if not g.every_years or run.label == BASELINE:  # the baseline is no tax, whatever a vote would say
            return run.planner.propose(year, run.history, self.setup.planning_model)
        if year % g.every_years:
            return run.history[-1].theta
        result = self.elect(run)
        run.elections.append({"year": year, **result.to_dict(run.planner.mechanism)})
        return result.winning_platform.theta

    def elect(self, run: PlannerRun) -> ElectionResult:
        """Candidates: the status quo, the planner's proposal, config platforms, workers' proposals."""
        g, model, mechanism = self.config.governance, self.setup.model, run.planner.mechanism
        status_quo = run.history[-1].theta if run.history else mechanism.initial()
        platforms = [Platform("status quo", "status_quo", status_quo)]
        if g.planner_platform:
            platforms.append(Platform("planner", "planner", run.planner.propose(run.year, run.history, self.setup.planning_model)))
        if g.platforms and sets_config_mechanism(run.label, self.config):
            platforms += config_platforms(mechanism, {p.name: p.parameters for p in g.platforms})
        if g.worker_platforms:
            last = run.carried.last
            income = last.income if last is not None else model.respond(mechanism.compile(status_quo)).income
            proposers = default_proposers(income, g.worker_platforms)
            platforms += worker_platforms(model, mechanism, proposers, seed=self.config.seed + run.year)
        if len(platforms) < 2:
            raise ValueError("governance: an election needs at least two platforms; enable planner_platform, platforms or worker_platforms")
        ballots, diagnostics = model.workers.ballots(platforms, mechanism, model, run.carried.last, run.year)
        for key, value in diagnostics.items():
            run.diagnostics[key] = run.diagnostics.get(key, 0.0) + value
        return hold_election(g.rule, platforms, ballots)

    # -- the run ----------------------------------------------------------------------------
    def run(self, labels: list[str] | None = None, on_year_end: Callable[[PlannerRun], None] | None = None) -> dict:
        """Play every selected planner and the baseline to the last year, then write the result files.

        A language-model server that cannot heal ends the loop early: the years finished (and
        checkpointed) until then are written, and `stopped` in the summary says why.
        """
        selected = selected_planners(self.config, labels) + ([BASELINE] if self.baseline else [])
        self.prepare()
        self.runs, self.stopped = [], None
        monitor = FallbackMonitor(self.config.llm.max_consecutive_fallbacks)
        years = self.config.economy.years
        own = not isinstance(self.progress, YearProgress)
        bar = YearProgress(f"seed {self.config.seed}", bool(self.progress)) if own else self.progress
        for label in selected if own else []:  # a shared bar was told every seed's years up front
            bar.plan(label, years)
        try:
            for label in selected:
                run = self._start(label, bar.enabled)
                bar.skip(label, run.year)
                try:
                    while run.year < years:
                        bar.playing(f"seed {self.config.seed}, {run.label} year {run.year + 1}")
                        wall_before = run.wall_s
                        self.play_year(run, monitor)
                        self._save(run)
                        bar.done(label, run.year - 1, run.wall_s - wall_before)
                        if on_year_end is not None:
                            on_year_end(run)
                except LLMUnavailable as err:
                    self.stopped = str(err)
                    finished = self._load(label)  # the unfinished year is dropped; its checkpoint is not
                    self._record_unfinished(run, finished)
                    self.runs += [finished] if finished is not None else []
                    break
                self.runs.append(run)
            return write_results(self.out, self.setup, self.runs, self.fingerprint, self.stopped, self._unfinished())
        finally:
            if own:
                bar.close()
            if self.setup is not None:
                self.setup.close()  # a client the builder opened (and the embedded server) goes with the run
