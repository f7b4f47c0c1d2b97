"""platform.logging: every line JSON with SWITCHBOARD_LOG_JSON=1 (library records too), caller numbers masked."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from switchboard.platform.logging import MASK, mask_text

SCRIPT = """
import logging, warnings, structlog
from switchboard.platform.logging import configure_logging
log = configure_logging(service="t")
log.info("call_started", call_id="c1", caller="+12135550199", detail="from 2135550199")
structlog.get_logger("switchboard.x").debug("hidden_at_info")
logging.getLogger("aiokafka").warning("Unable connect to node %s", "127.0.0.1:9092")
logging.getLogger("aiokafka").info("library info is below the library level")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("faust").exception("agent crashed for +14155550123")
warnings.warn("deprecated")
"""


def run(json_format: bool) -> list[str]:
    env = {"SWITCHBOARD_LOG_JSON": "1" if json_format else "0", "PYTHONWARNINGS": "always"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60, check=True)
    return out.stderr.splitlines()


def test_json_every_line_libraries_included_numbers_masked():
    lines = run(json_format=True)
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    events = [r["event"] for r in records]
    assert events[0] == "call_started" and records[0]["caller"] == MASK and records[0]["detail"] == f"from {MASK}"
    assert records[0]["service"] == "t" and records[0]["level"] == "info"
    assert "hidden_at_info" not in events
    assert "Unable connect to node 127.0.0.1:9092" in events  # aiokafka's stdlib record, as JSON
    assert not any("library info" in e for e in events)
    crashed = next(r for r in records if r["logger"] == "faust")
    assert crashed["event"] == f"agent crashed for {MASK}" and "ZeroDivisionError" in crashed["exception"]
    assert any(r["logger"] == "py.warnings" for r in records)
    assert not any("2135550199" in line or "4155550123" in line for line in lines)


def test_local_format_stays_readable():
    lines = run(json_format=False)
    assert lines[0].split()[1:3] == ["[info", "]"] and "call_started" in lines[0]
    assert "caller=[number]" in lines[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])


@pytest.mark.parametrize(
    "text",
    ["+12135550199", "+442071838750", "2135550199", "12135550199", "(213) 555-0199", "213-555-0199", "213.555.0199"],
)
def test_phone_shaped_text_is_masked(text: str):
    assert mask_text(f"caller {text} called") == f"caller {MASK} called"


@pytest.mark.parametrize(
    "text",
    [
        "offset 1234",
        "port 50051",
        "1764690000123 ms",
        "c04d0c823a0e20d54bd905",
        "t-4e1f2e404fbd413fa1234567890c9a4c",
        "2026-12-02T15:52:41Z",
        "call t-3f2a9c",
        "price 12.50",
        "1.2.3.4",
    ],
)
def test_other_numbers_are_left_alone(text: str):
    assert mask_text(text) == text


def test_library_level_filter_keeps_our_debug_lines():
    from switchboard.platform.logging import _LibraryLevel

    f = _LibraryLevel(logging.DEBUG)
    ours = logging.LogRecord("router", logging.DEBUG, "", 0, {"event": "x"}, None, None)
    theirs = logging.LogRecord("aiokafka", logging.INFO, "", 0, "x", None, None)
    assert f.filter(ours) and not f.filter(theirs)
