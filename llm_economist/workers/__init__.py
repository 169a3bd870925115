"""Worker populations: each maps a batch of observations to hours for all agents."""

from .base import Decisions, Observation, Workers
from .rational import BoundedRationalWorkers, RationalWorkers

__all__ = ["Decisions", "Observation", "Workers", "BoundedRationalWorkers", "RationalWorkers"]
