"""Tuning examples: the decision prompts a language-model worker would be shown, each paired with
the hour distribution a target population chose in that very situation.

The target population (bounded-rational workers with habit and imitation by default) plays the
config's economy under the config's planners (normally `random`, the distillation sampler: new
mechanism parameters drawn from their bounds every year), one new census sample and social graph
per episode. At every decision the prompt is built by `workers.prompts.DecisionPrompts` from the
observation the target acted on, in the config's decision format, with the hour options shuffled
per agent and episode, so the option order carries no information. With `explore` > 0 a worker is
shown, at that chance per decision, a random last week settled under the rules in force
(`distill.dataset.random_weeks`), so that what the last week itself does is identified.

With `pairs`, every decision is also recorded as its twin: the same worker, week, memory and
contacts under a second mechanism drawn by the same sampler, with the target's distribution
there. The pair isolates what a change of mechanism alone does to the choice, which the tuning
loss can then weigh on its own (`LoraSettings.contrast_weight`); twins follow all the plain
examples, so the plain ones are the same with or without them.

Episodes are split by number: the last `held_out` share of them (new personas, new mechanisms) is
kept for early stopping and the held-out figures.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig, config_fingerprint
from ..economy.labour import llm_hour_bins
from ..factory import build_setup
from ..planner_factory import make_planner
from ..population_model import PopulationModel
from ..simulation import Carried, play_year
from ..distill.dataset import random_weeks
from ..planners.base import Planner
from ..workers.base import Decisions, Observation, Workers
from ..workers.rational import BoundedRationalWorkers
from ..workers.prompts import DecisionPrompts

EXAMPLES = "examples.parquet"
TWIN_SEEDS = 1_000_000  # the twins' sampler is seeded this far from the episode's, away from every other episode's


class TuneDataError(ValueError):
    """A tuning config or examples file that cannot be used; the message names the field."""


def check_target(config: RunConfig) -> None:
    """The target must be a population whose decisions carry a distribution over the language
    model's own hour bins (10-hour steps), or its choices could not be a soft target."""
    w = config.workers
    if w.kind != "bounded":
        raise TuneDataError(f"workers.kind: the tuning target must be a population with choice probabilities (bounded), got {w.kind}")
    llm_bins = llm_hour_bins(config.economy.max_hours)
    if w.hour_bins != len(llm_bins):
        raise TuneDataError(f"workers.hour_bins: the target must choose among the language model's {len(llm_bins)} bins "
                            f"{', '.join(map(str, llm_bins))} h, so set it to {len(llm_bins)} (got {w.hour_bins})")


class RecordingWorkers(Workers):
    """The target population, each of whose decisions is also written down with the prompt a
    language-model worker would have been shown in its place; with a `twin_planner`, each decision
    also as its twin under that planner's mechanism of the year."""

    name = "recording"

    def __init__(self, target: BoundedRationalWorkers, prompts: DecisionPrompts) -> None:
        self.target = target
        self.prompts = prompts
        self.twin_planner: Planner | None = None  # set per planner of the episode when twins are made
        self.memory = prompts.memory  # the prompt shows this many recent weeks
        self.rows: list[dict] = []
        self.twins: list[dict] = []

    def _record(self, into: list[dict], obs: Observation, probabilities: torch.Tensor) -> None:
        for agent in range(len(obs.wage)):
            into.append({
                "step": obs.step, "agent": agent,
                "messages": json.dumps(self.prompts.request(agent, obs).messages),
                "options": ",".join(map(str, self.prompts.options(agent, obs))),
                "target": probabilities[agent].tolist(),
            })

    def act(self, obs: Observation, generator: torch.Generator) -> Decisions:
        decisions = self.target.act(obs, generator)
        self._record(self.rows, obs, decisions.columns["hour_distribution"])
        if self.twin_planner is not None:
            mechanism = self.twin_planner.mechanism
            twin = replace(obs, policy=mechanism.compile(mechanism.validate(self.twin_planner.propose(obs.year, [], None))))
            last = obs.last.hours if obs.last is not None else None
            self._record(self.twins, twin, self.target.probabilities(twin.wage, twin.policy, twin.expected_transfer, last))
        return decisions

    def expected_hours(self, wage, policy, transfer):
        return self.target.expected_hours(wage, policy, transfer)


