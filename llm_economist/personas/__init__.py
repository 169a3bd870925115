"""Census-calibrated worker personas: population sampler, shipped source tables, persona text."""

from .population import (
    AGE_BANDS,
    GB2_ACS_2023,
    INCOME_MODELS,
    MIN_HOURLY_WAGE,
    SCHOOLING_GROUPS,
    GB2Params,
    PersonaTables,
    Population,
    gb2_mean,
    gb2_sample,
    household_sample,
    load_tables,
    sample_population,
    state_name,
    taste_groups,
)
from .text import occupation_phrase, persona_text, persona_texts

__all__ = [
    "Population",
    "sample_population",
    "gb2_sample",
    "gb2_mean",
    "household_sample",
    "GB2Params",
    "GB2_ACS_2023",
    "INCOME_MODELS",
    "MIN_HOURLY_WAGE",
    "SCHOOLING_GROUPS",
    "AGE_BANDS",
    "taste_groups",
    "PersonaTables",
    "load_tables",
    "state_name",
    "persona_text",
    "persona_texts",
    "occupation_phrase",
]
from .graph import EDGE_TYPES, SocialGraph, build_social_graph, population_graph

__all__ += ["EDGE_TYPES", "SocialGraph", "build_social_graph", "population_graph"]
