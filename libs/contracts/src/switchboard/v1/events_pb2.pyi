import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BidOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BID_OUTCOME_UNSPECIFIED: _ClassVar[BidOutcome]
    BID_OUTCOME_BID: _ClassVar[BidOutcome]
    BID_OUTCOME_DECLINE: _ClassVar[BidOutcome]
    BID_OUTCOME_NO_BID: _ClassVar[BidOutcome]

class TargetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TARGET_KIND_UNSPECIFIED: _ClassVar[TargetKind]
    TARGET_KIND_BUYER: _ClassVar[TargetKind]
    TARGET_KIND_AGENT: _ClassVar[TargetKind]

class CallOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_OUTCOME_UNSPECIFIED: _ClassVar[CallOutcome]
    CALL_OUTCOME_ANSWERED: _ClassVar[CallOutcome]
    CALL_OUTCOME_NO_ANSWER: _ClassVar[CallOutcome]
    CALL_OUTCOME_BUSY: _ClassVar[CallOutcome]
    CALL_OUTCOME_FAILED: _ClassVar[CallOutcome]
    CALL_OUTCOME_CALLER_HANGUP: _ClassVar[CallOutcome]
    CALL_OUTCOME_BUYER_HANGUP: _ClassVar[CallOutcome]
    CALL_OUTCOME_DECLINED: _ClassVar[CallOutcome]
    CALL_OUTCOME_CALLBACK_NO_ANSWER: _ClassVar[CallOutcome]

class CtiEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CTI_EVENT_TYPE_UNSPECIFIED: _ClassVar[CtiEventType]
    CTI_EVENT_TYPE_CALL_ROUTED: _ClassVar[CtiEventType]
    CTI_EVENT_TYPE_CALL_ENDED: _ClassVar[CtiEventType]

class QueueStatusKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUEUE_STATUS_KIND_UNSPECIFIED: _ClassVar[QueueStatusKind]
    QUEUE_STATUS_KIND_WAITING: _ClassVar[QueueStatusKind]
    QUEUE_STATUS_KIND_CALLBACK_OFFERED: _ClassVar[QueueStatusKind]
    QUEUE_STATUS_KIND_CALLBACK_ACCEPTED: _ClassVar[QueueStatusKind]

class AgentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATE_UNSPECIFIED: _ClassVar[AgentState]
    AGENT_STATE_LOGGED_OUT: _ClassVar[AgentState]
    AGENT_STATE_READY: _ClassVar[AgentState]
    AGENT_STATE_NOT_READY: _ClassVar[AgentState]
    AGENT_STATE_ON_CALL: _ClassVar[AgentState]
    AGENT_STATE_WRAP_UP: _ClassVar[AgentState]
BID_OUTCOME_UNSPECIFIED: BidOutcome
BID_OUTCOME_BID: BidOutcome
BID_OUTCOME_DECLINE: BidOutcome
BID_OUTCOME_NO_BID: BidOutcome
TARGET_KIND_UNSPECIFIED: TargetKind
TARGET_KIND_BUYER: TargetKind
TARGET_KIND_AGENT: TargetKind
CALL_OUTCOME_UNSPECIFIED: CallOutcome
CALL_OUTCOME_ANSWERED: CallOutcome
CALL_OUTCOME_NO_ANSWER: CallOutcome
CALL_OUTCOME_BUSY: CallOutcome
CALL_OUTCOME_FAILED: CallOutcome
CALL_OUTCOME_CALLER_HANGUP: CallOutcome
CALL_OUTCOME_BUYER_HANGUP: CallOutcome
CALL_OUTCOME_DECLINED: CallOutcome
CALL_OUTCOME_CALLBACK_NO_ANSWER: CallOutcome
CTI_EVENT_TYPE_UNSPECIFIED: CtiEventType
CTI_EVENT_TYPE_CALL_ROUTED: CtiEventType
CTI_EVENT_TYPE_CALL_ENDED: CtiEventType
QUEUE_STATUS_KIND_UNSPECIFIED: QueueStatusKind
QUEUE_STATUS_KIND_WAITING: QueueStatusKind
QUEUE_STATUS_KIND_CALLBACK_OFFERED: QueueStatusKind
QUEUE_STATUS_KIND_CALLBACK_ACCEPTED: QueueStatusKind
AGENT_STATE_UNSPECIFIED: AgentState
AGENT_STATE_LOGGED_OUT: AgentState
AGENT_STATE_READY: AgentState
AGENT_STATE_NOT_READY: AgentState
AGENT_STATE_ON_CALL: AgentState
AGENT_STATE_WRAP_UP: AgentState

