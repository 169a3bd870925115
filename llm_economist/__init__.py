"""Mechanism design in economies of language-model agents: census-calibrated workers, tax
planners, Saez and US-federal baselines.

`__version__` and the names below load on first use, so `import llm_economist` stays quick and
torch is imported only when something needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers see of the lazy names
    from .studies.comparison import run_comparison
    from .config import RunConfig
    from .planner_factory import load_config
    from .envs import LabourMarketEnv, PlannerEnv
    from .factory import build_setup
    from .mechanisms import Mechanism, make_mechanism

    __version__: str

_HOMES = {
    "RunConfig": "config", "load_config": "planner_factory", "build_setup": "factory", "run_comparison": "studies.comparison",
    "Mechanism": "mechanisms", "make_mechanism": "mechanisms", "LabourMarketEnv": "envs", "PlannerEnv": "envs",
}

__all__ = ["__version__", *_HOMES]


def __getattr__(name: str):
    if name == "__version__":
        value = _installed_version()
    elif name in _HOMES:
        value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-economist")
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "0+unknown"
