"""`python -m switchboard.services.router`: settings → logging → run until SIGTERM."""

from __future__ import annotations

import sys

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import run_service
from switchboard.platform.logging import configure_logging
from switchboard.services.router.service import run
from switchboard.services.router.settings import RouterSettings


def main() -> None:
    settings = RouterSettings()
    configure_logging(settings.log, service="router")
    try:
        run_service(lambda stop: run(settings, stop))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
