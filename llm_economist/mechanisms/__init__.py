"""Policy mechanisms: the plug-in API, built-ins and the registry by name."""

from .base import Mechanism, Parameter
from .builtin import BracketTax, NegativeIncomeTax, flat, three_bracket, us_federal_2024
from .registry import ENTRY_POINT_GROUP, available_mechanisms, make_mechanism
from .governance import (
    RULES, Ballots, ElectionResult, Platform, approval, ballots_from_utilities, config_platforms, default_proposers,
    hold_election, instant_runoff, platform_utilities, plurality, rational_ballots, worker_platforms,
)

__all__ = [
    "Mechanism", "Parameter", "BracketTax", "NegativeIncomeTax", "flat", "three_bracket", "us_federal_2024",
    "ENTRY_POINT_GROUP", "available_mechanisms", "make_mechanism",
    "RULES", "Ballots", "ElectionResult", "Platform", "approval", "ballots_from_utilities", "config_platforms",
    "default_proposers", "hold_election", "instant_runoff", "platform_utilities", "plurality", "rational_ballots",
    "worker_platforms",
]
