"""`python -m switchboard.services.cti`: call context events for CRMs (env SWITCHBOARD_CTI_*)."""

from switchboard.platform.lifecycle import run_service
from switchboard.platform.logging import configure_logging
from switchboard.services.cti.service import SERVICE, run
from switchboard.services.cti.settings import CtiSettings


def main() -> None:
    settings = CtiSettings()
    configure_logging(settings.log, SERVICE)
    run_service(lambda stop: run(settings, stop))


if __name__ == "__main__":
    main()
