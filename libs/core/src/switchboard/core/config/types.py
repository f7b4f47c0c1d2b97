"""The shared bits of the configuration models: field paths and their problems, the scalars users write.

Every other module of the package builds on these: `_Model` (frozen, unknown fields refused),
money (Decimal, exact to the cent), E.164 numbers and destinations, the routing strategies,
and the helpers that make messages (`format_path`, `_did_you_mean`, `show_value`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

CENT = Decimal("0.01")
DOCS = "docs/CONFIG.md"

# A field path as the user writes it: ("campaigns", 0, "routing", "tiers", 1, "strategy").
FieldPath = tuple[str | int, ...]


def format_path(path: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    """'; did you mean X?' when a choice is close to `word`, else ''."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def show_value(v: Any) -> str:
    """How a message shows the value `v`: text quoted, numbers as written, a mapping or a list by its kind; cut at 60 characters."""
    if isinstance(v, float) and not hasattr(v, "text") and v.is_integer():
        v = int(v)  # pydantic's bound 1.0 reads better as 1
    text = repr(v) if isinstance(v, str) else str(getattr(v, "text", None) or v)
    if isinstance(v, Mapping):
        text = "a mapping"
    elif isinstance(v, list):
        text = "a list"
    elif v is None:
        text = "nothing"
    return text if len(text) <= 60 else text[:57] + "..."


class FieldProblems(ValueError):
    """Raised by a validator that found several problems, each below the validated field.

    `items` holds (sub-path, message) pairs; `pydantic_problems` appends each sub-path
    to the field's location, so `hours` problems point at `hours.mon-fri` and its line.
    """

    def __init__(self, items: list[tuple[FieldPath, str]]) -> None:
        self.items = items
        super().__init__("; ".join(f"{format_path(p)}: {m}" if p else m for p, m in items))


# ---------------------------------------------------------------- scalars


class ExactFloat(float):
    """A YAML float that remembers how it was written: money `40.00` becomes Decimal("40.00") exactly."""

    text: str


def _to_money(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
        raise ValueError(f"{v!r} is not a money amount (write it like 40.00)")  # noqa: TRY004 (pydantic reports ValueError)
    text = getattr(v, "text", None) or str(v).strip()
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{text!r} is not a money amount (write it like 40.00)") from None
    if not d.is_finite():
        raise ValueError(f"{text!r} is not a money amount (write it like 40.00)")
    if d < 0:
        raise ValueError(f"{text} is negative (money amounts are 0 or more, e.g. 40.00)")
    try:
        cents = d.quantize(CENT)
    except InvalidOperation:
        raise ValueError(f"{text} is too large (write a realistic amount like 40.00)") from None
    if d != cents:
        raise ValueError(f"{text} has fractions of a cent (round it to cents, e.g. {cents})")
    return cents


Money = Annotated[Decimal, BeforeValidator(_to_money)]


def _is_number(v: Any) -> TypeGuard[int | float | Decimal | str]:
    """A finite number, or text that reads as one (operator arguments, weights and rates as users write them)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float, Decimal)):
        return Decimal(str(v)).is_finite()
    if isinstance(v, str):
        try:
            return Decimal(v.strip()).is_finite()
        except InvalidOperation:
            return False
    return False


def _yaml_text(v: Any) -> Any:
    """An unquoted yes/no/1 in YAML is a bool or a number: take it as the text the user meant."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float, Decimal)):
        return str(getattr(v, "text", None) or v)
    return v


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _not_a_yaml_number(v: Any, example: str) -> Any:
    """Unquoted +18885550123 is an integer to YAML: say how to quote it instead of 'expected text'."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError(f"{v} was read as a number (put it in quotes with its leading +, e.g. {example})")  # noqa: TRY004 (pydantic reports ValueError)
    return v


def _e164(v: str) -> str:
    if not _E164.match(v):
        raise ValueError(f'{v!r} is not an E.164 number (write it like "+18885550123": +, country code, number, no spaces)')
    return v


def _destination(v: str) -> str:
    if _E164.match(v) or re.match(r"^sips?:[^\s]+$", v):
        return v
    raise ValueError(f'{v!r} is neither an E.164 number nor a sip: URI (write it like "+18005550100" or "sip:sales@example.com")')


E164 = Annotated[str, BeforeValidator(lambda v: _not_a_yaml_number(v, '"+18885550123"')), AfterValidator(_e164)]
Destination = Annotated[str, BeforeValidator(lambda v: _not_a_yaml_number(v, '"+18005550100"')), AfterValidator(_destination)]


def _pattern(regex: str, what: str, example: str) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def check(v: str) -> str:
        if not compiled.match(v):
            raise ValueError(f"{v!r} is not {what} (write it like {example})")
        return v

    return check


StateCode = Annotated[str, AfterValidator(_pattern(r"^[A-Za-z]{2}$", "a two-letter state code", "CA"))]
ZipPrefix = Annotated[str, AfterValidator(_pattern(r"^\d{1,5}$", "a ZIP prefix of 1 to 5 digits", '"900"'))]
AreaCode = Annotated[str, AfterValidator(_pattern(r"^\d{3}$", "a three-digit area code", '"213"'))]


STRATEGIES = (
    "price",
    "priority",
    "weight",
    "parallel_highest",
    "parallel_first",
    "ping_post",
    "even",
    "availability",
    "direct",
    "queue",
)
Strategy = Literal[
    "price", "priority", "weight", "parallel_highest", "parallel_first", "ping_post", "even", "availability", "direct", "queue"
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- raw data

# The list sections of a configuration; the reference checks read them from raw data (tolerant of bad shapes).
LIST_SECTIONS = ("publishers", "buyers", "campaigns", "queues", "agents", "ivr_flows", "crm_endpoints")
_SECTION_NOUN = {
    "publishers": "publisher",
    "buyers": "buyer",
    "campaigns": "campaign",
    "queues": "queue",
    "agents": "agent",
    "ivr_flows": "IVR flow",
    "crm_endpoints": "CRM endpoint",
}


def _items(data: Mapping[str, Any], section: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = data.get(section)
    if not isinstance(value, list):
        return []
    return [(i, x) for i, x in enumerate(value) if isinstance(x, Mapping)]
