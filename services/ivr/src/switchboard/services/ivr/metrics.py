"""The ivr's domain metrics (docs/OPERATIONS.md); the generic ones are platform.metrics'."""

from __future__ import annotations

from prometheus_client import Counter

CALLS_STARTED = Counter(
    "switchboard_calls_started", "Calls the edge started (call.started published), per campaign", ["campaign"]
)