class Caller(_message.Message):
    __slots__ = ("number", "state", "zip", "area_code", "timezone")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ZIP_FIELD_NUMBER: _ClassVar[int]
    AREA_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    number: str
    state: str
    zip: str
    area_code: str
    timezone: str
    def __init__(self, number: _Optional[str] = ..., state: _Optional[str] = ..., zip: _Optional[str] = ..., area_code: _Optional[str] = ..., timezone: _Optional[str] = ...) -> None: ...

class CallStarted(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "dialed_number", "campaign_id", "publisher_id", "caller")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    DIALED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    dialed_number: str
    campaign_id: str
    publisher_id: str
    caller: Caller
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dialed_number: _Optional[str] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ...) -> None: ...

class IvrCompleted(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "call_started_at", "dialed_number", "campaign_id", "publisher_id", "caller", "answers", "qualified")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CALL_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DIALED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    QUALIFIED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    call_started_at: _timestamp_pb2.Timestamp
    dialed_number: str
    campaign_id: str
    publisher_id: str
    caller: Caller
    answers: _containers.ScalarMap[str, str]
    qualified: bool
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., call_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dialed_number: _Optional[str] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., answers: _Optional[_Mapping[str, str]] = ..., qualified: _Optional[bool] = ...) -> None: ...

class PingRequested(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "auction_id", "campaign_id", "publisher_id", "tier_index", "attempt", "strategy", "buyer_ids", "deadline", "state", "zip", "area_code", "answers", "caller_number")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BUYER_IDS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ZIP_FIELD_NUMBER: _ClassVar[int]
    AREA_CODE_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    CALLER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    auction_id: str
    campaign_id: str
    publisher_id: str
    tier_index: int
    attempt: int
    strategy: str
    buyer_ids: _containers.RepeatedScalarFieldContainer[str]
    deadline: _timestamp_pb2.Timestamp
    state: str
    zip: str
    area_code: str
    answers: _containers.ScalarMap[str, str]
    caller_number: str
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., auction_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., tier_index: _Optional[int] = ..., attempt: _Optional[int] = ..., strategy: _Optional[str] = ..., buyer_ids: _Optional[_Iterable[str]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[str] = ..., zip: _Optional[str] = ..., area_code: _Optional[str] = ..., answers: _Optional[_Mapping[str, str]] = ..., caller_number: _Optional[str] = ...) -> None: ...

class BidReceived(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "auction_id", "buyer_id", "outcome", "amount", "reason", "available", "latency_ms")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    auction_id: str
    buyer_id: str
    outcome: BidOutcome
    amount: str
    reason: str
    available: bool
    latency_ms: int
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., auction_id: _Optional[str] = ..., buyer_id: _Optional[str] = ..., outcome: _Optional[_Union[BidOutcome, str]] = ..., amount: _Optional[str] = ..., reason: _Optional[str] = ..., available: _Optional[bool] = ..., latency_ms: _Optional[int] = ...) -> None: ...

class PostRequested(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "auction_id", "buyer_id", "price", "campaign_id", "publisher_id", "caller", "answers", "deadline", "attempt")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    auction_id: str
    buyer_id: str
    price: str
    campaign_id: str
    publisher_id: str
    caller: Caller
    answers: _containers.ScalarMap[str, str]
    deadline: _timestamp_pb2.Timestamp
    attempt: int
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., auction_id: _Optional[str] = ..., buyer_id: _Optional[str] = ..., price: _Optional[str] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., answers: _Optional[_Mapping[str, str]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ...) -> None: ...

