"""CRM webhooks, the pure parts: which events an endpoint gets, the backoff schedule, when delivery gives up,
how far a partition may be committed (core.webhooks); the secrets and outcome labels of cti's sender."""

from __future__ import annotations

import random

import pytest
from standardwebhooks import Webhook

from switchboard.core.config import WEBHOOK_EVENTS, CrmEndpoint, RoutingConfig
from switchboard.core.webhooks import GiveUp, LookupBreaker, OffsetTracker, Retry, after_failure, backoff_s, matches
from switchboard.platform.webhook_payload import WEBHOOK_TYPES
from switchboard.services.cti.lookup import fields_of, request_data
from switchboard.services.cti.webhooks import CrmSecretError, attempt_outcome, webhook_signers
from switchboard.v1 import events_pb2 as pb

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def endpoint(**fields: object) -> CrmEndpoint:
    return CrmEndpoint.model_validate({"id": "crm", "url": "http://127.0.0.1:9/hook", "secret_env": "S", **fields})


def event(**fields: object) -> pb.CtiEvent:
    return pb.CtiEvent(**{"event_id": "e1", "call_id": "c1", "type": pb.CTI_EVENT_TYPE_CALL_ROUTED, **fields})  # type: ignore[arg-type]


# ------------------------------------------------------------------ matching


def test_the_config_names_every_webhook_type_and_only_those():
    assert set(WEBHOOK_EVENTS) == set(WEBHOOK_TYPES.values())


def test_no_filter_matches_every_event_of_the_listed_types():
    assert matches(endpoint(), "call.routed", event())
    assert matches(endpoint(), "call.ended", event(type=pb.CTI_EVENT_TYPE_CALL_ENDED))
    only_ends = endpoint(events=["call.ended"])
    assert not matches(only_ends, "call.routed", event(buyer_id="b1"))
    assert matches(only_ends, "call.ended", event(buyer_id="b1"))


def test_campaign_filter():
    e = endpoint(campaigns=["solar-ca"])
    assert matches(e, "call.routed", event(campaign_id="solar-ca"))
    assert not matches(e, "call.routed", event(campaign_id="solar-az"))
    assert not matches(e, "call.ended", event())  # a wrap-up without its routed context has no campaign


@pytest.mark.parametrize(
    ("buyers", "queues", "target", "expected"),
    [
        (["b1"], [], {"buyer_id": "b1"}, True),
        (["b1"], [], {"buyer_id": "b2"}, False),
        (["b1"], [], {"agent_id": "ana", "queue_id": "sales"}, False),
        ([], ["sales"], {"agent_id": "ana", "queue_id": "sales"}, True),
        ([], ["sales"], {"buyer_id": "b1"}, False),
        # Both lists name the call's target: either one is enough.
        (["b1"], ["sales"], {"buyer_id": "b1"}, True),
        (["b1"], ["sales"], {"agent_id": "ana", "queue_id": "sales"}, True),
        (["b1"], ["sales"], {"agent_id": "ana", "queue_id": "support"}, False),
    ],
)
def test_buyers_and_queues_filter_the_target(buyers, queues, target, expected):
    assert matches(endpoint(buyers=buyers, queues=queues), "call.routed", event(**target)) is expected


def test_campaign_and_target_filters_both_hold():
    e = endpoint(campaigns=["solar-ca"], buyers=["b1"])
    assert matches(e, "call.routed", event(campaign_id="solar-ca", buyer_id="b1"))
    assert not matches(e, "call.routed", event(campaign_id="solar-az", buyer_id="b1"))
    assert not matches(e, "call.routed", event(campaign_id="solar-ca", buyer_id="b2"))


# ------------------------------------------------------------------ backoff and giving up


def test_backoff_is_full_jitter_under_a_doubling_ceiling():
    ceilings = [backoff_s(n, 0.999999, base_s=0.5, max_s=30) for n in range(1, 9)]
    assert ceilings == pytest.approx([0.5, 1, 2, 4, 8, 16, 30, 30], rel=1e-5)
    assert all(backoff_s(n, 0.0, 0.5, 30) == 0 for n in range(1, 9))
    rng = random.Random(7)
    waits = [backoff_s(4, rng.random(), 0.5, 30) for _ in range(2000)]
    assert min(waits) >= 0 and max(waits) < 4
    assert 1.7 < sum(waits) / len(waits) < 2.3  # uniform over [0, 4): mean 2
    assert backoff_s(10_000, 0.5, 0.5, 30) == 15  # no overflow for a huge attempt number


def test_retries_until_max_attempts_then_the_reason_names_the_last_failure():
    e = endpoint(max_attempts=3, max_age_s=3600)
    assert after_failure(e, 1, age_s=1, delay_s=0.5, failure="http_500") == Retry(0.5)
    assert after_failure(e, 2, age_s=2, delay_s=1.0, failure="timeout") == Retry(1.0)
    step = after_failure(e, 3, age_s=3, delay_s=2.0, failure="http_503")
    assert isinstance(step, GiveUp)
    assert step.reason.startswith("undeliverable: crm endpoint crm:")
    assert "3 attempts" in step.reason and step.reason.endswith("http_503")


