"""`python -m switchboard.services.router`: settings → logging → run until SIGTERM."""

from __future__ import annotations

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import service_main
from switchboard.services.router.service import run
from switchboard.services.router.settings import RouterSettings


def main() -> None:
    service_main("router", RouterSettings, run, print_errors=(ConfigError,))  # ConfigError: exit 2, no traceback


if __name__ == "__main__":
    main()
