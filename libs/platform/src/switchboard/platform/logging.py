"""structlog setup: readable locally, JSON in production (SWITCHBOARD_LOG_JSON=1)."""

from __future__ import annotations

import logging
import sys

import structlog

from switchboard.platform.settings import LogSettings


def configure_logging(settings: LogSettings | None = None, service: str = "switchboard") -> structlog.stdlib.BoundLogger:
    settings = settings or LogSettings()
    level = logging.getLevelName(settings.level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    renderer = structlog.processors.JSONRenderer() if settings.json_format else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (aiokafka, faust, grpc) log through stdlib logging: keep them at WARNING on stderr.
    logging.basicConfig(
        stream=sys.stderr, level=max(level, logging.WARNING), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    structlog.contextvars.bind_contextvars(service=service)
    return structlog.get_logger(service)
