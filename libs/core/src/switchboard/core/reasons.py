"""Every `call.rejected` reason, and the announcement routing plays for it (pure: constants only).

One name per reason for every producer (the ivr, the router's engine, the queue's ACD) and every
reader (the simulator, the demo, tests): a reason is a wire value that analytics groups by, so a
second spelling would be a second reason. docs/TOPICS.md lists them with what they mean.

At the edge (the ivr service; core.screening and core.ivr decide them):
    UNKNOWN_NUMBER      the dialed number belongs to no campaign
    BLOCKED             the caller is on the global or the campaign's blocklist
    INVALID_NUMBER      the caller number is invalid and the campaign does not allow it
    DUPLICATE           the caller called the campaign within its duplicate_window
    DISQUALIFIED        the campaign's IVR flow ended disqualified
In routing (core.engine):
    UNKNOWN_CAMPAIGN    the call's campaign is not configured (here)
    UNKNOWN_PUBLISHER   neither the call's publisher nor its campaign's is configured
    UNSUPPORTED_STRATEGY  a tier's strategy is not one the engine knows
    NO_ELIGIBLE_BUYER   no buyer passed eligibility in any tier (or every candidate became ineligible)
    NO_BID              no bid at or above the floor in any tier
    ALL_DECLINED        every offer failed, or every pinged buyer declined
    MAX_ATTEMPTS        routing.max_attempts offers were made and the last one failed
    OUTSIDE_HOURS       every buyer was excluded by its schedule
In the queue (core.acd):
    UNKNOWN_QUEUE       the call's queue is not configured (or was removed while the call waited)
    NO_AGENTS           the queue has no agents
    NO_MATCHING_AGENT   no agent of the queue covers the caller's needs
    ALL_DECLINED        every matching agent let the call go (no answer, declined, busy, failed)
    MAX_ATTEMPTS        more offers than the campaign's routing.max_attempts
    CALLBACK_FAILED     the caller did not answer the callback, callback_retries retries included
    CALLBACK_EXPIRED    the callback was not placed within callback_max_wait_s of its acceptance (or time)
Anywhere:
    ABANDONED           the caller hung up before anyone took the call: in the IVR (the ivr), while
                        the router decides or a buyer's offer rings (the router), waiting in a queue
                        or while an agent's phone rings, or the queue's max_wait_s passed (the queue)

Why a buyer gave no bid or its post failed (bid.received / post.answered `reason`; the bidder
produces them, the engine and the router read them, reports group buyer faults by them):
    TIMEOUT             no answer within the buyer's timeout (or no time was left before the deadline)
    MALFORMED           the answer could not be read (not JSON, wrong fields, too long)
    CONNECTION_REFUSED  nothing listens at the buyer's address
    CONNECTION_ERROR    the connection failed otherwise (reset, DNS, protocol error)
    TLS_ERROR           the TLS handshake or the certificate failed
    UNSIGNED            the buyer must sign its answers and this one's signature is missing or wrong
    UNKNOWN_BUYER       the buyer is not configured here (config changed under the call)
    http_status(s)      "http_4xx" / "http_5xx": the buyer answered with a non-2xx HTTP status
    grpc_status(name)   "grpc_<status>": the buyer's gRPC call failed with that status
    POST_REJECTED       the buyer refused the post without saying why (its own reason otherwise)
A decline's reason is the buyer's own text ("declined" when it gives none).

Announcements: `announcement(reason)` is what routing (the engine's RejectCall) tells the edge to
play. The ivr and the queue announce their own rejections with their settings (the ivr's
`*_announcement` per edge reason, the queue's `abandoned_announcement` / `rejected_announcement`),
so an operator words them without a configuration change of routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

UNKNOWN_NUMBER: Final = "unknown_number"
BLOCKED: Final = "blocked"
INVALID_NUMBER: Final = "invalid_number"
DUPLICATE: Final = "duplicate"
DISQUALIFIED: Final = "disqualified"

UNKNOWN_CAMPAIGN: Final = "unknown_campaign"
UNKNOWN_PUBLISHER: Final = "unknown_publisher"
UNSUPPORTED_STRATEGY: Final = "unsupported_strategy"
NO_ELIGIBLE_BUYER: Final = "no_eligible_buyer"
NO_BID: Final = "no_bid"
ALL_DECLINED: Final = "all_declined"
MAX_ATTEMPTS: Final = "max_attempts"
OUTSIDE_HOURS: Final = "outside_hours"

UNKNOWN_QUEUE: Final = "unknown_queue"
NO_AGENTS: Final = "no_agents"
NO_MATCHING_AGENT: Final = "no_matching_agent"
CALLBACK_FAILED: Final = "callback_failed"
CALLBACK_EXPIRED: Final = "callback_expired"

ABANDONED: Final = "abandoned"

EDGE_REASONS: Final = (UNKNOWN_NUMBER, BLOCKED, INVALID_NUMBER, DUPLICATE, DISQUALIFIED, ABANDONED)
ROUTING_REASONS: Final = (
    UNKNOWN_CAMPAIGN,
    UNKNOWN_PUBLISHER,
    UNSUPPORTED_STRATEGY,
    NO_ELIGIBLE_BUYER,
    NO_BID,
    ALL_DECLINED,
    MAX_ATTEMPTS,
    OUTSIDE_HOURS,
    ABANDONED,
)
QUEUE_REASONS: Final = (
    UNKNOWN_QUEUE,
    NO_AGENTS,
    NO_MATCHING_AGENT,
    ALL_DECLINED,
    MAX_ATTEMPTS,
    ABANDONED,
    CALLBACK_FAILED,
    CALLBACK_EXPIRED,
)
ALL_REASONS: Final = frozenset((*EDGE_REASONS, *ROUTING_REASONS, *QUEUE_REASONS))
TIMEOUT: Final = "timeout"
MALFORMED: Final = "malformed"
CONNECTION_REFUSED: Final = "connection_refused"
CONNECTION_ERROR: Final = "connection_error"
TLS_ERROR: Final = "tls_error"
UNSIGNED: Final = "unsigned"
UNKNOWN_BUYER: Final = "unknown_buyer"
POST_REJECTED: Final = "rejected"
DECLINED: Final = "declined"

BUYER_FAULTS: Final = (TIMEOUT, MALFORMED, CONNECTION_REFUSED, CONNECTION_ERROR, TLS_ERROR, UNSIGNED, UNKNOWN_BUYER)
ANSWER_REASONS: Final = frozenset((*BUYER_FAULTS, POST_REJECTED, DECLINED))  # besides http_status / grpc_status


def http_status(status: int) -> str:
    """The fault of a non-2xx HTTP answer: its status class ("http_4xx", "http_5xx")."""
    return f"http_{status // 100}xx"


def grpc_status(name: str) -> str:
    """The fault of a failed gRPC call, from its status code's name ("DEADLINE_EXCEEDED" → "grpc_deadline_exceeded")."""
    return f"grpc_{name.lower()}"


# Routing's announcements where the default does not fit. A caller who hung up hears nothing.
ANNOUNCEMENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        OUTSIDE_HOURS: "Thank you for calling. Our partners are closed right now. Please call again during business hours.",
        UNKNOWN_CAMPAIGN: "We're sorry, this number is not in service.",
        ABANDONED: "",
    }
)
DEFAULT_ANNOUNCEMENT: Final = "Thank you for calling. No one is available to take your call right now. Please try again later."


def announcement(reason: str) -> str:
    """What the edge plays before hanging up on a call routing rejected with `reason`."""
    return ANNOUNCEMENTS.get(reason, DEFAULT_ANNOUNCEMENT)
