"""Configuration problems as users read them: `file:line: path.to.field: message (fix)`.

`config_problems` validates raw configuration data in one pass: pydantic's shape errors,
translated by `pydantic_problems` into the language of the config file (the field's name, what
was given, how to write it), together with the cross-reference problems of `reference_problems`,
so a user fixes everything in one go. Where a field was written comes from the caller (the file
loader, switchboard.platform.configfile, knows the YAML lines).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

from switchboard.core.config.model import RoutingConfig, reference_problems
from switchboard.core.config.types import DOCS, FieldPath, FieldProblems, _did_you_mean, format_path, show_value


@dataclass(frozen=True)
class Problem:
    """One configuration problem; `str()` is the line users see: `file:line: path: message (fix)`."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}"


class ConfigError(ValueError):
    """Invalid configuration: `problems` holds one `file:line: field: message (fix)` line each; `details` the same as `Problem`s."""

    def __init__(self, problems: list[str] | list[Problem]) -> None:
        self.details = [p for p in problems if isinstance(p, Problem)]
        self.problems = [str(p) for p in problems]
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in self.problems))


# ---------------------------------------------------------------- pydantic errors → problems


def _unwrap(t: Any) -> list[Any]:
    """The concrete types behind Annotated / Optional / Union."""
    origin = typing.get_origin(t)
    if origin is Annotated:
        return _unwrap(typing.get_args(t)[0])
    if origin in (Union, types.UnionType):
        return [c for a in typing.get_args(t) if a is not type(None) for c in _unwrap(a)]
    return [t]


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _child_type(t: Any, part: str | int) -> Any:
    for c in _unwrap(t):
        if _is_model(c) and part in c.model_fields:
            return c.model_fields[part].annotation
        origin = typing.get_origin(c)
        if origin is list and isinstance(part, int):
            return typing.get_args(c)[0]
        if origin is dict:
            return typing.get_args(c)[1]
    for c in _unwrap(t):  # a discriminator tag such as "static" selects the union member
        if _is_model(c) and "type" in c.model_fields and part in typing.get_args(c.model_fields["type"].annotation):
            return c
    return None


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at pydantic location `loc` (for 'did you mean')."""
    t: Any = RoutingConfig
    for part in loc:
        t = _child_type(t, part)
        if t is None:
            return []
    return [f for c in _unwrap(t) if _is_model(c) for f in c.model_fields]


def _user_path(loc: tuple[Any, ...], data: Any) -> FieldPath:
    """Drop what pydantic adds to a location but the user never wrote (union tags, '[key]')."""
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        if (isinstance(cur, Mapping) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        ):
            out.append(part)
            cur = cur[part]
        elif part == "[key]":
            continue
        elif i == len(loc) - 1:
            out.append(part)  # a missing (or extra) field
            cur = None
        # else: a union tag such as "static"
    return tuple(out)


def unknown_field_message(name: str, fields: list[str]) -> str:
    """The message for a field `name` that is none of `fields`: the close one to rename it to, else the ones there are."""
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
    if close:
        return f"unknown field; did you mean {close[0]}? (rename it to {close[0]})"
    return f"unknown field (remove it; fields here: {', '.join(fields)})" if fields else "unknown field (remove it)"


_EXAMPLES = {
    "id": "a-unique-id",
    "destination": '"+18005550100"',
    "bid": "{type: static, price: 40.00}",
    "price": "40.00",
    "type": "static",
    "url": '"http://127.0.0.1:9100/ping"',
    "numbers": '["+18885550123"]',
    "publisher": "<publisher id>",
    "routing": "{tiers: [{strategy: price, buyers: [<buyer id>]}]}",
    "tiers": "[{strategy: price, buyers: [<buyer id>]}]",
    "strategy": "price",
    "timezone": "America/New_York",
    "hours": '{mon-fri: "08:00-20:00"}',
    "queues": "[<queue id>]",
    "secret_env": "ACME_CRM_WEBHOOK_SECRET",
}


def _friendly(err: Mapping[str, Any], path: FieldPath) -> str:
    """pydantic's error as `message (fix)` in the language of the config file."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    name = str(path[-1]) if path else "value"
    if kind == "missing":
        return f"required field is missing (add `{name}: {_EXAMPLES.get(name, '...')}`)"
    if kind == "extra_forbidden":
        return unknown_field_message(name, _fields_at(tuple(err["loc"][:-1])))
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", ""))) or re.findall(r"\b\w+\b", str(ctx.get("expected", "")))
        what = "strategy" if name == "strategy" else name
        if isinstance(path[-1], int) and len(path) > 1:  # an entry of a list: `events: [x]` → "unknown event 'x'"
            what = str(path[-2]).removesuffix("s")
        return f"unknown {what} {show_value(given)}{_did_you_mean(given, allowed)} (use one of: {', '.join(allowed)})"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return (
            f"unknown {name} type {ctx.get('tag')!r}{_did_you_mean(ctx.get('tag'), tags)} (use type: {' or type: '.join(tags)})"
        )
    if kind == "union_tag_not_found":
        return f"{name} needs a type (add `type: static` with a price, or `type: rtb` with a url)"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        ctx = {k: show_value(v) if isinstance(v, (int, float)) else v for k, v in ctx.items()}
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']}, got {show_value(given)} (set {name} above {ctx['gt']})"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {show_value(given)} (set {name} to {ctx['ge']} or more)"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {show_value(given)} (set {name} to {ctx['le']} or less)"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}, got {show_value(given)} (set {name} below {ctx['lt']})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {show_value(given)} (write it like 5)"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {show_value(given)} (write it like 0.5)"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {show_value(given)} (write true or false)"
    if kind == "string_type":
        return f'expected text, got {show_value(given)} (put it in quotes, e.g. "{show_value(given)}")'
    if kind == "list_type":
        return f"expected a list, got {show_value(given)} (write it as [a, b] or one `- item` per line)"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {show_value(given)} (write `field: value` lines under {name})"
    if kind == "too_short":
        return f"must not be empty (list at least {ctx.get('min_length', 1)} entry under {name})"
    if kind == "value_error":
        msg = str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
        return msg if msg.endswith(")") else f"{msg} (see {DOCS})"
    return f"{err['msg']} (see {DOCS})"


