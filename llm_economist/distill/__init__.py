"""Distillation: collect workers' decisions under random mechanisms, train the surrogate on them,
and judge it on held-out mechanisms (the `distill` verb); the surrogate itself lives in `surrogate/`."""

from .dataset import DatasetError, collect, load_sequences
from .evaluate import evaluate, format_evaluation
from .train import TrainSettings, train_surrogate

__all__ = ["DatasetError", "TrainSettings", "collect", "evaluate", "format_evaluation", "load_sequences", "train_surrogate"]
