"""Find the JSON object in a model's reply and check it against the subset of JSON Schema that
structured output uses.

Supported keywords: type (object, array, string, integer, number, boolean, null, or a list of
these), properties, required, additionalProperties (bool or schema), items, minItems, maxItems,
enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern,
anyOf. Annotations (title, description, default, examples, format, $schema) are ignored. Any other
keyword is rejected when the request is built, so a schema never means more than is checked.

Coercion (the value returned is the coerced one): an "integer" accepts 40, 40.0 and "40"; a
"number" accepts numeric strings such as "0.25". Booleans are never numbers.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

CHECKED = {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum", "const",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "anyOf",
}
ANNOTATIONS = {"title", "description", "default", "examples", "format", "$schema", "$comment"}
TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}

_INTEGER = re.compile(r"\s*[-+]?\d+\s*")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


class SchemaViolation(ValueError):
    """A value does not satisfy the schema; the message names the JSON path."""


def check_schema(schema: Any, path: str = "$") -> None:
    """Raise ValueError if `schema` uses a keyword this module does not check."""
    if not isinstance(schema, dict):
        raise ValueError(f"schema at {path}: expected an object, got {type(schema).__name__}")
    for key in schema:
        if key not in CHECKED and key not in ANNOTATIONS:
            raise ValueError(f"schema at {path}: keyword {key!r} is not supported (supported: {sorted(CHECKED)})")
    types = schema.get("type")
    for t in [types] if isinstance(types, str) else types or []:
        if t not in TYPES:
            raise ValueError(f"schema at {path}: unknown type {t!r}")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        check_schema(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        check_schema(schema["items"], f"{path}[]")
    for i, sub in enumerate(schema.get("anyOf") or []):
        check_schema(sub, f"{path}.anyOf[{i}]")
    if "pattern" in schema:
        re.compile(schema["pattern"])


def extract_json(text: str) -> dict:
    """The first JSON object in `text`, tolerating code fences and prose around it.

    Raises ValueError (with the reason) if there is none.
    """
    stripped = text.strip()
    candidates = [stripped] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    snippet = stripped[:80] + ("..." if len(stripped) > 80 else "")
    raise ValueError(f"no JSON object in the reply: {snippet!r}")


def validate(value: Any, schema: dict, path: str = "$") -> Any:
    """Return `value` (coerced where documented) if it satisfies `schema`, else raise SchemaViolation."""
    if "anyOf" in schema:
        reasons = []
        for sub in schema["anyOf"]:
            try:
                value = validate(value, sub, path)
                break
            except SchemaViolation as e:
                reasons.append(str(e))
        else:
            raise SchemaViolation(f"{path}: matches none of anyOf ({'; '.join(reasons)})")
    types = schema.get("type")
    if types is not None:
        value = _check_type(value, [types] if isinstance(types, str) else list(types), path)
    if "const" in schema and not _equal(value, schema["const"]):
        raise SchemaViolation(f"{path}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        raise SchemaViolation(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_bounds(value, schema, path)
    elif isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaViolation(f"{path}: {_snippet(value)} is shorter than minLength {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaViolation(f"{path}: {_snippet(value)} is longer than maxLength {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaViolation(f"{path}: {value!r} does not match pattern {schema['pattern']!r}")
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise SchemaViolation(f"{path}: fewer than minItems {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaViolation(f"{path}: more than maxItems {schema['maxItems']} items")
        if "items" in schema:
            value = [validate(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
    elif isinstance(value, dict):
        value = _check_object(value, schema, path)
    return value


def _check_type(value: Any, types: list[str], path: str) -> Any:
    for t in types:
        if t == "object" and isinstance(value, dict) or t == "array" and isinstance(value, list):
            return value
        if t == "string" and isinstance(value, str) or t == "null" and value is None:
            return value
        if t == "boolean" and isinstance(value, bool):
            return value
        if isinstance(value, bool):
            continue
        if t == "integer":
            if isinstance(value, int):
                return value
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                return int(value)
            if isinstance(value, str) and _INTEGER.fullmatch(value):
                return int(value)
        if t == "number":
            if isinstance(value, (int, float)) and math.isfinite(value):
                return value
            if isinstance(value, str):
                try:
                    number = float(value)
                except ValueError:
                    continue
                if math.isfinite(number):
                    return number
    raise SchemaViolation(f"{path}: expected {' or '.join(types)}, got {type(value).__name__} {value!r}")


def _check_bounds(value: float, schema: dict, path: str) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        raise SchemaViolation(f"{path}: {value} is below minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise SchemaViolation(f"{path}: {value} is above maximum {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        raise SchemaViolation(f"{path}: {value} is not above exclusiveMinimum {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        raise SchemaViolation(f"{path}: {value} is not below exclusiveMaximum {schema['exclusiveMaximum']}")


def _check_object(value: dict, schema: dict, path: str) -> dict:
    properties = schema.get("properties") or {}
    missing = [name for name in schema.get("required") or [] if name not in value]
    if missing:
        raise SchemaViolation(f"{path}: missing required {', '.join(map(repr, missing))}")
    extra = schema.get("additionalProperties", True)
    out = {}
    for name, item in value.items():
        if name in properties:
            out[name] = validate(item, properties[name], f"{path}.{name}")
        elif extra is False:
            raise SchemaViolation(f"{path}: unexpected property {name!r}")
        elif isinstance(extra, dict):
            out[name] = validate(item, extra, f"{path}.{name}")
        else:
            out[name] = item
    return out


def _snippet(text: str, limit: int = 60) -> str:
    """The offending string, cut short enough for an error message."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b