class PostAnswered(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "auction_id", "buyer_id", "accepted", "reason", "latency_ms", "attempt")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    auction_id: str
    buyer_id: str
    accepted: bool
    reason: str
    latency_ms: int
    attempt: int
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., auction_id: _Optional[str] = ..., buyer_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., latency_ms: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class TraceEntry(_message.Message):
    __slots__ = ("target_id", "kind", "tier_index", "attempt", "eligible", "excluded_by", "detail", "bid_outcome", "bid_amount", "bid_reason", "bid_latency_ms", "winner")
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIER_INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_BY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    BID_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    BID_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BID_REASON_FIELD_NUMBER: _ClassVar[int]
    BID_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    WINNER_FIELD_NUMBER: _ClassVar[int]
    target_id: str
    kind: TargetKind
    tier_index: int
    attempt: int
    eligible: bool
    excluded_by: str
    detail: str
    bid_outcome: BidOutcome
    bid_amount: str
    bid_reason: str
    bid_latency_ms: int
    winner: bool
    def __init__(self, target_id: _Optional[str] = ..., kind: _Optional[_Union[TargetKind, str]] = ..., tier_index: _Optional[int] = ..., attempt: _Optional[int] = ..., eligible: _Optional[bool] = ..., excluded_by: _Optional[str] = ..., detail: _Optional[str] = ..., bid_outcome: _Optional[_Union[BidOutcome, str]] = ..., bid_amount: _Optional[str] = ..., bid_reason: _Optional[str] = ..., bid_latency_ms: _Optional[int] = ..., winner: _Optional[bool] = ...) -> None: ...

class DecisionTrace(_message.Message):
    __slots__ = ("entries", "winning_tier", "winning_attempt", "notes")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    WINNING_TIER_FIELD_NUMBER: _ClassVar[int]
    WINNING_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[TraceEntry]
    winning_tier: int
    winning_attempt: int
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, entries: _Optional[_Iterable[_Union[TraceEntry, _Mapping]]] = ..., winning_tier: _Optional[int] = ..., winning_attempt: _Optional[int] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class CallRouted(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "call_started_at", "campaign_id", "publisher_id", "kind", "buyer_id", "agent_id", "queue_id", "destination", "price", "tier_index", "attempt", "strategy", "trace", "caller", "answers", "routing_started_at", "billable_after_s", "callback_attempt")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CALL_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    TIER_INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    call_started_at: _timestamp_pb2.Timestamp
    campaign_id: str
    publisher_id: str
    kind: TargetKind
    buyer_id: str
    agent_id: str
    queue_id: str
    destination: str
    price: str
    tier_index: int
    attempt: int
    strategy: str
    trace: DecisionTrace
    caller: Caller
    answers: _containers.ScalarMap[str, str]
    routing_started_at: _timestamp_pb2.Timestamp
    billable_after_s: int
    callback_attempt: int
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., call_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., kind: _Optional[_Union[TargetKind, str]] = ..., buyer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., queue_id: _Optional[str] = ..., destination: _Optional[str] = ..., price: _Optional[str] = ..., tier_index: _Optional[int] = ..., attempt: _Optional[int] = ..., strategy: _Optional[str] = ..., trace: _Optional[_Union[DecisionTrace, _Mapping]] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., answers: _Optional[_Mapping[str, str]] = ..., routing_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., billable_after_s: _Optional[int] = ..., callback_attempt: _Optional[int] = ...) -> None: ...