def episode_examples(config: RunConfig, episode: int, explore: float, pairs: bool = False) -> pd.DataFrame:
    """One episode's decisions as prompts and target distributions (`twin` False), then with
    `pairs` their twins (`twin` True, in the same order)."""
    check_target(config)
    episode_config = config.model_copy(update={"seed": config.seed + episode}, deep=True)
    setup = build_setup(episode_config)
    w = config.workers
    prompts = DecisionPrompts(setup.population, setup.graph, setup.model.prefs, episode_config.seed, w.memory, w.neighbours,
                              True, w.decision_format, w.satisfaction)
    recorder = RecordingWorkers(setup.model.workers, prompts)
    base = setup.model
    model = PopulationModel(base.wage, base.prefs, recorder, config.welfare.name, config.welfare.params(), units=base.units)
    generator = torch.Generator().manual_seed(episode_config.seed + 1)
    show = random_weeks(setup, explore, episode_config.seed + 2) if explore > 0 else None
    for planner_config in config.planners:
        planner = make_planner(planner_config, episode_config)
        if pairs:
            recorder.twin_planner = make_planner(planner_config, episode_config.model_copy(update={"seed": episode_config.seed + TWIN_SEEDS}))
        carried = Carried()
        for year in range(config.economy.years):
            policy = planner.mechanism.compile(planner.mechanism.validate(planner.propose(year, [], model)))
            carried = play_year(model, policy, carried, year, config.economy.steps_per_year, generator, show=show)
    frames = [pd.DataFrame(recorder.rows).assign(twin=False)] + ([pd.DataFrame(recorder.twins).assign(twin=True)] if pairs else [])
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "episode", episode)
    return frame


def make_examples(config: RunConfig, episodes: int, explore: float, held_out: float, out: Path, pairs: bool = False) -> pd.DataFrame:
    """Every episode's examples with their split (the plain ones first, then any twins), written to
    `out/examples.parquet`; read back on a rerun, which must ask for the same examples (else a
    TuneDataError says so)."""
    path, made = out / EXAMPLES, out / "examples.json"
    settings = {"config": config_fingerprint(config), "episodes": episodes, "explore": explore, "held_out": held_out, "pairs": pairs}
    if path.is_file() and made.is_file():
        if json.loads(made.read_text()) != settings:
            raise TuneDataError(f"{out}: its examples were made from another config, --episodes, --explore, --held-out or --pairs; "
                                "rerun with those, or use a new --out")
        return pd.read_parquet(path)
    if episodes < 2:
        raise TuneDataError(f"tune: episodes must be >= 2 (some are held out), got {episodes}")
    if not 0 < held_out < 1:
        raise TuneDataError(f"tune: held_out is a share in (0, 1), got {held_out}")
    frame = pd.concat([episode_examples(config, e, explore, pairs) for e in range(episodes)], ignore_index=True)
    frame = pd.concat([frame[~frame["twin"]], frame[frame["twin"]]], ignore_index=True)
    first_held_out = episodes - max(1, int(round(held_out * episodes)))
    frame["split"] = np.where(frame["episode"] >= first_held_out, "held_out", "train")
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    made.write_text(json.dumps(settings))
    return frame


def twin_index(examples: pd.DataFrame) -> list[int]:
    """For each example the row of its twin (the same decision under the other mechanism), -1 if none."""
    key = list(zip(examples["episode"], examples["step"], examples["agent"]))
    rows: dict[tuple, dict[bool, int]] = {}
    for i, (k, twin) in enumerate(zip(key, examples["twin"])):
        if twin in rows.setdefault(k, {}):
            raise TuneDataError(f"examples: decision {k} recorded twice")
        rows[k][twin] = i
    return [rows[k].get(not twin, -1) for k, twin in zip(key, examples["twin"])]


def prompt_fingerprint(examples: pd.DataFrame) -> str:
    """sha256 of the first episode's prompts: an adapter records it, and a test rebuilds those
    prompts, so a change to the prompt text shows as a test failure, not a silently stale adapter."""
    first = examples[(examples["episode"] == examples["episode"].min()) & ~examples["twin"]]
    return hashlib.sha256("\n".join(first["messages"]).encode()).hexdigest()[:16]
