"""Build the objects a run needs from a validated config: world, mechanism, planners."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint
from pathlib import Path

import torch
from pydantic import ValidationError, create_model

from .config import STRICT, ConfigError, PlannerConfig, RunConfig
from .economy.labour import best_response_hours, calibrate_psi
from .economy.outcome import hours_shares
from .economy.tax import TaxSchedule
from .economy.utility import Preferences
from .llm import LLMClient, LLMSettings
from .mechanisms.base import Mechanism
from .mechanisms.registry import available_mechanisms, make_mechanism
from .planners.base import Planner
from .personas import Population, population_graph
from .surrogate.model import SurrogatePopulation
from .planners.fixed import FixedPlanner, flat_planner, us_federal_planner
from .planners.gradient import GradientPlanner
from .planners.llm import LLMPlanner
from .planners.random import RandomPlanner
from .planners.saez import SaezPlanner
from .planners.search import GridPlanner, SearchPlanner
from .results import BASELINE
from .workers.base import WorkerPolicy
from .workers.llm import LLMWorkers
from .workers.rational import BoundedRationalWorkers, RationalWorkers
from .workers.surrogate import SurrogateWorkers, shipped_model_path
from .world import World

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def calibrated_preferences(config: RunConfig, wage: torch.Tensor) -> tuple[Preferences, dict[str, float]]:
    """Preferences with psi set so the median worker works `target_median_hours` under US 2024
    rates (no rebate: US revenue funds the government), and the resulting hours statistics."""
    e = config.economy
    base = Preferences(eta=e.eta, elasticity=e.elasticity, max_hours=e.max_hours)
    us = TaxSchedule.us_federal_2024(dtype=wage.dtype)
    prefs = calibrate_psi(wage, us, base, e.target_median_hours)
    hours = best_response_hours(wage, us, 0.0, prefs)
    shares = {f"{name}_us_2024": value for name, value in hours_shares(hours, e.max_hours).items()}
    return prefs, {"psi": prefs.psi, "median_hours_us_2024": float(hours.median()), **shares}


def llm_settings(config: RunConfig, cache_path: str | None) -> LLMSettings:
    c = config.llm
    return LLMSettings(
        base_urls=tuple(c.base_urls), model=c.model, api_key_env=c.api_key_env, backend=c.backend,
        transformers_model=c.transformers_model, temperature=c.temperature, max_tokens=c.max_tokens,
        timeout_s=c.timeout_s, max_retries=c.max_retries, concurrency=c.concurrency,
        cache_path=c.cache_path or cache_path, price_prompt_per_million=c.price_prompt_per_million,
        price_completion_per_million=c.price_completion_per_million, seed=config.seed,
    )


def make_workers(config: RunConfig, prefs: Preferences, population: Population, client: LLMClient | None) -> WorkerPolicy:
    w = config.workers
    if w.kind == "rational":
        return RationalWorkers(prefs)
    if w.kind == "bounded":
        return BoundedRationalWorkers(prefs, w.temperature, w.hour_bins)
    graph = population_graph(population, config.seed)
    if w.kind == "surrogate":
        return surrogate_workers(config, population, graph)
    if client is None:
        raise ValueError("workers.kind = llm needs a language-model client")
    return LLMWorkers(
        population, graph, client, prefs, seed=config.seed, memory=w.memory, neighbours=w.neighbours,
        archetypes=w.archetypes, archetype_check=w.archetype_check, raw_text=w.raw_text, scored=w.scored,
    )


def surrogate_workers(config: RunConfig, population: Population, graph) -> SurrogateWorkers:
    w = config.workers
    path = Path(w.surrogate_model) if w.surrogate_model else shipped_model_path()
    if not path.is_file():
        raise ValueError(f"workers.surrogate_model: no model file at {path}")
    model = SurrogatePopulation.load(path)
    top = max(model.meta.get("bins", [0.0]))
    if top > config.economy.max_hours:
        raise ValueError(f"workers.surrogate_model: its hour bins reach {top:g} h, above economy.max_hours = {config.economy.max_hours:g}")
    return SurrogateWorkers(model, population, graph, w.device, w.horizon)


def make_world(config: RunConfig, population: Population, wage: torch.Tensor, client: LLMClient | None = None) -> tuple[World, dict[str, float]]:
    prefs, calibration = calibrated_preferences(config, wage)
    workers = make_workers(config, prefs, population, client)
    world = World(wage, prefs, workers, config.welfare.name, config.welfare.params(), llm=client)
    return world, calibration


OWN_MECHANISM_PLANNERS = {"us_federal": us_federal_planner, "flat": flat_planner}
# The registered name of the mechanism a planner kind sets: its own, else the config's.
OWN_MECHANISM_NAMES = {"us_federal": "us_federal_2024", "flat": "flat", BASELINE: "flat"}
PLANNERS = {"fixed": FixedPlanner, "saez": SaezPlanner, "search": SearchPlanner, "grid": GridPlanner, "llm": LLMPlanner,
            "gradient": GradientPlanner, "random": RandomPlanner}
SEEDED_PLANNERS = ("search", "llm", "gradient", "random")  # their `seed` defaults to the run's


def _check_options(factory: Callable, options: dict, where: str, title: str, skip: int = 0) -> None:
    """Refuse names the factory does not take and values of the wrong type (strictly, as in the
    config: a boolean is not a number, NaN is no value), naming `where.<option>`."""
    params = list(inspect.signature(factory, eval_str=True).parameters.values())[skip:]
    names = sorted(p.name for p in params)
    for key in options:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown option for {title}; options are {', '.join(names)}")
    fields = {p.name: (p.annotation, ... if p.default is p.empty else p.default) for p in params}
    try:
        create_model(title, __config__=STRICT, **fields).model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        name, *inner = first["loc"]
        path = ".".join([where, str(name), *(str(i) for i in inner if isinstance(i, int))])  # list indices, not union members
        raise ConfigError(f"{path}: {first['msg']}") from None


@contextmanager
def _options_at(options: dict, where: str, title: str) -> Iterator[None]:
    """A ValueError from building names the option its message mentions first, else the entry."""
    try:
        yield
    except ValueError as err:
        message = str(err)
        mentioned = [(m.start(), str(key)) for key in options if (m := re.search(rf"\b{re.escape(str(key))}\b", message))]
        place = f"{where}.{min(mentioned)[1]}" if mentioned else f"{where} ({title})"
        raise ConfigError(f"{place}: {message}") from None


def mechanism_name(kind: str, config: RunConfig) -> str:
    return OWN_MECHANISM_NAMES.get(kind, config.mechanism.name)


def make_config_mechanism(config: RunConfig) -> Mechanism:
    """The config's mechanism; a ConfigError names `mechanism.name` or the option at fault."""
    name, options = config.mechanism.name, config.mechanism.options
    registry = available_mechanisms()
    if name not in registry:
        raise ConfigError(f"mechanism.name: unknown mechanism {name!r}; available: {', '.join(sorted(registry))}")
    if not isinstance(registry[name], EntryPoint):  # a plug-in may take **kwargs: its own errors pass through
        _check_options(registry[name], options, "mechanism.options", name)
    with _options_at(options, "mechanism.options", name):
        return make_mechanism(name, **options)


