"""Logging: readable locally, one JSON object per line in production (SWITCHBOARD_LOG_JSON=1).

Every line goes through one stdlib handler on stderr whose structlog ProcessorFormatter renders
both our structlog events and the stdlib records of the libraries (aiokafka, faust, mode, grpc,
py.warnings), so in production every line is JSON. Libraries log at WARNING and above only.

No caller number in a log line (DESIGN: callers' numbers are personal data): the sources log
call ids, not numbers; `mask_phone_numbers` is the safety net in both chains, masking fields
named like a number (caller, number, ani, ...) and phone-number-shaped text in any string.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.typing import Processor

from switchboard.platform.settings import LogSettings

MASK = "[number]"
# Fields whose value is a caller's number whatever it looks like.
NUMBER_FIELDS = frozenset({"caller", "number", "caller_number", "ani", "phone", "from_number", "from_", "msisdn"})
# E.164 (+ and 8-15 digits), a formatted NANP number ((213) 555-0199, 213-555-0199, 213.555.0199),
# and a bare run of 10 or 11 digits (2135550199, 12135550199) that is a word of its own: not inside
# a longer run, a hex id (call ids) or a decimal number.
PHONE_SHAPED = re.compile(
    r"\+\d{8,15}(?!\d)"
    r"|(?<![\w.])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w.])"
    r"|(?<![\w.])1?\d{10}(?![\w.])"
)
LIBRARY_MIN_LEVEL = logging.WARNING


def mask_text(text: str) -> str:
    return PHONE_SHAPED.sub(MASK, text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: MASK if k in NUMBER_FIELDS else _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


def mask_phone_numbers(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no caller number leaves in a log line (module doc)."""
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # structlog's own bookkeeping (_record, _from_structlog)
            continue
        if key in NUMBER_FIELDS and value not in (None, ""):
            event_dict[key] = MASK
        else:
            event_dict[key] = _mask(value)
    return event_dict


class _LibraryLevel(logging.Filter):
    """Our structlog events pass at the configured level; the libraries' records at WARNING and above."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.min_foreign = max(level, LIBRARY_MIN_LEVEL)

    def filter(self, record: logging.LogRecord) -> bool:
        from_structlog = isinstance(record.msg, dict)  # ProcessorFormatter.wrap_for_formatter passes the event dict
        return from_structlog or record.levelno >= self.min_foreign


def configure_logging(settings: LogSettings | None = None, service: str = "switchboard") -> structlog.stdlib.BoundLogger:
    settings = settings or LogSettings()
    level = logging.getLevelName(settings.level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_phone_numbers,
    ]
    rendering: list[Processor]
    if settings.json_format:
        # Tracebacks become one string field: still one line per record.
        rendering = [structlog.processors.format_exc_info, mask_phone_numbers, structlog.processors.JSONRenderer()]
    else:
        rendering = [structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            # A library record has no service context bound through structlog's logger: add it here too.
            *shared,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_LibraryLevel(level))
    root = logging.getLogger()
    for old in list(root.handlers):  # a second configure (tests) replaces, never duplicates, the handler
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn → py.warnings records → the same handler
    structlog.contextvars.bind_contextvars(service=service)
    return structlog.get_logger(service)
