"""The planners a config names, and the config loader that builds each of them once.

Above the factory: planners such as PPO train on the environments, which build their populations
through the factory, so the planner registry sits on top of both. This module alone knows which
planners bring their own mechanism, which talk to a language model and which take the run's seed.
"""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError, PlannerConfig, RunConfig, read_config
from .factory import OWN_MECHANISM_NAMES, check_options, make_config_mechanism, options_at, worker_adapter
from .llm import LLMClient
from .planners.base import Planner
from .planners.fixed import BASELINE, FixedPlanner, flat_planner, no_tax_planner, us_federal_planner
from .planners.gradient import GradientPlanner
from .planners.llm import LLMPlanner
from .planners.ppo import PPOPlanner
from .planners.random import RandomPlanner
from .planners.saez import SaezPlanner
from .planners.search import GridPlanner, SearchPlanner

OWN_MECHANISM_PLANNERS = {"us_federal": us_federal_planner, "flat": flat_planner}
PLANNERS = {"fixed": FixedPlanner, "saez": SaezPlanner, "search": SearchPlanner, "grid": GridPlanner, "llm": LLMPlanner,
            "gradient": GradientPlanner, "random": RandomPlanner, "ppo": PPOPlanner}
SEEDED_PLANNERS = ("search", "llm", "gradient", "random", "ppo")  # their `seed` defaults to the run's
TALKING_PLANNERS = ("llm",)  # built with the run's language-model client


def make_planner(planner: PlannerConfig, config: RunConfig, client: LLMClient | None = None) -> Planner:
    """The planner a config entry names; `us_federal` and `flat` bring their own mechanisms and
    `llm` gets the client. A ConfigError names the entry (`planners.1`) or its option at fault
    (`planners.1.budget`)."""
    where, options = f"planners.{config.planners.index(planner)}", planner.options
    if planner.kind in OWN_MECHANISM_PLANNERS:
        factory, args = OWN_MECHANISM_PLANNERS[planner.kind], ()
    else:
        factory, args = PLANNERS[planner.kind], (make_config_mechanism(config),)
    if planner.kind in TALKING_PLANNERS:
        args += (client,)
    if planner.kind in SEEDED_PLANNERS:
        options.setdefault("seed", config.seed)
    check_options(factory, options, where, planner.kind, skip=len(args))
    with options_at(options, where, planner.kind):
        return factory(*args, **options)


def planner_kind(label: str, config: RunConfig) -> str:
    """The kind of the planner a run plays under `label` (the baseline's kind is its label)."""
    return BASELINE if label == BASELINE else next(p.kind for p in config.planners if p.name == label)


def sets_config_mechanism(label: str, config: RunConfig) -> bool:
    """Whether the planner under `label` sets the config's mechanism (not one of its own)."""
    return planner_kind(label, config) not in OWN_MECHANISM_NAMES


def planner_for(label: str, config: RunConfig, client: LLMClient | None) -> Planner:
    """The planner a run plays under `label`: a configured one, or the no-tax baseline."""
    if label == BASELINE:
        return no_tax_planner()
    return make_planner(next(p for p in config.planners if p.name == label), config, client)


def check_buildable(config: RunConfig) -> None:
    """Build the mechanism and every planner once (cheap: no population is touched), so that a bad
    option fails at load, named, rather than after minutes of set-up."""
    for i, planner in enumerate(config.planners):
        if planner.name == BASELINE:
            raise ConfigError(f"planners.{i}.label: {BASELINE} is reserved for the no-tax baseline every run adds; choose another label")
    make_config_mechanism(config)
    for planner in config.planners:
        make_planner(planner, config)
    worker_adapter(config)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read YAML (or start from defaults), apply overrides, validate (`config.read_config`), and build
    the mechanism and planners once to check their options."""
    config = read_config(path, overrides)
    try:
        check_buildable(config)
    except ConfigError as err:
        raise ConfigError(f"invalid config:\n  {err}") from None
    return config
