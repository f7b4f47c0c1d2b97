import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class AgentLoginRequest(_message.Message):
    __slots__ = ("agent_id", "ready")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    ready: bool
    def __init__(self, agent_id: _Optional[str] = ..., ready: _Optional[bool] = ...) -> None: ...

class SetReadyRequest(_message.Message):
    __slots__ = ("agent_id", "ready", "reason")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    ready: bool
    reason: str
    def __init__(self, agent_id: _Optional[str] = ..., ready: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class EndWrapUpRequest(_message.Message):
    __slots__ = ("agent_id", "call_id", "disposition", "note")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    call_id: str
    disposition: str
    note: str
    def __init__(self, agent_id: _Optional[str] = ..., call_id: _Optional[str] = ..., disposition: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("agent_id", "state", "reason", "call_id", "since", "queue_ids", "active_calls", "wrap_up_until", "performance")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_IDS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CALLS_FIELD_NUMBER: _ClassVar[int]
    WRAP_UP_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    state: _events_pb2.AgentState
    reason: str
    call_id: str
    since: _timestamp_pb2.Timestamp
    queue_ids: _containers.RepeatedScalarFieldContainer[str]
    active_calls: int
    wrap_up_until: _timestamp_pb2.Timestamp
    performance: float
    def __init__(self, agent_id: _Optional[str] = ..., state: _Optional[_Union[_events_pb2.AgentState, str]] = ..., reason: _Optional[str] = ..., call_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_ids: _Optional[_Iterable[str]] = ..., active_calls: _Optional[int] = ..., wrap_up_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., performance: _Optional[float] = ...) -> None: ...

class AgentPush(_message.Message):
    __slots__ = ("status", "offer")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    status: AgentStatus
    offer: AgentOffer
    def __init__(self, status: _Optional[_Union[AgentStatus, _Mapping]] = ..., offer: _Optional[_Union[AgentOffer, _Mapping]] = ...) -> None: ...

class AgentOffer(_message.Message):
    __slots__ = ("call_id", "queue_id", "campaign_id", "publisher_id", "answers", "caller_number", "waited_s", "attempt", "callback_attempt", "priority")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    CALLER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    WAITED_S_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    queue_id: str
    campaign_id: str
    publisher_id: str
    answers: _containers.ScalarMap[str, str]
    caller_number: str
    waited_s: int
    attempt: int
    callback_attempt: int
    priority: int
    def __init__(self, call_id: _Optional[str] = ..., queue_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., answers: _Optional[_Mapping[str, str]] = ..., caller_number: _Optional[str] = ..., waited_s: _Optional[int] = ..., attempt: _Optional[int] = ..., callback_attempt: _Optional[int] = ..., priority: _Optional[int] = ...) -> None: ...