def make_planner(planner: PlannerConfig, config: RunConfig) -> Planner:
    """The planner a config entry names; `us_federal` and `flat` bring their own mechanisms. A
    ConfigError names the entry (`planners.1`) or its option at fault (`planners.1.budget`)."""
    where, options = f"planners.{config.planners.index(planner)}", planner.options
    if planner.kind in OWN_MECHANISM_PLANNERS:
        factory, args = OWN_MECHANISM_PLANNERS[planner.kind], ()
    else:
        factory, args = PLANNERS[planner.kind], (make_config_mechanism(config),)
    if planner.kind in SEEDED_PLANNERS:
        options.setdefault("seed", config.seed)
    _check_options(factory, options, where, planner.kind, skip=len(args))
    with _options_at(options, where, planner.kind):
        return factory(*args, **options)


def check_buildable(config: RunConfig) -> None:
    """Build the mechanism and every planner once (cheap: no population is touched), so that a bad
    option fails at load, named, rather than after minutes of set-up."""
    for i, planner in enumerate(config.planners):
        if planner.name == BASELINE:
            raise ConfigError(f"planners.{i}.label: {BASELINE} is reserved for the no-tax baseline every run adds; choose another label")
    make_config_mechanism(config)
    for planner in config.planners:
        make_planner(planner, config)
