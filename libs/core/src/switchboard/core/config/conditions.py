"""Conditions on the caller's answers: the operators, their arguments, and buyer `filters`.

One set of operators for every rule that looks at answers: buyer filters (`answers:`) and the
`when:` of IVR branches (checked by `_condition_problems`); the engine that evaluates them is
core/eligibility.py (`condition_failure`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, field_validator

from switchboard.core.config.types import (
    AreaCode,
    FieldPath,
    FieldProblems,
    StateCode,
    ZipPrefix,
    _did_you_mean,
    _is_number,
    _Model,
    show_value,
)

Condition = dict[str, Any]
OPERATORS = ("eq", "ne", "in", "not_in", "gte", "lte", "gt", "lt", "between", "exists")


# What people write from other languages, for "did you mean".
_OPERATOR_ALIASES = {
    "equals": "eq",
    "is": "eq",
    "==": "eq",
    "=": "eq",
    "not": "ne",
    "not_eq": "ne",
    "!=": "ne",
    ">=": "gte",
    "ge": "gte",
    "min": "gte",
    "<=": "lte",
    "le": "lte",
    "max": "lte",
    ">": "gt",
    "<": "lt",
    "range": "between",
    "one_of": "in",
    "any": "in",
    "nin": "not_in",
    "not in": "not_in",
    "notin": "not_in",
    "present": "exists",
    "has": "exists",
}


def _unknown_operator(op: Any) -> str:
    hint = f"; did you mean {_OPERATOR_ALIASES[op]}?" if op in _OPERATOR_ALIASES else _did_you_mean(op, OPERATORS)
    return f"unknown operator {op!r}{hint} (use one of: {', '.join(OPERATORS)})"


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, Decimal)) and v is not None


def _operator_argument_problem(op: str, arg: Any) -> str | None:
    """What is wrong with `{op: arg}`, with the fix; None when its shape is right."""
    if op in ("eq", "ne"):
        if not _is_scalar(arg):
            return f'{op} compares with one value, got {arg!r} (write it like {{{op}: "yes"}}; for several values use in: [a, b])'
    elif op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg or not all(_is_scalar(x) for x in arg):
            return f"{op} needs a non-empty list of values, got {arg!r} (write it like {{{op}: [en, es]}})"
    elif op in ("gte", "lte", "gt", "lt"):
        if not _is_number(arg):
            return f"{op} needs a number, got {arg!r} (write it like {{{op}: 650}})"
    elif op == "between":
        if not (isinstance(arg, list) and len(arg) == 2 and all(_is_number(x) for x in arg)):
            return f"between needs [low, high], got {arg!r} (write it like {{between: [100, 500]}})"
    elif op == "exists" and not isinstance(arg, bool):
        return f"exists needs true or false, got {arg!r} (write it like {{exists: true}})"
    return None


def _check_answers(v: Any) -> Any:
    """`answers:` of buyer filters: answer key → exactly one {operator: argument}."""
    if not isinstance(v, Mapping):
        return v  # None, or a shape error pydantic reports
    problems: list[tuple[FieldPath, str]] = []
    for key, cond in v.items():
        if not isinstance(cond, Mapping) or len(cond) != 1:
            problems.append(
                (
                    (key,),
                    (
                        f"a condition is exactly one operator, got {cond!r} "
                        '(write it like {eq: "yes"}; for a range use {between: [low, high]})'
                    ),
                )
            )
            continue
        ((op, arg),) = cond.items()
        if op not in OPERATORS:
            problems.append(((key, op), _unknown_operator(op)))
            continue
        why = _operator_argument_problem(op, arg)
        if why:
            problems.append(((key, op), why))
    if problems:
        raise FieldProblems(problems)
    return v


def _condition_problems(when: Any) -> list[tuple[FieldPath, str]]:
    """`when` is {op: arg} on the node's own answer, or {answer_key: {op: arg}, ...} on earlier answers."""
    if not isinstance(when, Mapping) or not when:
        return [
            ((), f'expected a condition, got {show_value(when)} (write it like {{gte: 650}} or {{homeowner: {{eq: "yes"}}}})')
        ]
    problems: list[tuple[FieldPath, str]] = []
    for key, arg in when.items():
        if isinstance(arg, Mapping):  # answer_key: {op: arg}
            if not isinstance(key, str) or not _IDENTIFIER.match(key):
                problems.append(((key,), f"{key!r} is not an answer key (letters, digits and _ only, e.g. monthly_bill)"))
                continue
            try:
                _check_answers({key: arg})
            except FieldProblems as exc:
                problems.extend(exc.items)
        elif key not in OPERATORS:
            problems.append(((key,), _unknown_operator(key)))
        else:
            why = _operator_argument_problem(key, arg)
            if why:
                problems.append(((key,), why))
    return problems


class Filters(_Model):
    states: list[StateCode] | None = None
    zip_prefixes: list[ZipPrefix] | None = None
    area_codes: list[AreaCode] | None = None
    answers: dict[str, Condition] | None = None

    @field_validator("answers", mode="before")
    @classmethod
    def _answers(cls, v: Any) -> Any:
        return _check_answers(v)


# ---------------------------------------------------------------- answer keys

# The name an answer is stored under (an IVR question's answer_key), as buyer filters and simulated callers name it.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_identifier(v: str) -> str:
    if not _IDENTIFIER.match(v):
        fixed = re.sub(r"\W+", "_", v).strip("_") or "answer"
        if fixed[0].isdigit():
            fixed = "a_" + fixed
        raise ValueError(
            f"{v!r} is not an answer key: letters, digits and _ only, not starting with a digit "
            f"(buyer filters name it under answers:, write it like {fixed})"
        )
    return v


AnswerKey = Annotated[str, AfterValidator(_check_identifier)]
