"""CRM webhook delivery as decisions (docs/CONFIG.md#crm_endpoints, "Delivery"): which events an endpoint gets, when to
retry, when to give up, and how far the input may be committed. Pure: the time, the randomness and
the event's facts are passed in; services/cti/webhooks.py does the HTTP and the Kafka.

Retries: attempt n (1-based) that failed waits `backoff_s(n)`, a full-jitter exponential backoff
(uniformly 0 .. min(max_s, base_s * 2**(n-1))), so a CRM coming back is not hit by every retry at
once. The first attempt always happens (also for an event older than max_age_s, e.g. one replayed
from the dead letters); no retry is made past `max_attempts` attempts, or that would start more
than `max_age_s` after the event happened: the event is dead-lettered with the last failure.

Commits: deliveries of different calls finish out of order, so a partition's offset is committed
only up to its oldest record not yet finished (delivered, dead-lettered or not for this endpoint):
after a crash every unfinished record is read and delivered again (same webhook-id), none is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard.core.config.crm import CrmEndpoint
from switchboard.v1 import events_pb2 as pb

# The backoff defaults (the cti settings SWITCHBOARD_CTI_WEBHOOK_BACKOFF_* override them).
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 300.0


def matches(endpoint: CrmEndpoint, event_type: str, event: pb.CtiEvent) -> bool:
    """Whether `endpoint` gets `event` (whose webhook type is `event_type`): the event is one it asks for,
    the campaign is listed (or none is), and the target (buyer or queue) is listed (or neither list is set).

    An event that lacks the field a filter reads (a wrap-up whose routed context this cti never saw has no
    campaign) does not match that filter.
    """
    return event_type in endpoint.events and covers(endpoint, event)


def covers(endpoint: CrmEndpoint, event: pb.CtiEvent) -> bool:
    """Whether the event's call is one of the endpoint's (its campaign, buyer and queue filters), whatever the
    event's type: `matches` for webhooks, and by itself for the screen pop lookups (services/cti/lookup.py)."""
    if endpoint.campaigns and event.campaign_id not in endpoint.campaigns:
        return False
    if endpoint.buyers or endpoint.queues:
        by_buyer = bool(event.buyer_id) and event.buyer_id in endpoint.buyers
        by_queue = bool(event.queue_id) and event.queue_id in endpoint.queues
        return by_buyer or by_queue
    return True


def backoff_s(attempt: int, rand: float, base_s: float = BACKOFF_BASE_S, max_s: float = BACKOFF_MAX_S) -> float:
    """The wait after failed attempt `attempt` (1-based): full jitter, `rand` uniform in [0, 1)."""
    ceiling = min(max_s, base_s * 2 ** min(attempt - 1, 62))
    return rand * ceiling


@dataclass(frozen=True)
class Retry:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    reason: str  # why no further attempt: the dead letter's reason


def after_failure(endpoint: CrmEndpoint, attempts: int, age_s: float, delay_s: float, failure: str) -> Retry | GiveUp:
    """What follows failed attempt number `attempts` of an event `age_s` old, the next wait being `delay_s`.

    `failure` is the last attempt's status or error (e.g. "http_503", "timeout"); it ends the reason.
    """
    if attempts >= endpoint.max_attempts:
        return GiveUp(f"undeliverable: crm endpoint {endpoint.id}: {attempts} attempts failed, the last {failure}")
    if age_s + delay_s > endpoint.max_age_s:
        return GiveUp(
            f"undeliverable: crm endpoint {endpoint.id}: no retry after {attempts} attempts within max_age_s "
            f"{endpoint.max_age_s} of the event, the last {failure}"
        )
    return Retry(delay_s)


@dataclass
class _Partition:
    pending: set[int] = field(default_factory=set)
    next_offset: int | None = None  # one past the highest offset added


class OffsetTracker:
    """Per partition: the offsets read and not finished; `commit_points` is how far each may be committed."""

    def __init__(self) -> None:
        self._parts: dict[int, _Partition] = {}

    def add(self, partition: int, offset: int) -> None:
        p = self._parts.setdefault(partition, _Partition())
        p.pending.add(offset)
        p.next_offset = max(offset + 1, p.next_offset or 0)

    def done(self, partition: int, offset: int) -> None:
        p = self._parts.get(partition)
        if p is not None:
            p.pending.discard(offset)

    def forget(self, partition: int) -> None:
        """The partition went to another consumer: what was pending here is its to deliver now."""
        self._parts.pop(partition, None)

    def pending(self) -> int:
        return sum(len(p.pending) for p in self._parts.values())

    def commit_points(self) -> dict[int, int]:
        """partition → the offset to commit (the next record to read after a restart)."""
        out: dict[int, int] = {}
        for n, p in self._parts.items():
            if p.next_offset is None:
                continue
            out[n] = min(p.pending) if p.pending else p.next_offset
        return out


@dataclass
class LookupBreaker:
    """Skips a CRM lookup that keeps failing: after `failures` failed lookups in a row the endpoint is not asked
    for `cool_down_s`, then asked again (one success closes it). Every screen pop waits for a lookup up to its
    deadline; a CRM that is down would make every pop wait the whole deadline, and cti reads its input in order.
    """

    failures: int = 3
    cool_down_s: float = 30.0
    _in_a_row: int = 0
    _open_until: float = 0.0

    def allows(self, now: float) -> bool:
        return now >= self._open_until

    def record(self, ok: bool, now: float) -> bool:
        """Note a lookup's result; True when this opened the breaker."""
        if ok:
            self._in_a_row = 0
            return False
        self._in_a_row += 1
        if self._in_a_row >= self.failures:
            self._in_a_row = 0
            self._open_until = now + self.cool_down_s
            return True
        return False
