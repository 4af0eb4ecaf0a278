"""The message envelope and the wire codecs.

A :class:`Message` is what the hub stores in history and fans out. It keeps its
encodings once made, so a message going to a thousand subscribers is serialised
once per wire format, not once per subscriber. JSON goes through orjson and
MessagePack through msgpack; both produce the same envelope::

    {"op": "message", "topic": T, "offset": N, "epoch": E, "ts": SECONDS, "data": ANY}
"""

from __future__ import annotations

import math
from typing import Any, Literal

import msgpack
import orjson

from .errors import BadField, BadJson, TooDeep

__all__ = [
    "DEFAULT_MAX_NESTING",
    "Format",
    "Message",
    "check_nesting",
    "check_payload",
    "decode_frame",
    "decode_json",
    "encode_json",
    "encode_msgpack",
]

Format = Literal["json", "msgpack"]

#: Deepest nesting of lists and objects accepted in a payload.
DEFAULT_MAX_NESTING = 32


def encode_json(obj: Any) -> bytes:
    """Serialise ``obj`` as compact JSON bytes.

    Raises:
        BadField: ``obj`` holds something JSON cannot carry (bytes, NaN keys...).
    """
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError) as error:
        raise BadField(f"Payload cannot be encoded as JSON: {error}.") from None


def encode_msgpack(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)  # msgpack has no type hints
    return packed


_NOT_FINITE = (
    "Numbers must be finite: NaN and Infinity have no JSON form,"
    " so JSON and MessagePack subscribers would get different values"
)


def decode_json(data: str | bytes, where: str = "Frame") -> Any:
    """Parse JSON text; ``where`` names it in the error ("Frame", "Line 3"...).

    Raises:
        BadField: a number too large for a double (it would be Infinity).
        BadJson: not valid JSON.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if "infinity" in str(error):  # e.g. 1e999: valid JSON grammar, not a finite double
            raise BadField(f"{_NOT_FINITE} ({where}: {error}).") from None
        raise BadJson(f"{where} is not valid JSON: {error}.") from None


def decode_frame(frame: str | bytes, binary_format: Format = "msgpack") -> Any:
    """Decode one client frame: text is JSON, binary is ``binary_format``.

    Raises:
        BadJson: the frame is not valid JSON / MessagePack.
        BadField: a JSON number that is not a finite double.
    """
    if isinstance(frame, str) or binary_format == "json":
        return decode_json(frame)
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException, TypeError) as error:
        # msgpack's FormatError has no text: say what it means
        reason = str(error) or "a byte that starts no MessagePack type (such as 0xc1)"
        raise BadJson(f"Frame is not valid MessagePack: {reason}.") from None


def check_payload(obj: Any, max_depth: int = DEFAULT_MAX_NESTING) -> None:
    """Refuse payloads nested deeper than ``max_depth`` lists/objects, or holding NaN or ±Infinity.

    Deep nesting costs the hub and every subscriber's decoder stack; bounding
    it stops a tiny frame from becoming an expensive one. NaN and Infinity
    (MessagePack and Python can carry them, JSON cannot) would reach JSON
    subscribers as ``null`` and MessagePack ones as NaN: every subscriber
    must see the same value, so they are refused on every codec.

    Raises:
        TooDeep: the payload is nested too deeply.
        BadField: the payload holds a float that is not finite.
    """
    if not isinstance(obj, (dict, list)):
        if isinstance(obj, float) and not math.isfinite(obj):
            raise BadField(f"{_NOT_FINITE}; got {obj!r}.")
        return
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise TooDeep(f"Payload is nested more than {max_depth} levels deep.")
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            elif isinstance(child, float) and not math.isfinite(child):
                raise BadField(f"{_NOT_FINITE}; got {child!r}.")


#: The former name of :func:`check_payload` (which also refuses NaN and ±Infinity now).
check_nesting = check_payload


class Message:
    """One published message with its place in its topic's history.

    Attributes:
        topic: the concrete topic.
        offset: position in the topic, gap-free, starting at 1.
        epoch: the topic history's identity; changes when history is reset.
        ts: hub timestamp, UNIX seconds.
        data: the payload, any JSON value.
    """

    __slots__ = ("_data_json", "_json", "_msgpack", "data", "epoch", "offset", "topic", "ts")

    def __init__(
        self,
        topic: str,
        offset: int,
        epoch: int,
        ts: float,
        data: Any,
        *,
        json: bytes | None = None,
        data_json: bytes | None = None,
    ) -> None:
        self.topic = topic
        self.offset = offset
        self.epoch = epoch
        self.ts = ts
        self.data = data
        self._json = json
        self._data_json = data_json
        self._msgpack: bytes | None = None

    def envelope(self) -> dict[str, Any]:
        return {
            "op": "message",
            "topic": self.topic,
            "offset": self.offset,
            "epoch": self.epoch,
            "ts": self.ts,
            "data": self.data,
        }

    @property
    def json(self) -> bytes:
        """The envelope as JSON bytes, encoded on first use and then reused."""
        encoded = self._json
        if encoded is None:
            data_json = self._data_json
            if data_json is None:
                encoded = encode_json(self.envelope())
            else:
                # The payload was encoded (and so validated) when it was published:
                # splice it into the envelope instead of encoding it again.
                encoded = b"".join(
                    (
                        b'{"op":"message","topic":',
                        orjson.dumps(self.topic),
                        b',"offset":%d,"epoch":%d,"ts":' % (self.offset, self.epoch),
                        orjson.dumps(self.ts),
                        b',"data":',
                        data_json,
                        b"}",
                    )
                )
                self._data_json = None
            self._json = encoded
        return encoded

    @property
    def msgpack(self) -> bytes:
        """The envelope as MessagePack bytes, encoded on first use and then reused."""
        encoded = self._msgpack
        if encoded is None:
            encoded = self._msgpack = encode_msgpack(self.envelope())
        return encoded

    def encoded(self, fmt: Format) -> bytes:
        return self.json if fmt == "json" else self.msgpack

    @property
    def size(self) -> int:
        """Bytes this message accounts for in history limits (its JSON form)."""
        return len(self.json)

    @classmethod
    def from_envelope(cls, envelope: dict[str, Any], *, json: bytes | None = None) -> Message:
        """Rebuild a message from its envelope (as received from a hub).

        Raises:
            BadField: a required envelope field is missing or mistyped.
        """
        try:
            return cls(
                envelope["topic"],
                int(envelope["offset"]),
                int(envelope["epoch"]),
                float(envelope["ts"]),
                envelope.get("data"),
                json=json,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BadField(f"Not a message envelope: {error!r}.") from None

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, offset={self.offset}, epoch={self.epoch}, data={self.data!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.topic, self.offset, self.epoch, self.ts, self.data) == (
            other.topic,
            other.offset,
            other.epoch,
            other.ts,
            other.data,
        )

    # No __hash__: defining __eq__ alone leaves it None (data may be a list or a dict).
