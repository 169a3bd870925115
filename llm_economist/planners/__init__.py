"""Planners: fixed schedules, the Saez formula, black-box search, the exhaustive grid and gradient ascent."""

from .base import OneShotPlanner, Planner, YearRecord
from .fixed import FixedPlanner, flat_planner, us_federal_planner
from .gradient import GradientPlanner
from .ppo import PPOPlanner
from .saez import SaezPlanner, analytic_elasticity, estimate_elasticity
from .search import GridPlanner, SearchPlanner

__all__ = [
    "OneShotPlanner", "Planner", "YearRecord", "FixedPlanner", "flat_planner", "us_federal_planner", "SaezPlanner",
    "analytic_elasticity", "estimate_elasticity", "GridPlanner", "SearchPlanner", "GradientPlanner", "PPOPlanner",
]
