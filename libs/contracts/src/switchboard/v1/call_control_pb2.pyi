from switchboard.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoutingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTING_STATUS_UNSPECIFIED: _ClassVar[RoutingStatus]
    ROUTING_STATUS_PENDING: _ClassVar[RoutingStatus]
    ROUTING_STATUS_ROUTED: _ClassVar[RoutingStatus]
    ROUTING_STATUS_REJECTED: _ClassVar[RoutingStatus]
    ROUTING_STATUS_WAITING: _ClassVar[RoutingStatus]

class InputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_KIND_UNSPECIFIED: _ClassVar[InputKind]
    INPUT_KIND_DIGITS: _ClassVar[InputKind]
    INPUT_KIND_SPEECH: _ClassVar[InputKind]
    INPUT_KIND_DIGITS_OR_SPEECH: _ClassVar[InputKind]
ROUTING_STATUS_UNSPECIFIED: RoutingStatus
ROUTING_STATUS_PENDING: RoutingStatus
ROUTING_STATUS_ROUTED: RoutingStatus
ROUTING_STATUS_REJECTED: RoutingStatus
ROUTING_STATUS_WAITING: RoutingStatus
INPUT_KIND_UNSPECIFIED: InputKind
INPUT_KIND_DIGITS: InputKind
INPUT_KIND_SPEECH: InputKind
INPUT_KIND_DIGITS_OR_SPEECH: InputKind

class StartCallRequest(_message.Message):
    __slots__ = ("caller_number", "dialed_number", "call_id")
    CALLER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DIALED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    caller_number: str
    dialed_number: str
    call_id: str
    def __init__(self, caller_number: _Optional[str] = ..., dialed_number: _Optional[str] = ..., call_id: _Optional[str] = ...) -> None: ...

class StartCallResponse(_message.Message):
    __slots__ = ("call_id", "campaign_id", "accepted", "reject_reason", "ivr_flow", "prompt", "announcement")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    IVR_FLOW_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    campaign_id: str
    accepted: bool
    reject_reason: str
    ivr_flow: str
    prompt: IvrPrompt
    announcement: str
    def __init__(self, call_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., reject_reason: _Optional[str] = ..., ivr_flow: _Optional[str] = ..., prompt: _Optional[_Union[IvrPrompt, _Mapping]] = ..., announcement: _Optional[str] = ...) -> None: ...

class SubmitAnswersRequest(_message.Message):
    __slots__ = ("call_id", "answers", "complete")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    answers: _containers.ScalarMap[str, str]
    complete: bool
    def __init__(self, call_id: _Optional[str] = ..., answers: _Optional[_Mapping[str, str]] = ..., complete: _Optional[bool] = ...) -> None: ...

class SubmitAnswersResponse(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class AwaitRoutingRequest(_message.Message):
    __slots__ = ("call_id", "timeout_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    timeout_ms: int
    def __init__(self, call_id: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class RoutingResult(_message.Message):
    __slots__ = ("call_id", "status", "kind", "buyer_id", "agent_id", "destination", "price", "reason", "announcement", "attempt", "billable_after_s", "queue_position", "projected_wait_s", "callback_offered", "callback_attempt")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_OFFERED_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    status: RoutingStatus
    kind: _events_pb2.TargetKind
    buyer_id: str
    agent_id: str
    destination: str
    price: str
    reason: str
    announcement: str
    attempt: int
    billable_after_s: int
    queue_position: int
    projected_wait_s: int
    callback_offered: bool
    callback_attempt: int
    def __init__(self, call_id: _Optional[str] = ..., status: _Optional[_Union[RoutingStatus, str]] = ..., kind: _Optional[_Union[_events_pb2.TargetKind, str]] = ..., buyer_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., destination: _Optional[str] = ..., price: _Optional[str] = ..., reason: _Optional[str] = ..., announcement: _Optional[str] = ..., attempt: _Optional[int] = ..., billable_after_s: _Optional[int] = ..., queue_position: _Optional[int] = ..., projected_wait_s: _Optional[int] = ..., callback_offered: _Optional[bool] = ..., callback_attempt: _Optional[int] = ...) -> None: ...

class ReportOutcomeRequest(_message.Message):
    __slots__ = ("call_id", "outcome", "connected_seconds")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    outcome: _events_pb2.CallOutcome
    connected_seconds: int
    def __init__(self, call_id: _Optional[str] = ..., outcome: _Optional[_Union[_events_pb2.CallOutcome, str]] = ..., connected_seconds: _Optional[int] = ...) -> None: ...

class ReportOutcomeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NextPromptRequest(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class SubmitInputRequest(_message.Message):
    __slots__ = ("call_id", "node", "kind", "input")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    node: str
    kind: InputKind
    input: str
    def __init__(self, call_id: _Optional[str] = ..., node: _Optional[str] = ..., kind: _Optional[_Union[InputKind, str]] = ..., input: _Optional[str] = ...) -> None: ...

class IvrPrompt(_message.Message):
    __slots__ = ("call_id", "node", "text", "language", "expects", "num_digits", "attempt", "answer_key", "choices", "finished", "qualified", "reason")
    class ChoicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    EXPECTS_FIELD_NUMBER: _ClassVar[int]
    NUM_DIGITS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_KEY_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    QUALIFIED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    node: str
    text: str
    language: str
    expects: InputKind
    num_digits: int
    attempt: int
    answer_key: str
    choices: _containers.ScalarMap[str, str]
    finished: bool
    qualified: bool
    reason: str
    def __init__(self, call_id: _Optional[str] = ..., node: _Optional[str] = ..., text: _Optional[str] = ..., language: _Optional[str] = ..., expects: _Optional[_Union[InputKind, str]] = ..., num_digits: _Optional[int] = ..., attempt: _Optional[int] = ..., answer_key: _Optional[str] = ..., choices: _Optional[_Mapping[str, str]] = ..., finished: _Optional[bool] = ..., qualified: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class RequestCallbackRequest(_message.Message):
    __slots__ = ("call_id", "at_local")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AT_LOCAL_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    at_local: str
    def __init__(self, call_id: _Optional[str] = ..., at_local: _Optional[str] = ...) -> None: ...

class RequestCallbackResponse(_message.Message):
    __slots__ = ("call_id", "announcement", "at_local")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    AT_LOCAL_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    announcement: str
    at_local: str
    def __init__(self, call_id: _Optional[str] = ..., announcement: _Optional[str] = ..., at_local: _Optional[str] = ...) -> None: ...

class WatchCallbacksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CallbackPlacement(_message.Message):
    __slots__ = ("call_id", "caller_number", "dialed_number", "destination", "agent_id", "attempt", "callback_attempt", "language", "announcement")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DIALED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    caller_number: str
    dialed_number: str
    destination: str
    agent_id: str
    attempt: int
    callback_attempt: int
    language: str
    announcement: str
    def __init__(self, call_id: _Optional[str] = ..., caller_number: _Optional[str] = ..., dialed_number: _Optional[str] = ..., destination: _Optional[str] = ..., agent_id: _Optional[str] = ..., attempt: _Optional[int] = ..., callback_attempt: _Optional[int] = ..., language: _Optional[str] = ..., announcement: _Optional[str] = ...) -> None: ...
