"""The pure core of rtnb: no sockets, no event loop, no clocks read.

Topics and patterns, the message envelope and codecs, per-topic history with
offsets and epochs, fan-out decisions, limits and the error tree. Adapters feed
it calls and write out what it returns.
"""

from __future__ import annotations

from .errors import RtnbError
from .fanout import Batch, Fanout, Member, MemberState
from .history import Gap, HistoryLimits, HistoryStore, TopicHistory
from .limits import Limits, TokenBucket
from .message import Message
from .position import Position
from .protocol import parse_request
from .topics import Pattern, validate_pattern, validate_topic

__all__ = [
    "Batch",
    "Fanout",
    "Gap",
    "HistoryLimits",
    "HistoryStore",
    "Limits",
    "Member",
    "MemberState",
    "Message",
    "Pattern",
    "Position",
    "RtnbError",
    "TokenBucket",
    "TopicHistory",
    "parse_request",
    "validate_pattern",
    "validate_topic",
]
