import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PingRequest(_message.Message):
    __slots__ = ("buyer_id", "call_id", "auction_id", "campaign_id", "publisher_id", "state", "zip", "area_code", "answers", "deadline", "timeout_ms", "caller_number")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ZIP_FIELD_NUMBER: _ClassVar[int]
    AREA_CODE_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    CALLER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    buyer_id: str
    call_id: str
    auction_id: str
    campaign_id: str
    publisher_id: str
    state: str
    zip: str
    area_code: str
    answers: _containers.ScalarMap[str, str]
    deadline: _timestamp_pb2.Timestamp
    timeout_ms: int
    caller_number: str
    def __init__(self, buyer_id: _Optional[str] = ..., call_id: _Optional[str] = ..., auction_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., state: _Optional[str] = ..., zip: _Optional[str] = ..., area_code: _Optional[str] = ..., answers: _Optional[_Mapping[str, str]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., caller_number: _Optional[str] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("accept", "bid", "available", "reason")
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accept: bool
    bid: str
    available: bool
    reason: str
    def __init__(self, accept: _Optional[bool] = ..., bid: _Optional[str] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class PostRequest(_message.Message):
    __slots__ = ("buyer_id", "call_id", "auction_id", "campaign_id", "publisher_id", "price", "caller_number", "state", "zip", "area_code", "answers", "deadline", "timeout_ms", "attempt")
    class AnswersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CALLER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ZIP_FIELD_NUMBER: _ClassVar[int]
    AREA_CODE_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    buyer_id: str
    call_id: str
    auction_id: str
    campaign_id: str
    publisher_id: str
    price: str
    caller_number: str
    state: str
    zip: str
    area_code: str
    answers: _containers.ScalarMap[str, str]
    deadline: _timestamp_pb2.Timestamp
    timeout_ms: int
    attempt: int
    def __init__(self, buyer_id: _Optional[str] = ..., call_id: _Optional[str] = ..., auction_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., publisher_id: _Optional[str] = ..., price: _Optional[str] = ..., caller_number: _Optional[str] = ..., state: _Optional[str] = ..., zip: _Optional[str] = ..., area_code: _Optional[str] = ..., answers: _Optional[_Mapping[str, str]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class PostResponse(_message.Message):
    __slots__ = ("accept", "reason")
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accept: bool
    reason: str
    def __init__(self, accept: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...
