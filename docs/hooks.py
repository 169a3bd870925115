"""MkDocs hook: the reference pages' tables and help texts, generated from the code at build time.

A page holds markers that this hook replaces:

- `<!-- config-fields -->`: every field of the run configuration (`llm_economist.config.RunConfig`
  and its sections), with its type, default, constraints and description, read from the pydantic
  models;
- `<!-- planner-options -->`: every planner kind's options and defaults, read from the signatures
  of the factories the config builds planners with (`llm_economist.planner_factory`);
- `<!-- mechanism-options -->`: every built-in mechanism's options and defaults, read from the
  registry (`llm_economist.mechanisms.registry`);
- `<!-- cli-reference -->`: every command's `--help`, from click's own help formatter.

So the reference cannot drift from what `load_config` and the command line accept.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

MARKERS = ("<!-- config-fields -->", "<!-- planner-options -->", "<!-- mechanism-options -->", "<!-- cli-reference -->")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if not any(marker in markdown for marker in MARKERS):
        return markdown
    if MARKERS[0] in markdown:
        markdown = markdown.replace(MARKERS[0], config_fields())
    if MARKERS[1] in markdown:
        markdown = markdown.replace(MARKERS[1], planner_options())
    if MARKERS[2] in markdown:
        markdown = markdown.replace(MARKERS[2], mechanism_options())
    if MARKERS[3] in markdown:
        markdown = markdown.replace(MARKERS[3], cli_reference())
    return markdown


# --- formatting ------------------------------------------------------------------------------


def type_name(annotation: Any) -> str:
    """A type as a reader of YAML thinks of it: `'a' | 'b'`, `integer`, `list of numbers`, ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" \\| `null`" if type(None) in args else "")
    if origin in (list, tuple) or (origin is not None and getattr(origin, "__name__", "") == "Sequence"):
        inner = [a for a in args if a is not Ellipsis]
        return f"list of {type_name(inner[0])}s" if inner else "list"
    if origin is dict:
        return "mapping"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def value_text(value: Any) -> str:
    """A default as it would be written in the YAML config."""
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return f"`{value:,.0f}`".replace(",", "_")
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump(mode="json", exclude_unset=True, exclude_none=True) for v in value]
    if isinstance(value, (list, dict)):
        return f"`{yaml.safe_dump(value, default_flow_style=True, width=1000).strip()}`"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"`{value:_}`"
    return f"`{value}`"


def constraints(info: FieldInfo) -> str:
    """The field's bounds and patterns, as `≥ 1, ≤ 1000`."""
    parts = []
    for item in info.metadata:
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(item, attr, None)
            if isinstance(item, annotated_types.BaseMetadata) and bound is not None:
                parts.append(f"{symbol} {bound:_}" if isinstance(bound, int) and abs(bound) >= 10_000 else f"{symbol} {bound:g}")
        if isinstance(item, annotated_types.MinLen):
            parts.append(f"at least {item.min_length} {'item' if item.min_length == 1 else 'items'}"
                         if typing.get_origin(info.annotation) is list else f"length ≥ {item.min_length}")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length} items")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (`<out>` is no HTML tag)."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("\n", " ")


