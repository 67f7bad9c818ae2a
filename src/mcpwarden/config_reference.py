"""The configuration reference, generated from the option declarations in `config.py`.

Options are declared once (type, default, help text); this turns them into the Markdown that
`mcpwarden config reference` prints and `docs/configuration.md` holds, so the two never drift.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mcpwarden.config import Settings


def reference_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the option declarations (`mcpwarden config reference`); do not edit by hand.",
        "One YAML file, `mcpwarden.yaml` unless `-c/--config` says otherwise; unknown keys are errors;",
        "`${VAR}` (or `${VAR:-default}`) is replaced from the environment.",
        "",
    ]
    seen: set[type[BaseModel]] = set()
    _describe(Settings, "", lines, seen)
    return "\n".join(lines) + "\n"


def _describe(model: type[BaseModel], prefix: str, lines: list[str], seen: set[type[BaseModel]]) -> None:
    seen.add(model)
    nested: list[tuple[str, type[BaseModel]]] = []
    title = f"`{prefix.rstrip('.')}`" if prefix else "top level"
    lines += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = field.alias or name
        annotation = field.annotation
        default = _default(field.default, field.default_factory)
        doc = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{prefix}{key}` | {_type_name(annotation)} | {default} | {doc} |")
        for inner in _models_in(annotation):
            if inner not in seen:
                suffix = ".<id>." if _is_mapping(annotation) else ("[]." if _is_sequence(annotation) else ".")
                nested.append((f"{prefix}{key}{suffix}", inner))
    lines.append("")
    for inner_prefix, inner in nested:
        if inner not in seen:
            _describe(inner, inner_prefix, lines, seen)


def _default(value: Any, factory: Any) -> str:
    if value is PydanticUndefined and factory is None:
        return "required"
    if factory is not None:
        try:
            value = factory()
        except TypeError:
            return "—"
    if isinstance(value, BaseModel):
        return "(see below)"
    if value in ((), {}, None):
        return "—" if value is None else "empty"
    return f"`{value}`"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (tuple, list):
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        return f"map of {_type_name(typing.get_args(annotation)[1])}"
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _is_mapping(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict or any(_is_mapping(a) for a in typing.get_args(annotation))


def _is_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (tuple, list) or any(_is_sequence(a) for a in typing.get_args(annotation))
