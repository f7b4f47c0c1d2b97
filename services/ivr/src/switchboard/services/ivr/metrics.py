"""The ivr's domain metrics (docs/OPERATIONS.md); the generic ones are platform.metrics'."""

from __future__ import annotations

from prometheus_client import Counter

CALLS_STARTED = Counter(
    "switchboard_calls_started", "Calls the edge started (call.started published), per campaign", ["campaign"]
)

# The ACD at the edge (docs/ACD.md "What the caller hears").
ANNOUNCEMENTS = Counter(
    "switchboard_ivr_announcements",
    "WAITING results given to the edge (position / projected wait said), per queue and kind (waiting, callback_offer)",
    ["queue", "kind"],
)
CALLBACKS_REQUESTED = Counter(
    "switchboard_ivr_callbacks_requested", "Callers who accepted a callback (callback.requested), per queue", ["queue"]
)
PLACEMENTS_SENT = Counter(
    "switchboard_ivr_callback_placements",
    "Callback placements given to an edge (WatchCallbacks streams, the TwiML outbound caller)",
)
OUTBOUND_CALLS = Counter(
    "switchboard_ivr_outbound_calls",
    "Outbound callback calls asked of the CPaaS REST API (TwiML calls), by result (created, failed)",
    ["result"],
)
