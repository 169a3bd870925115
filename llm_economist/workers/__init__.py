"""Worker populations: each maps a batch of observations to hours for all agents."""

from .base import Observation, WorkerPolicy
from .rational import BoundedRationalWorkers, RationalWorkers

__all__ = ["Observation", "WorkerPolicy", "BoundedRationalWorkers", "RationalWorkers"]