class CallRejected(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "call_started_at", "campaign_id", "publisher_id", "reason", "detail", "announcement", "trace", "routing_started_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CALL_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    ROUTING_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    call_started_at: _timestamp_pb2.Timestamp
    campaign_id: str
    publisher_id: str
    reason: str
    detail: str
    announcement: str
    trace: DecisionTrace
    routing_started_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., call_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., announcement: _Optional[str] = ..., trace: _Optional[_Union[DecisionTrace, _Mapping]] = ..., routing_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CallQueued(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "call_started_at", "campaign_id", "publisher_id", "queue_id", "caller", "answers", "tier_index", "attempt", "trace", "routing_started_at", "position", "projected_wait_s")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CALL_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    TIER_INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    ROUTING_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    call_started_at: _timestamp_pb2.Timestamp
    campaign_id: str
    publisher_id: str
    queue_id: str
    caller: Caller
    answers: _containers.ScalarMap[str, str]
    tier_index: int
    attempt: int
    trace: DecisionTrace
    routing_started_at: _timestamp_pb2.Timestamp
    position: int
    projected_wait_s: int
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., call_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., queue_id: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., answers: _Optional[_Mapping[str, str]] = ..., tier_index: _Optional[int] = ..., attempt: _Optional[int] = ..., trace: _Optional[_Union[DecisionTrace, _Mapping]] = ..., routing_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[int] = ..., projected_wait_s: _Optional[int] = ...) -> None: ...

class CallOverflowed(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "queued", "attempt", "reason", "detail", "trace")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    queued: CallQueued
    attempt: int
    reason: str
    detail: str
    trace: DecisionTrace
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queued: _Optional[_Union[CallQueued, _Mapping]] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., trace: _Optional[_Union[DecisionTrace, _Mapping]] = ...) -> None: ...

class CallEnded(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "outcome", "connected_seconds", "buyer_id", "agent_id", "attempt", "routing_pending")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ROUTING_PENDING_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    outcome: CallOutcome
    connected_seconds: int
    buyer_id: str
    agent_id: str
    attempt: int
    routing_pending: bool
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[_Union[CallOutcome, str]] = ..., connected_seconds: _Optional[int] = ..., buyer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., attempt: _Optional[int] = ..., routing_pending: _Optional[bool] = ...) -> None: ...

class CtiEvent(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "type", "campaign_id", "publisher_id", "caller", "answers", "kind", "buyer_id", "agent_id", "destination", "price", "outcome", "connected_seconds", "attempt", "queue_id", "history", "crm_fields", "strategy")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class CrmFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    CRM_FIELDS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    type: CtiEventType
    campaign_id: str
    publisher_id: str
    caller: Caller
    answers: _containers.ScalarMap[str, str]
    kind: TargetKind
    buyer_id: str
    agent_id: str
    destination: str
    price: str
    outcome: CallOutcome
    connected_seconds: int
    attempt: int
    queue_id: str
    history: _containers.RepeatedCompositeFieldContainer[PastCall]
    crm_fields: _containers.ScalarMap[str, str]
    strategy: str
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[CtiEventType, str]] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., answers: _Optional[_Mapping[str, str]] = ..., kind: _Optional[_Union[TargetKind, str]] = ..., buyer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., destination: _Optional[str] = ..., price: _Optional[str] = ..., outcome: _Optional[_Union[CallOutcome, str]] = ..., connected_seconds: _Optional[int] = ..., attempt: _Optional[int] = ..., queue_id: _Optional[str] = ..., history: _Optional[_Iterable[_Union[PastCall, _Mapping]]] = ..., crm_fields: _Optional[_Mapping[str, str]] = ..., strategy: _Optional[str] = ...) -> None: ...

class CallDisposition(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "disposition", "note", "fields", "source")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    disposition: str
    note: str
    fields: _containers.ScalarMap[str, str]
    source: str
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disposition: _Optional[str] = ..., note: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., source: _Optional[str] = ...) -> None: ...

