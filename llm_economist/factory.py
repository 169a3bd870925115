"""Build the objects a run needs from a validated config: world, mechanism, planners."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import PlannerConfig, RunConfig
from .economy.labour import best_response_hours, calibrate_psi
from .economy.outcome import hours_shares
from .economy.tax import TaxSchedule
from .economy.utility import Preferences
from .llm import LLMClient, LLMSettings
from .mechanisms.base import Mechanism
from .mechanisms.registry import make_mechanism
from .planners.base import Planner
from .personas import Population, population_graph
from .surrogate.model import SurrogatePopulation
from .planners.fixed import FixedPlanner, flat_planner, us_federal_planner
from .planners.gradient import GradientPlanner
from .planners.llm import LLMPlanner
from .planners.random import RandomPlanner
from .planners.saez import SaezPlanner
from .planners.search import GridPlanner, SearchPlanner
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


def make_config_mechanism(config: RunConfig) -> Mechanism:
    return make_mechanism(config.mechanism.name, **config.mechanism.options)


def make_planner(planner: PlannerConfig, config: RunConfig) -> Planner:
    """The planner a config entry names; `us_federal` and `flat` bring their own mechanisms."""
    options = planner.options
    try:
        if planner.kind == "us_federal":
            return us_federal_planner(**options)
        if planner.kind == "flat":
            return flat_planner(**options)
        mechanism = make_config_mechanism(config)
        kinds = {"fixed": FixedPlanner, "saez": SaezPlanner, "search": SearchPlanner, "grid": GridPlanner, "llm": LLMPlanner,
                 "gradient": GradientPlanner, "random": RandomPlanner}
        if planner.kind in ("search", "llm", "gradient", "random"):
            options.setdefault("seed", config.seed)
        return kinds[planner.kind](mechanism, **options)
    except TypeError as err:
        raise ValueError(f"planner {planner.name}: bad options {sorted(options)}: {err}") from None
