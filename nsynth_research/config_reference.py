"""The config reference in docs/, generated from the pydantic schemas themselves.

Each key's type and default come from the schema and its meaning from the `#:` comment above
the field in the source, so the reference a user reads is the one the validator applies and
cannot drift from it. `make docs` fills `<!-- config: <name> -->` markers (see `doctables`).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

_FIELD = re.compile(r"^\s+(\w+)\s*:")


def field_comments(schema: type[BaseModel]) -> dict[str, str]:
    """Field name -> the `#:` comment lines right above it in the class body (and its bases)."""
    found: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in source.splitlines()[1:]:
            stripped = line.strip()
            if stripped.startswith("#:"):
                pending.append(stripped[2:].strip())
                continue
            match = _FIELD.match(line)
            if match and pending:
                found[match.group(1)] = " ".join(pending)
            pending = []
    return found


def type_name(annotation: Any) -> str:
    """A short, readable type: `stft | logmel`, `[int, int]`, `int or null`, `path`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or null" if type(None) in args else "")
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"[{type_name(args[0])}, ...]"
        return "[" + ", ".join(type_name(a) for a in args) + "]"
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(str(m.value) for m in annotation)
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "null" if value is None else str(value)


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >="}


def bounds(field: Any) -> list[str]:
    """The field's numeric limits as the validator enforces them, e.g. ['>= 1']."""
    out = []
    for item in field.metadata:
        for attr, sign in _BOUNDS.items():
            value = getattr(item, attr, None)
            if value is not None:
                out.append(f"{sign} {value}")
    return out


def sections(annotation: Any) -> list[type[BaseModel]]:
    """The config sections a field holds: one section, or each member of a union of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return sections(args[0])
    if origin in (typing.Union, types.UnionType):
        return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    return []


def rows(schema: type[BaseModel], prefix: str = "") -> list[list[str]]:
    """One row a leaf key (dotted), nested sections walked in declaration order."""
    comments = field_comments(schema)
    out: list[list[str]] = []
    for name, field in schema.model_fields.items():
        key = f"{prefix}{name}"
        nested = sections(field.annotation)
        if nested:
            for section in nested:
                variant = _variant(section)
                for row in rows(section, f"{key}."):
                    out.append([row[0], row[1], row[2], f"{variant}{row[3]}"])
            continue
        doc = comments.get(name) or field.description or ""
        kind = " ".join([type_name(field.annotation), *bounds(field)])
        out.append([f"`{key}`", kind, default_text(field), doc])
    return out


def _variant(section: type[BaseModel]) -> str:
    """'(arch: cnn) ' for a member of a discriminated union, else ''."""
    tag = section.model_fields.get("arch")
    if tag is not None and typing.get_origin(tag.annotation) is Literal:
        return f"(arch: {typing.get_args(tag.annotation)[0]}) "
    return ""


def reference(schema: type[BaseModel]) -> str:
    """The Markdown reference table of `schema`."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows(schema)]
    return "\n".join(lines)
