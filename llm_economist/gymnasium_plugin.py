"""Registers the planner environment with Gymnasium under `PLANNER_ENV_ID`.

Light on purpose: Gymnasium before 1.0 calls `register_envs` through the `gymnasium.envs` entry
point while it is itself being imported, so this module imports nothing of ours and the
environment's module loads only when an environment is made. Gymnasium 1.0 and later read no
entry points; there `import llm_economist.envs` registers the id.
"""

PLANNER_ENV_ID = "llm_economist/Planner-v0"


def register_envs() -> None:
    """Register `PLANNER_ENV_ID` once; `gymnasium.make(PLANNER_ENV_ID)` then builds a `PlannerEnv`."""
    from gymnasium.envs.registration import register, registry

    if PLANNER_ENV_ID not in registry:
        register(id=PLANNER_ENV_ID, entry_point="llm_economist.envs.planner_env:PlannerEnv")
