"""`python -m switchboard.services.queue`: settings → logging → run until SIGTERM (env SWITCHBOARD_QUEUE_*)."""

from __future__ import annotations

import sys

from switchboard.core.config import ConfigError
from switchboard.platform.lifecycle import run_service
from switchboard.platform.logging import configure_logging
from switchboard.services.queue.service import SERVICE, run
from switchboard.services.queue.settings import QueueSettings


def main() -> None:
    settings = QueueSettings()
    configure_logging(settings.log, SERVICE)
    try:
        run_service(lambda stop: run(settings, stop))
    except ConfigError as exc:  # names the file, the field and the fix: no traceback needed
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