class PastCall(_message.Message):
    __slots__ = ("call_id", "started_at", "campaign_id", "publisher_id", "outcome", "kind", "buyer_id", "agent_id", "connected_seconds", "billable", "price", "answers", "disposition", "disposition_note", "crm_fields", "offers", "rejected_reason", "billable_after_s")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class CrmFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_NOTE_FIELD_NUMBER: _ClassVar[int]
    CRM_FIELDS_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_REASON_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    started_at: _timestamp_pb2.Timestamp
    campaign_id: str
    publisher_id: str
    outcome: CallOutcome
    kind: TargetKind
    buyer_id: str
    agent_id: str
    connected_seconds: int
    billable: bool
    price: str
    answers: _containers.ScalarMap[str, str]
    disposition: str
    disposition_note: str
    crm_fields: _containers.ScalarMap[str, str]
    offers: int
    rejected_reason: str
    billable_after_s: int
    def __init__(self, call_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., outcome: _Optional[_Union[CallOutcome, str]] = ..., kind: _Optional[_Union[TargetKind, str]] = ..., buyer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., connected_seconds: _Optional[int] = ..., billable: _Optional[bool] = ..., price: _Optional[str] = ..., answers: _Optional[_Mapping[str, str]] = ..., disposition: _Optional[str] = ..., disposition_note: _Optional[str] = ..., crm_fields: _Optional[_Mapping[str, str]] = ..., offers: _Optional[int] = ..., rejected_reason: _Optional[str] = ..., billable_after_s: _Optional[int] = ...) -> None: ...

class CallerHistory(_message.Message):
    __slots__ = ("calls", "updated_at", "event_id")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[PastCall]
    updated_at: _timestamp_pb2.Timestamp
    event_id: str
    def __init__(self, calls: _Optional[_Iterable[_Union[PastCall, _Mapping]]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_id: _Optional[str] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("event_id", "occurred_at", "service", "source_topic", "source_partition", "source_offset", "key", "value", "reason", "value_omitted_bytes")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALUE_OMITTED_BYTES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at: _timestamp_pb2.Timestamp
    service: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes
    value: bytes
    reason: str
    value_omitted_bytes: int
    def __init__(self, event_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., service: _Optional[str] = ..., source_topic: _Optional[str] = ..., source_partition: _Optional[int] = ..., source_offset: _Optional[int] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., reason: _Optional[str] = ..., value_omitted_bytes: _Optional[int] = ...) -> None: ...

class DeadLetterReplay(_message.Message):
    __slots__ = ("event_id", "occurred_at", "letter_id", "to_topic", "to_partition", "to_offset")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    LETTER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_TOPIC_FIELD_NUMBER: _ClassVar[int]
    TO_PARTITION_FIELD_NUMBER: _ClassVar[int]
    TO_OFFSET_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at: _timestamp_pb2.Timestamp
    letter_id: str
    to_topic: str
    to_partition: int
    to_offset: int
    def __init__(self, event_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., letter_id: _Optional[str] = ..., to_topic: _Optional[str] = ..., to_partition: _Optional[int] = ..., to_offset: _Optional[int] = ...) -> None: ...

class CallerSeen(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "campaign_id", "caller_number")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    campaign_id: str
    caller_number: str
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., campaign_id: _Optional[str] = ..., caller_number: _Optional[str] = ...) -> None: ...

class LiveCall(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "version", "started_at", "dialed_number", "campaign_id", "publisher_id", "caller", "answers", "completed", "start_reject", "flow", "decision", "reported_attempt", "last_outcome", "last_connected_seconds", "ended", "decision_from", "virtual_hold", "hold_instance", "hold_queue_id", "hold_edge")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class DecisionFromEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DIALED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    START_REJECT_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REPORTED_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LAST_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    LAST_CONNECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    DECISION_FROM_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    HOLD_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    HOLD_QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_EDGE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    version: int
    started_at: _timestamp_pb2.Timestamp
    dialed_number: str
    campaign_id: str
    publisher_id: str
    caller: Caller
    answers: _containers.ScalarMap[str, str]
    completed: bool
    start_reject: str
    flow: LiveIvrFlow
    decision: LiveDecision
    reported_attempt: int
    last_outcome: CallOutcome
    last_connected_seconds: int
    ended: bool
    decision_from: _containers.ScalarMap[str, int]
    virtual_hold: bool
    hold_instance: str
    hold_queue_id: str
    hold_edge: str
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dialed_number: _Optional[str] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., answers: _Optional[_Mapping[str, str]] = ..., completed: _Optional[bool] = ..., start_reject: _Optional[str] = ..., flow: _Optional[_Union[LiveIvrFlow, _Mapping]] = ..., decision: _Optional[_Union[LiveDecision, _Mapping]] = ..., reported_attempt: _Optional[int] = ..., last_outcome: _Optional[_Union[CallOutcome, str]] = ..., last_connected_seconds: _Optional[int] = ..., ended: _Optional[bool] = ..., decision_from: _Optional[_Mapping[str, int]] = ..., virtual_hold: _Optional[bool] = ..., hold_instance: _Optional[str] = ..., hold_queue_id: _Optional[str] = ..., hold_edge: _Optional[str] = ...) -> None: ...