def pydantic_problems(exc: ValidationError, data: Any) -> list[tuple[FieldPath, str]]:
    """Every pydantic error as (user path, message with fix); validators' FieldProblems are expanded."""
    out: list[tuple[FieldPath, str]] = []
    for err in exc.errors():
        path = _user_path(tuple(err["loc"]), data)
        error = (err.get("ctx") or {}).get("error")
        if err["type"] == "value_error" and isinstance(error, FieldProblems):
            out.extend((path + sub, msg) for sub, msg in error.items)
        elif err["type"] == "union_tag_invalid":  # point at the `type:` line, where the wrong tag is written
            out.append(((*path, "type"), _friendly(err, path)))
        else:
            out.append((path, _friendly(err, path)))
    return out


# ---------------------------------------------------------------- raw data → problems


def config_problems(
    data: Mapping[str, Any], locate: Callable[[FieldPath], tuple[str, int | None]]
) -> tuple[RoutingConfig | None, list[Problem]]:
    """Validate raw configuration data: (config, []), or (None, every shape and reference problem).

    `locate(path)` is where the field at `path` was written: (file, line or None).
    """

    def where(path: FieldPath) -> str:
        file, line = locate(path)
        return f"{file}:{line}" if line else file

    found: list[tuple[FieldPath, str]] = []
    config: RoutingConfig | None = None
    try:
        config = RoutingConfig.model_validate(data, context={"references_checked": True})
    except ValidationError as exc:
        found.extend(pydantic_problems(exc, data))
    found.extend(reference_problems(data, where))
    if not found:
        return config, []
    return None, [Problem(*locate(path), format_path(path), message) for path, message in found]
