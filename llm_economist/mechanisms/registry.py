"""Find mechanisms by name: the built-ins plus any registered under the entry-point group
`llm_economist.mechanisms` by another installed package (value: a Mechanism subclass or a
factory that takes keyword options and returns a Mechanism)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from .base import Mechanism
from .builtin import BracketTax, NegativeIncomeTax, USTax2024, flat, three_bracket, us_federal_2024

ENTRY_POINT_GROUP = "llm_economist.mechanisms"

BUILTIN_MECHANISMS: dict[str, Callable[..., Mechanism]] = {
    "bracket_tax": BracketTax,
    "us_federal_2024": us_federal_2024,
    "us_tax_2024": USTax2024,
    "three_bracket": three_bracket,
    "flat": flat,
    "negative_income_tax": NegativeIncomeTax,
}


def _origin(factory: Callable[..., Mechanism]) -> str:
    """Where a registered mechanism comes from: a built-in's module, or a plug-in's target and distribution."""
    if isinstance(factory, EntryPoint):
        return f"plug-in {factory.value}" + (f" of distribution {factory.dist.name}" if factory.dist else "")
    return f"built-in {factory.__module__}.{factory.__qualname__}"


def available_mechanisms() -> dict[str, Callable[..., Mechanism]]:
    """Built-ins first, then plug-ins; a name already taken keeps its first owner, with a warning
    naming both, so that a plug-in can never silently replace a built-in (or another plug-in)."""
    found = dict(BUILTIN_MECHANISMS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            warnings.warn(f"mechanism {ep.name!r}: {_origin(ep)} is ignored; the name belongs to {_origin(found[ep.name])}",
                          stacklevel=2)
        else:
            found[ep.name] = ep
    return found


def make_mechanism(name: str, **options) -> Mechanism:
    """Build a mechanism by name with its options; errors name what was wrong."""
    registry = available_mechanisms()
    if name not in registry:
        raise ValueError(f"mechanism: unknown name {name!r}; available: {sorted(registry)}")
    factory = registry[name]
    if isinstance(factory, EntryPoint):
        try:
            factory = factory.load()
        except Exception as err:  # a broken plug-in must not look like our bug
            raise ValueError(f"mechanism: plug-in {name!r} failed to load: {err}") from err
    try:
        mechanism = factory(**options)
    except TypeError as err:
        raise ValueError(f"mechanism {name!r}: bad options {sorted(options)}: {err}") from err
    if not isinstance(mechanism, Mechanism):
        raise ValueError(f"mechanism: plug-in {name!r} returned {type(mechanism).__name__}, not a Mechanism")
    return mechanism
