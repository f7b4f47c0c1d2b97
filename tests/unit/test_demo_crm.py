"""The demo CRM in `switchboard run`: which endpoints the stack points at it, and its line in the live view."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from switchboard.demo.crm import DEMO_CRM_SECRET_ENV, CrmCounts, LastPop
from switchboard.demo.driver import DriveStats
from switchboard.demo.live import CrmView, render
from switchboard.platform.settings import DEMO_CONFIG
from switchboard.stack import demo_crm_secret_envs


def test_the_stack_gives_the_demo_crm_secret_to_the_endpoints_that_point_at_it(tmp_path: Path) -> None:
    assert demo_crm_secret_envs(DEMO_CONFIG) == (DEMO_CRM_SECRET_ENV,)
    other = tmp_path / "routing.yaml"
    other.write_text(
        DEMO_CONFIG.read_text().replace(
            'url: "http://${SWITCHBOARD_DEMO_CRM:-127.0.0.1:9300}/hooks"', 'url: "https://crm.example.com/hooks"'
        )
    )
    assert demo_crm_secret_envs(other) == ()  # a real CRM: no demo receiver, no generated secret


def text(view: CrmView | None) -> str:
    console = Console(record=True, width=200)
    console.print(render(DriveStats(), 5.0, crm=view))
    return console.export_text()


def test_the_live_view_shows_the_crm_webhooks_line() -> None:
    view = CrmView("127.0.0.1:1")
    view.counts = CrmCounts(
        deliveries=12, duplicates=1, bad_signatures=0, pops_with_history=2, last_pop=LastPop(call_id="c-7", earlier=3)
    )
    shown = text(view)
    assert "CRM webhooks" in shown
    assert (
        "12 deliveries verified, 1 duplicates, 0 bad signatures, 2 repeat callers' pops with history; "
        "last: call c-7: 3 earlier calls"
    ) in shown
    assert "CRM webhooks" not in text(CrmView(None)) and "CRM webhooks" not in text(None)  # no demo CRM running
