"""Distilled population: a graph transformer that stands in for the LLM workers."""

from .model import (
    HOURS_PER_BIN,
    SurrogateConfig,
    SurrogateOutput,
    SurrogatePopulation,
    expected_hours,
    hour_probabilities,
)

__all__ = [
    "HOURS_PER_BIN",
    "SurrogateConfig",
    "SurrogateOutput",
    "SurrogatePopulation",
    "expected_hours",
    "hour_probabilities",
]
