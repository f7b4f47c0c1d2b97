"""`python -m switchboard.services.ivr`: settings → logging → run until SIGTERM (env SWITCHBOARD_IVR_*)."""

from __future__ import annotations

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import service_main
from switchboard.services.ivr.service import SERVICE, run
from switchboard.services.ivr.settings import IvrSettings


def main() -> None:
    service_main(SERVICE, IvrSettings, run, print_errors=(ConfigError,))  # ConfigError: exit 2, no traceback


if __name__ == "__main__":
    main()
