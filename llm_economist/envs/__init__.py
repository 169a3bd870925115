"""Environments over the vectorised core: a PettingZoo market of workers and a planner, and a
Gymnasium environment for the planner alone (registered as `llm_economist/Planner-v0`)."""

from gymnasium.envs.registration import register, registry

from .labour_market import AGGREGATES, PLANNER, PLANNER_FEATURES, WORKER_FEATURES, LabourMarketEnv
from .planner_env import PlannerEnv

PLANNER_ENV_ID = "llm_economist/Planner-v0"

# Registration only records the entry point; gymnasium.make(PLANNER_ENV_ID, wage=...) builds it.
if PLANNER_ENV_ID not in registry:
    register(id=PLANNER_ENV_ID, entry_point="llm_economist.envs.planner_env:PlannerEnv")

__all__ = [
    "AGGREGATES", "PLANNER", "PLANNER_FEATURES", "WORKER_FEATURES", "LabourMarketEnv", "PlannerEnv", "PLANNER_ENV_ID",
]
