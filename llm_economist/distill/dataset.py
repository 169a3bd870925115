"""Distillation data: workers' decisions under randomised mechanisms, one Parquet file per episode.

``collect`` plays the config's planners (normally ``random``, which draws each year's
parameters uniformly from the mechanism's bounds) once per episode. Episode e uses seed
``config.seed + e``, so every episode has a new census sample and social graph, and the random
planner draws new schedules. Each finished episode becomes ``episode_NNNNN.parquet`` (its
number in five digits), one row per planner, step and agent:

- who the agent is (persona fields, wage) and whom it listens to (``neighbours``, ``edge_types``);
- the mechanism it faced (``cutoffs``, ``rates``, ``lump_sum``), the transfer it expected and
  the last week it was shown (``shown_hours``, ``shown_income``; NaN in the first period);
- what it did: ``hours`` and the settled ``income``, ``tax`` and ``transfer``;
- the targets: ``hour_distribution`` over the bins in ``meta.json`` (LLM log-probabilities at
  the sampling temperature, or a bounded-rational worker's logit probabilities),
  ``stated_hours``, the reasoning channels, and ``fallback`` for replies that were not decisions.

With ``explore`` > 0 each agent's last week is, at that chance per decision, shown to it as a
random one: hours drawn uniformly from the decision bins, settled under the rules in force (its
income, tax and what it left to spend; the transfer is the one paid). What actually happened
carries on unchanged. Traces alone tie a worker's last hours to who it is; the random weeks let a
surrogate learn how much the last week itself moves the choice (persistence) and how the rate
on a different income does. The rows record what was shown (``shown_hours``, ``shown_income``),
which is what the surrogate reads.

Interrupting loses at most the current episode: finished episodes are skipped, and an unfinished
one is played again, its language-model replies served from the shared cache. ``load_sequences``
turns the files into tensors, one sequence per episode and planner.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig, config_fingerprint, dump_config
from ..economy.labour import hour_bins, llm_hour_bins, nearest_bin
from ..economy.outcome import Outcome
from ..economy.policy import Policy
from ..economy.tax import TaxSchedule
from ..economy.utility import annual_income, utility
from ..executor import IN_PROCESS, run_tasks
from ..factory import Setup, build_setup, embedded_slots, llm_settings
from ..planner_factory import make_planner
from ..llm import LLMSettings, open_client
from ..personas import SocialGraph, population_graph
from ..planners.base import YearRecord
from ..reporting.run_results import outcome_frame
from ..simulation import Carried, Period, Show, play_year
from ..workers.prompts import CHANNELS
from ..surrogate.features import CATEGORICAL

PERSONA_COLUMNS = ("age", "sex", "education", "occupation_group_code", "marital_status", "children", "household_size", "earners", "hourly_wage")
META = "meta.json"


class DatasetError(ValueError):
    """A dataset directory that cannot be used as asked; the message says why."""


def decision_bins(config: RunConfig) -> list[float]:
    """The hour bins the workers choose from: the LLM's 10-hour bins or the bounded workers' grid."""
    if config.workers.kind == "llm":
        return [float(b) for b in llm_hour_bins(config.economy.max_hours)]
    if config.workers.kind == "bounded":
        return hour_bins(config.economy.max_hours, config.workers.hour_bins).tolist()
    raise DatasetError("distill collect: workers.kind must be llm or bounded (rational workers have no hour distribution)")


def episode_path(out: Path, episode: int) -> Path:
    return out / f"episode_{episode:05d}.parquet"


def collect(config: RunConfig, out: str | Path, episodes: int, progress: bool = True, address: str = IN_PROCESS,
            explore: float = 0.0) -> Path:
    """Play ``episodes`` episodes into ``out`` (skipping finished ones); returns ``out``.

    With an ``address`` (see `executor.run_tasks`) every episode is a Ray task; each writes the
    same file it would here. Language-model episodes share the dataset's response cache and the
    servers in `llm.base_urls`, or one embedded server per machine.
    """
    if episodes < 1:
        raise DatasetError(f"distill collect: episodes must be >= 1, got {episodes}")
    if not 0.0 <= explore <= 1.0:
        raise DatasetError(f"distill collect: explore is a chance in [0, 1], got {explore}")
    out = Path(out).resolve()  # Ray workers run in directories of their own
    bins = decision_bins(config)
    fingerprint = config_fingerprint(config)
    meta_path = out / META
    if meta_path.is_file():
        saved = json.loads(meta_path.read_text())
        if saved.get("fingerprint") != fingerprint or saved.get("explore", 0.0) != explore:
            raise DatasetError(f"{out}: collected with a different config or explore; use a new --out to collect another dataset")
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "fingerprint": fingerprint,
        "explore": explore,
        "workers": config.workers.kind,
        "bins": bins,
        "channels": list(CHANNELS) if config.workers.kind == "llm" else [],
        "max_hours": config.economy.max_hours,
        "mechanism": config.mechanism.name,
        "planners": [p.name for p in config.planners],
        "model": config.llm.model if config.workers.kind == "llm" else None,
        "endpoints": config.llm.base_urls or ["embedded"] if config.workers.kind == "llm" else None,
        "config": dump_config(config),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    todo = [episode for episode in range(episodes) if not episode_path(out, episode).exists()]
    settings = llm_settings(config, str(out / "llm_cache.sqlite")) if config.needs_llm else None
    run_tasks(_collect_episode, [(config, out, episode, settings, explore) for episode in todo], address, progress,
              description="episodes", embedded_llm=embedded_slots(config))
    return out


def _collect_episode(config: RunConfig, out: Path, episode: int, settings: LLMSettings | None, explore: float) -> dict:
    with open_client(settings) if settings is not None else nullcontext() as client:
        setup = build_setup(config.model_copy(update={"seed": config.seed + episode}, deep=True), client)
        try:
            frame = episode_frame(setup, episode, explore)
        finally:
            setup.close()
    path = episode_path(out, episode)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)  # a file that exists is complete
    return {"episode": episode}


def random_weeks(setup: Setup, chance: float, seed: int) -> Show:
    """Show each agent, at ``chance`` per decision, a random last week in place of its own."""
    model = setup.model
    bins = torch.tensor(decision_bins(setup.config), dtype=model.wage.dtype)
    generator = torch.Generator().manual_seed(seed)

    def show(last: Outcome, policy: Policy) -> Outcome:
        n = len(model.wage)
        picked = torch.rand(n, generator=generator, dtype=model.wage.dtype) < chance
        hours = torch.where(picked, bins[torch.randint(len(bins), (n,), generator=generator)], last.hours)
        income = annual_income(model.wage, hours)
        tax = torch.where(picked, policy.schedule.tax(income), last.tax)
        consumption = income - tax + last.transfer
        return Outcome(hours, income, tax, last.transfer, consumption, utility(consumption, hours, model.prefs), last.funding_rate)

    return show


def episode_frame(setup: Setup, episode: int, explore: float = 0.0) -> pd.DataFrame:
    """Every planner of the config plays the episode's years through the simulation loop; one row
    per planner, step and agent, recorded as the periods are played."""
    config, model, population = setup.config, setup.model, setup.population
    graph = setup.graph if setup.graph is not None else population_graph(population, config.seed)
    persona = population.table[list(PERSONA_COLUMNS)].copy()
    for name in CATEGORICAL:
        persona[name] = persona[name].astype(str)
    persona["agent_id"] = np.arange(population.n)
    persona["neighbours"] = graph.neighbours.tolist()
    persona["edge_types"] = graph.edge_type.long().tolist()

    rows = []
    for planner_config in config.planners:
        planner = make_planner(planner_config, config, setup.client)
        generator = torch.Generator().manual_seed(config.seed + 1)  # as the runner seeds each planner's run
        show = random_weeks(setup, explore, config.seed + 2) if explore > 0 else None
        carried, history = Carried(), []
        for year in range(config.economy.years):
            theta = planner.mechanism.validate(planner.propose(year, history, model))
            policy = planner.mechanism.compile(theta)
            if policy.by_filing or policy.funding != "rebate":
                raise ValueError(f"distill collect: planners.{planner_config.name}: its mechanism {planner.mechanism.name} taxes by "
                                 "filing status or funds itself with a flat rate; traces record one schedule with an equal rebate")
            schedule = {
                "cutoffs": policy.schedule.cutoffs.tolist(), "rates": policy.schedule.rates.detach().reshape(-1).tolist(),
                "lump_sum": float(torch.as_tensor(policy.lump_sum)), "rebate_share": float(policy.rebate_share),
            }
            periods: list[Period] = []
            carried = play_year(model, policy, carried, year, config.economy.steps_per_year, generator, periods.append, show)
            for period in periods:
                frame = outcome_frame(period.outcome, policy, planner_config.name, year, period.step, None, period.decisions.columns)
                frame["expected_transfer"] = float(period.expected_transfer.reshape(-1)[0])
                shown = period.shown_last
                frame["shown_hours"] = shown.hours.numpy() if shown is not None else np.nan
                frame["shown_income"] = shown.income.numpy() if shown is not None else np.nan
                for name, value in schedule.items():
                    frame[name] = [value] * len(frame)
                rows.append(frame)
            history.append(YearRecord.of(year, theta, [period.metrics(model) for period in periods]))
    frame = pd.concat(rows, ignore_index=True).merge(persona, on="agent_id")
    frame = frame.sort_values(["planner", "step", "agent_id"], ignore_index=True)
    frame.insert(0, "episode", episode)
    if "stated_hours" not in frame:  # bounded workers state nothing beyond their draw
        frame["stated_hours"] = frame["hours"]
        frame["fallback"] = False
    keep = ["episode", "planner", "year", "step", "agent_id", *PERSONA_COLUMNS, "neighbours", "edge_types",
            "cutoffs", "rates", "lump_sum", "rebate_share", "expected_transfer", "shown_hours", "shown_income",
            "hours", "income", "tax", "transfer",
            "hour_distribution", "stated_hours", "fallback", *[c for c in CHANNELS if c in frame]]
    return frame[keep]


# -- reading -------------------------------------------------------------------------------


@dataclass
class PlannerEpisode:
    """One episode of one planner: N agents over T steps, as tensors the surrogate trains on."""

    episode: int
    planner: str
    table: pd.DataFrame  # (N,) persona rows
    graph: SocialGraph
    wage: torch.Tensor  # (N,) float64
    policies: list[Policy]  # (T,)
    expected_transfer: torch.Tensor  # (T,)
    last_hours: torch.Tensor  # (T, N) the last week's hours as shown at each period (NaN in the first)
    last_income: torch.Tensor  # (T, N) and its income
    target: torch.Tensor  # (T, N, B) hour distribution (one-hot of the stated bin when no log-probabilities)
    decided: torch.Tensor  # (T, N) bool: a real decision (not a fallback)
    channels: torch.Tensor  # (T, N, C) stated channels, NaN where missing

    @property
    def n(self) -> int:
        return self.wage.shape[0]

    @property
    def steps(self) -> int:
        return self.target.shape[0]


def read_meta(data: str | Path) -> dict:
    path = Path(data) / META
    if not path.is_file():
        raise DatasetError(f"{data}: no {META}; collect a dataset with `llm-economist distill collect`")
    return json.loads(path.read_text())


def episode_files(data: str | Path) -> list[Path]:
    files = sorted(Path(data).glob("episode_*.parquet"))
    if not files:
        raise DatasetError(f"{data}: no finished episodes yet")
    return files


def load_sequences(data: str | Path, episodes: list[int] | None = None) -> list[PlannerEpisode]:
    """Every (episode, planner) sequence in ``data``, or those of the given episodes."""
    meta = read_meta(data)
    bins = torch.tensor(meta["bins"], dtype=torch.float64)
    sequences = []
    for path in episode_files(data):
        episode = int(path.stem.split("_")[1])
        if episodes is not None and episode not in episodes:
            continue
        frame = pd.read_parquet(path)
        missing = {"agent_id", "step", "hour_distribution", "neighbours", "shown_hours", "shown_income"} - set(frame.columns)
        if missing:
            raise DatasetError(f"{path}: missing columns {sorted(missing)}; was it written by `distill collect`?")
        for planner, rows in frame.groupby("planner", sort=True):
            sequences.append(_sequence(episode, str(planner), rows, bins, meta["channels"], path))
    return sequences


def _sequence(episode: int, planner: str, rows: pd.DataFrame, bins: torch.Tensor, channels: list[str], path: Path) -> PlannerEpisode:
    steps = sorted(rows["step"].unique())
    first = rows[rows["step"] == steps[0]].sort_values("agent_id")
    n, t, b = len(first), len(steps), len(bins)
    if len(rows) != n * t:
        raise DatasetError(f"{path}: planner {planner} has {len(rows)} rows, expected {n} agents x {t} steps")
    rows = rows.sort_values(["step", "agent_id"])
    width = max(len(x) for x in first["neighbours"])
    neighbours = np.full((n, max(width, 1)), -1, dtype=np.int64)
    edge_types = np.full((n, max(width, 1)), -1, dtype=np.int64)
    for i, (nb, et) in enumerate(zip(first["neighbours"], first["edge_types"])):
        neighbours[i, : len(nb)], edge_types[i, : len(et)] = nb, et
    graph = SocialGraph(torch.tensor(neighbours), torch.tensor(edge_types, dtype=torch.int8))
    per_step = rows.groupby("step", sort=True).first()
    policies = [
        Policy(TaxSchedule.from_lists(list(c), list(r)), float(l), float(s))
        for c, r, l, s in zip(per_step["cutoffs"], per_step["rates"], per_step["lump_sum"], per_step["rebate_share"])
    ]
    stated = torch.tensor(rows["stated_hours"].to_numpy(float)).view(t, n)
    decided = ~torch.tensor(rows["fallback"].to_numpy(bool)).view(t, n)
    target = nearest_bin(stated, bins)
    for k, dist in enumerate(rows["hour_distribution"]):
        if dist is not None and len(dist) == b:
            target[k // n, k % n] = torch.tensor(np.array(dist, float))
    if channels:
        stated_channels = torch.tensor(rows[channels].to_numpy(float)).view(t, n, len(channels))
    else:
        stated_channels = torch.full((t, n, 0), float("nan"), dtype=torch.float64)
    return PlannerEpisode(
        episode, planner, first[list(PERSONA_COLUMNS)].reset_index(drop=True),
        graph, torch.tensor(first["hourly_wage"].to_numpy(float)), policies,
        torch.tensor(per_step["expected_transfer"].to_numpy(float)),
        torch.tensor(rows["shown_hours"].to_numpy(float)).view(t, n), torch.tensor(rows["shown_income"].to_numpy(float)).view(t, n),
        target, decided, stated_channels,
    )