class LiveIvrFlow(_message.Message):
    __slots__ = ("flow_id", "node", "language", "attempt", "answers", "steps", "done", "qualified", "reason")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    QUALIFIED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    flow_id: str
    node: str
    language: str
    attempt: int
    answers: _containers.ScalarMap[str, str]
    steps: int
    done: bool
    qualified: bool
    reason: str
    def __init__(self, flow_id: _Optional[str] = ..., node: _Optional[str] = ..., language: _Optional[str] = ..., attempt: _Optional[int] = ..., answers: _Optional[_Mapping[str, str]] = ..., steps: _Optional[int] = ..., done: _Optional[bool] = ..., qualified: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class LiveDecision(_message.Message):
    __slots__ = ("rejected", "kind", "buyer_id", "agent_id", "destination", "price", "attempt", "billable_after_s", "reason", "announcement", "callback_attempt")
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    rejected: bool
    kind: TargetKind
    buyer_id: str
    agent_id: str
    destination: str
    price: str
    attempt: int
    billable_after_s: int
    reason: str
    announcement: str
    callback_attempt: int
    def __init__(self, rejected: _Optional[bool] = ..., kind: _Optional[_Union[TargetKind, str]] = ..., buyer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., destination: _Optional[str] = ..., price: _Optional[str] = ..., attempt: _Optional[int] = ..., billable_after_s: _Optional[int] = ..., reason: _Optional[str] = ..., announcement: _Optional[str] = ..., callback_attempt: _Optional[int] = ...) -> None: ...

class QueueState(_message.Message):
    __slots__ = ("event_id", "occurred_at", "instance", "seq", "clock", "offsets", "acd", "finished_call_ids", "done_segments", "outbox", "segment", "chunks", "chunk_of", "chunk_index", "chunk")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    ACD_FIELD_NUMBER: _ClassVar[int]
    FINISHED_CALL_IDS_FIELD_NUMBER: _ClassVar[int]
    DONE_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_OF_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at: _timestamp_pb2.Timestamp
    instance: str
    seq: int
    clock: float
    offsets: _containers.RepeatedCompositeFieldContainer[QueueInputOffset]
    acd: bytes
    finished_call_ids: _containers.RepeatedScalarFieldContainer[str]
    done_segments: _containers.RepeatedCompositeFieldContainer[QueueDoneSegment]
    outbox: _containers.RepeatedCompositeFieldContainer[QueueOutboxRecord]
    segment: int
    chunks: _containers.RepeatedCompositeFieldContainer[QueueChunkRef]
    chunk_of: int
    chunk_index: int
    chunk: bytes
    def __init__(self, event_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., instance: _Optional[str] = ..., seq: _Optional[int] = ..., clock: _Optional[float] = ..., offsets: _Optional[_Iterable[_Union[QueueInputOffset, _Mapping]]] = ..., acd: _Optional[bytes] = ..., finished_call_ids: _Optional[_Iterable[str]] = ..., done_segments: _Optional[_Iterable[_Union[QueueDoneSegment, _Mapping]]] = ..., outbox: _Optional[_Iterable[_Union[QueueOutboxRecord, _Mapping]]] = ..., segment: _Optional[int] = ..., chunks: _Optional[_Iterable[_Union[QueueChunkRef, _Mapping]]] = ..., chunk_of: _Optional[int] = ..., chunk_index: _Optional[int] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class QueueChunkRef(_message.Message):
    __slots__ = ("partition", "offset", "size")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    partition: int
    offset: int
    size: int
    def __init__(self, partition: _Optional[int] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class QueueInputOffset(_message.Message):
    __slots__ = ("topic", "partition", "offset")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    offset: int
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class QueueDoneSegment(_message.Message):
    __slots__ = ("number", "partition", "offset", "count")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    number: int
    partition: int
    offset: int
    count: int
    def __init__(self, number: _Optional[int] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class QueueOutboxRecord(_message.Message):
    __slots__ = ("topic", "key", "value")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    topic: str
    key: bytes
    value: bytes
    def __init__(self, topic: _Optional[str] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class QueueStatus(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "queue_id", "kind", "position", "projected_wait_s", "priority", "waited_s", "waiting", "callback_offered", "callback_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WAITED_S_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_OFFERED_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    queue_id: str
    kind: QueueStatusKind
    position: int
    projected_wait_s: int
    priority: int
    waited_s: int
    waiting: int
    callback_offered: bool
    callback_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_id: _Optional[str] = ..., kind: _Optional[_Union[QueueStatusKind, str]] = ..., position: _Optional[int] = ..., projected_wait_s: _Optional[int] = ..., priority: _Optional[int] = ..., waited_s: _Optional[int] = ..., waiting: _Optional[int] = ..., callback_offered: _Optional[bool] = ..., callback_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueueSummary(_message.Message):
    __slots__ = ("event_id", "occurred_at", "queue_id", "waiting", "callbacks_waiting", "agents_logged_in", "agents_ready", "slots", "busy_slots", "handle_time_s", "arrival_rate_per_s", "projected_wait_s", "longest_wait_s")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    CALLBACKS_WAITING_FIELD_NUMBER: _ClassVar[int]
    AGENTS_LOGGED_IN_FIELD_NUMBER: _ClassVar[int]
    AGENTS_READY_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    BUSY_SLOTS_FIELD_NUMBER: _ClassVar[int]
    HANDLE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    ARRIVAL_RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    LONGEST_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at: _timestamp_pb2.Timestamp
    queue_id: str
    waiting: int
    callbacks_waiting: int
    agents_logged_in: int
    agents_ready: int
    slots: int
    busy_slots: int
    handle_time_s: float
    arrival_rate_per_s: float
    projected_wait_s: int
    longest_wait_s: int
    def __init__(self, event_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_id: _Optional[str] = ..., waiting: _Optional[int] = ..., callbacks_waiting: _Optional[int] = ..., agents_logged_in: _Optional[int] = ..., agents_ready: _Optional[int] = ..., slots: _Optional[int] = ..., busy_slots: _Optional[int] = ..., handle_time_s: _Optional[float] = ..., arrival_rate_per_s: _Optional[float] = ..., projected_wait_s: _Optional[int] = ..., longest_wait_s: _Optional[int] = ...) -> None: ...

class CallbackRequested(_message.Message):
    __slots__ = ("event_id", "call_id", "occurred_at", "queue_id", "at_local")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    AT_LOCAL_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    call_id: str
    occurred_at: _timestamp_pb2.Timestamp
    queue_id: str
    at_local: str
    def __init__(self, event_id: _Optional[str] = ..., call_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_id: _Optional[str] = ..., at_local: _Optional[str] = ...) -> None: ...

class AgentEvent(_message.Message):
    __slots__ = ("event_id", "occurred_at", "agent_id", "state", "previous_state", "reason", "call_id", "disposition", "note", "queue_ids")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_IDS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at: _timestamp_pb2.Timestamp
    agent_id: str
    state: AgentState
    previous_state: AgentState
    reason: str
    call_id: str
    disposition: str
    note: str
    queue_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent_id: _Optional[str] = ..., state: _Optional[_Union[AgentState, str]] = ..., previous_state: _Optional[_Union[AgentState, str]] = ..., reason: _Optional[str] = ..., call_id: _Optional[str] = ..., disposition: _Optional[str] = ..., note: _Optional[str] = ..., queue_ids: _Optional[_Iterable[str]] = ...) -> None: ...
