"""`python -m switchboard.services.cti`: call context events for CRMs (env SWITCHBOARD_CTI_*)."""

from __future__ import annotations

from switchboard.platform.lifecycle import service_main
from switchboard.services.cti.service import SERVICE, run
from switchboard.services.cti.settings import CtiSettings


def main() -> None:
    service_main(SERVICE, CtiSettings, run)


if __name__ == "__main__":
    main()
