"""Environments over the vectorised core: a PettingZoo market of workers and a planner, and a
Gymnasium environment for the planner alone (registered as `llm_economist/Planner-v0`)."""

from ..gymnasium_plugin import PLANNER_ENV_ID, register_envs
from .labour_market import AGGREGATES, PLANNER, PLANNER_FEATURES, WORKER_FEATURES, LabourMarketEnv
from .planner_env import PlannerEnv

register_envs()  # Gymnasium 1.0 and later find the id only once this package is imported

__all__ = [
    "AGGREGATES", "PLANNER", "PLANNER_FEATURES", "WORKER_FEATURES", "LabourMarketEnv", "PlannerEnv", "PLANNER_ENV_ID",
]
