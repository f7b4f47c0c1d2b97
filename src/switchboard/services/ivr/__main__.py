"""`python -m switchboard.services.ivr`: settings → logging → run until SIGTERM (env SWITCHBOARD_IVR_*)."""

from __future__ import annotations

import sys

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import run_service
from switchboard.platform.logging import configure_logging
from switchboard.services.ivr.service import SERVICE, run
from switchboard.services.ivr.settings import IvrSettings


def main() -> None:
    settings = IvrSettings()
    configure_logging(settings.log, SERVICE)
    try:
        run_service(lambda stop: run(settings, stop))
    except ConfigError as exc:  # names the file, the field and the fix: no traceback needed
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