def test_no_retry_would_start_past_max_age():
    e = endpoint(max_attempts=8, max_age_s=60)
    assert isinstance(after_failure(e, 1, age_s=50, delay_s=9.9, failure="timeout"), Retry)
    step = after_failure(e, 1, age_s=50, delay_s=10.1, failure="connection_refused")
    assert isinstance(step, GiveUp)
    assert "max_age_s 60" in step.reason and step.reason.endswith("connection_refused")


# ------------------------------------------------------------------ commits


def test_a_partition_is_committed_up_to_its_oldest_unfinished_record():
    t = OffsetTracker()
    assert t.commit_points() == {}
    for offset in (10, 11, 12):
        t.add(0, offset)
    t.add(1, 5)
    assert t.commit_points() == {0: 10, 1: 5}
    t.done(0, 11)  # another call's record finished first
    t.done(0, 12)
    assert t.commit_points() == {0: 10, 1: 5}
    t.done(0, 10)
    t.done(1, 5)
    assert t.commit_points() == {0: 13, 1: 6}
    assert t.pending() == 0


def test_a_revoked_partition_is_forgotten():
    t = OffsetTracker()
    t.add(0, 1)
    t.add(2, 7)
    t.forget(2)
    t.done(2, 7)  # a delivery that finished after the revocation changes nothing
    assert t.commit_points() == {0: 1}
    assert t.pending() == 1


# ------------------------------------------------------------------ the sender's pure bits


def test_signers_come_from_the_named_variables_and_the_secret_is_never_shown():
    endpoints = [endpoint(id="a", secret_env="A_SECRET"), endpoint(id="b", secret_env="B_SECRET")]
    signers = webhook_signers(endpoints, {"A_SECRET": SECRET, "B_SECRET": SECRET}, "routing.yaml")
    body = '{"type":"call.routed"}'
    from datetime import UTC, datetime

    now = datetime.now(tz=UTC)
    sig = signers["a"].sign("e1", now, body)
    headers = {"webhook-id": "e1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": sig}
    assert Webhook(SECRET).verify(body, headers) == {"type": "call.routed"}

    with pytest.raises(CrmSecretError) as err:
        webhook_signers(endpoints, {"A_SECRET": "not base64 at all!" + SECRET[10:]}, "routing.yaml")
    text = str(err.value)
    assert "routing.yaml: crm_endpoints.0.secret_env: environment variable A_SECRET does not hold" in text
    assert "routing.yaml: crm_endpoints.1.secret_env: environment variable B_SECRET is not set" in text
    assert SECRET[10:] not in text


@pytest.mark.parametrize(
    ("status", "error", "label"),
    [
        (200, None, "2xx"),
        (204, None, "2xx"),
        (302, None, "http_3xx"),
        (410, None, "http_4xx"),
        (503, None, "http_5xx"),
        (None, "timeout", "timeout"),
    ],
)
def test_attempt_outcome_labels_are_bounded(status, error, label):
    assert attempt_outcome(status, error) == label


# ---------------------------------------------------------------- screen pop lookups


def test_a_lookup_that_keeps_failing_is_skipped_for_a_while_and_one_success_closes_it():
    b = LookupBreaker(failures=3, cool_down_s=30)
    assert b.allows(0)
    assert not b.record(False, 1) and not b.record(False, 2)
    assert b.record(False, 3)  # the third in a row opens it
    assert not b.allows(32.9) and b.allows(33)
    assert not b.record(False, 33) and not b.record(True, 34)  # a success resets the count
    assert not b.record(False, 35) and not b.record(False, 36) and b.allows(36)


def test_lookup_answers_and_who_may_see_the_number():
    assert fields_of(b'{"fields": {"crm_id": "A-1"}}') == {"crm_id": "A-1"}
    for bad in (b"[]", b'{"fields": [1]}', b'{"fields": {"n": 1}}', b"not json"):
        with pytest.raises(ValueError):
            fields_of(bad)
    cfg = RoutingConfig.model_validate(
        {
            "buyers": [
                {"id": "private", "destination": "+18005550100", "bid": {"type": "static", "price": "40.00"}},
                {
                    "id": "sharer",
                    "destination": "+18005550101",
                    "share_caller_number": True,
                    "bid": {"type": "static", "price": "40.00"},
                },
            ]
        }
    )
    caller = pb.Caller(number="+13105551234", state="CA")
    assert "number" not in request_data({b.id: b for b in cfg.buyers}, pb.CtiEvent(buyer_id="private", caller=caller))["caller"]  # type: ignore[operator]
