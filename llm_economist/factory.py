"""Build the objects a run needs from a validated config: world, mechanism, planners."""

from __future__ import annotations

import torch

from .config import PlannerConfig, RunConfig
from .economy.labour import best_response_hours, calibrate_psi
from .economy.tax import TaxSchedule
from .economy.utility import Preferences
from .mechanisms.base import Mechanism
from .mechanisms.registry import make_mechanism
from .planners.base import Planner
from .planners.fixed import FixedPlanner, flat_planner, us_federal_planner
from .planners.saez import SaezPlanner
from .planners.search import GridPlanner, SearchPlanner
from .workers.base import WorkerPolicy
from .workers.rational import BoundedRationalWorkers, RationalWorkers
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
    return prefs, {
        "psi": prefs.psi,
        "median_hours_us_2024": float(hours.median()),
        "share_zero_hours_us_2024": float((hours <= 1e-9).double().mean()),
        "share_at_cap_us_2024": float((hours >= e.max_hours - 1e-9).double().mean()),
    }


def make_workers(config: RunConfig, prefs: Preferences) -> WorkerPolicy:
    w = config.workers
    if w.kind == "rational":
        return RationalWorkers(prefs)
    return BoundedRationalWorkers(prefs, w.temperature, w.hour_bins)


def make_world(config: RunConfig, wage: torch.Tensor) -> tuple[World, dict[str, float]]:
    prefs, calibration = calibrated_preferences(config, wage)
    world = World(wage, prefs, make_workers(config, prefs), config.welfare.name, config.welfare.params())
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
        kinds = {"fixed": FixedPlanner, "saez": SaezPlanner, "search": SearchPlanner, "grid": GridPlanner}
        if planner.kind == "search":
            options.setdefault("seed", config.seed)
        return kinds[planner.kind](mechanism, **options)
    except TypeError as err:
        raise ValueError(f"planner {planner.name}: bad options {sorted(options)}: {err}") from None
