"""Policy mechanisms: the plug-in API, built-ins and the registry by name."""

from .base import Mechanism, Parameter
from .builtin import BracketTax, NegativeIncomeTax, USTax2024, flat, three_bracket, us_federal_2024
from .registry import ENTRY_POINT_GROUP, available_mechanisms, make_mechanism

__all__ = [
    "Mechanism", "Parameter", "BracketTax", "NegativeIncomeTax", "USTax2024", "flat", "three_bracket", "us_federal_2024",
    "ENTRY_POINT_GROUP", "available_mechanisms", "make_mechanism",
]