def default_of(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return value_text(info.default_factory())
    if info.default is PydanticUndefined:
        return "required"
    return value_text(info.default)


# --- the configuration ----------------------------------------------------------------------


def section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def field_rows(model: type[BaseModel], prefix: str, names: list[str] | None = None) -> list[str]:
    """A table row per field (`names` only, if given), and rows for the fields of list items that
    are models themselves (`governance.platforms[].name`); planner entries have their own table."""
    rows = []
    for name, info in model.model_fields.items():
        if names is not None and name not in names:
            continue
        path = f"{prefix}{name}"
        item = typing.get_args(info.annotation)[0] if typing.get_origin(info.annotation) is list else None
        rows.append(
            f"| `{path}` | {type_name(info.annotation)} | {default_of(info)} | {cell(constraints(info))} | "
            f"{cell(info.description or '')} |"
        )
        if section_model(item) is not None and name != "planners":
            rows += field_rows(item, f"{path}[].")
    return rows


def config_fields() -> str:
    from llm_economist.config import PlannerConfig, RunConfig

    header = "| Field | Type | Default | Constraints | Description |\n|---|---|---|---|---|"
    top, sections = [], []
    for name, info in RunConfig.model_fields.items():
        model = section_model(info.annotation)
        if model is None:
            top.append(name)
            continue
        doc = first_paragraph(model)
        intro = f"{doc}\n\n" if doc else ""
        sections.append(f"### `{name}`\n\n{intro}{header}\n" + "\n".join(field_rows(model, f"{name}.")))
    planners = field_rows(PlannerConfig, "planners[].")
    return "\n\n".join([
        "### Top level\n\n" + header + "\n" + "\n".join(field_rows(RunConfig, "", top)),
        *sections,
        "### `planners[]`\n\nEach entry of `planners`; its other keys are the options of its kind (below).\n\n"
        + header + "\n" + "\n".join(planners),
    ])


# --- planners and mechanisms ----------------------------------------------------------------


def first_paragraph(obj: Any, module_fallback: bool = False) -> str:
    """The first paragraph of the object's own docstring (not one inherited from a base class), or
    of its module's where it has none and `module_fallback` says so."""
    doc = obj.__doc__ or (inspect.getmodule(obj).__doc__ if module_fallback else None)
    doc = inspect.cleandoc(doc) if doc else ""
    return re.sub(r"\s+", " ", doc.split("\n\n")[0]).strip()


def option_table(factory: Any, skip: int, seeded: bool) -> str:
    """The keyword options of a factory, past its first `skip` positional arguments."""
    params = list(inspect.signature(factory, eval_str=True).parameters.values())[skip:]
    if not params:
        return "No options."
    rows = []
    for p in params:
        if p.name == "seed" and seeded:
            default = "the run's `seed`"
        else:
            default = "required" if p.default is inspect.Parameter.empty else value_text(p.default)
        rows.append(f"| `{p.name}` | {type_name(p.annotation)} | {default} |")
    return "| Option | Type | Default |\n|---|---|---|\n" + "\n".join(rows)


def planner_options() -> str:
    from llm_economist import factory, planner_factory
    from llm_economist.config import PlannerConfig

    parts = []
    factories = [*planner_factory.OWN_MECHANISM_PLANNERS.values(), *planner_factory.PLANNERS.values()]
    for kind in typing.get_args(PlannerConfig.model_fields["kind"].annotation):
        if kind in planner_factory.OWN_MECHANISM_PLANNERS:
            build, skip = planner_factory.OWN_MECHANISM_PLANNERS[kind], 0
            sets = f"plays its own mechanism, `{factory.OWN_MECHANISM_NAMES[kind]}`"
        else:
            build, skip = planner_factory.PLANNERS[kind], 1 + (kind in planner_factory.TALKING_PLANNERS)
            sets = "sets the config's mechanism"
        # A module's docstring speaks for a planner only where the module holds no other kind.
        alone = sum(f.__module__ == build.__module__ for f in factories) == 1
        summary = first_paragraph(build, module_fallback=alone)
        parts.append(f"#### `{kind}`\n\n{summary + ' ' if summary else ''}It {sets}.\n\n"
                     + option_table(build, skip, kind in planner_factory.SEEDED_PLANNERS))
    return "\n\n".join(parts)


def mechanism_options() -> str:
    from llm_economist.mechanisms.registry import BUILTIN_MECHANISMS

    parts = []
    for name, build in BUILTIN_MECHANISMS.items():
        summary = first_paragraph(build)
        parts.append(f"#### `{name}`\n\n{summary + chr(10) + chr(10) if summary else ''}" + option_table(build, 0, False))
    return "\n\n".join(parts)


# --- the command line -----------------------------------------------------------------------


def cli_reference() -> str:
    """A section per command, groups before their subcommands, each with its `--help` text."""
    import click

    from llm_economist.cli import main

    def sections(command: click.Command, ctx: click.Context, level: int) -> list[str]:
        help_text = command.get_help(ctx)
        summary = command.get_short_help_str(limit=200)
        parts = [f"{'#' * level} `{ctx.command_path}`\n\n{cell(summary)}\n\n```text\n{help_text}\n```"]
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                sub_ctx = click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
                parts += sections(sub, sub_ctx, level + 1)
        return parts

    root = click.Context(main, info_name="llm-economist", terminal_width=100, max_content_width=100, **main.context_settings)
    return "\n\n".join(sections(main, root, 3))
