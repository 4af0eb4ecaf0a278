"""Client-side wire helpers, without I/O: hub URLs, frame splitting, item decoding.

A hub frame may carry several objects: ``\\n``-separated JSON in a text frame,
or back-to-back MessagePack objects in a binary frame (subprotocol
``rtnb.msgpack``). :func:`frame_items` turns either into a list of objects.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgpack
import orjson

from ..core.errors import BadArgument, BadField, BadJson
from ..core.history import Gap
from ..core.message import Format

__all__ = ["decode_gap", "decode_gaps", "encode_request", "frame_items", "to_http_url", "to_ws_url"]

_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def to_ws_url(url: str) -> str:
    """The WebSocket endpoint of a hub given its base URL or its ``/ws`` URL.

    ``http://h:p`` -> ``ws://h:p/ws``; ``https://h/rtnb`` -> ``wss://h/rtnb/ws``;
    ``ws://h:p/ws`` is kept. The query string, if any, is kept.

    Raises:
        BadArgument (a ValueError): the URL has no host or an unknown scheme.
    """
    parts = urlsplit(url)
    scheme = _WS_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise BadArgument(f"Hub URL {url!r} must look like http://HOST:PORT or ws://HOST:PORT/ws.")
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def to_http_url(url: str) -> str:
    """The base HTTP URL of a hub given its base URL or its ``/ws`` URL."""
    parts = urlsplit(url)
    scheme = _HTTP_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise BadArgument(f"Hub URL {url!r} must look like http://HOST:PORT.")
    path = parts.path.rstrip("/")
    if path.endswith("/ws"):
        path = path[: -len("/ws")]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def frame_items(frame: str | bytes) -> list[Any]:
    """Every object in one hub frame.

    Raises:
        BadJson: the frame holds something that is not JSON / MessagePack.
    """
    if isinstance(frame, str):
        try:
            if "\n" not in frame:
                return [orjson.loads(frame)]
            return [orjson.loads(line) for line in frame.split("\n") if line]
        except orjson.JSONDecodeError as error:
            raise BadJson(f"The hub sent a frame that is not JSON: {error}.") from None
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(frame)
    try:
        return list(unpacker)
    except (ValueError, msgpack.UnpackException) as error:
        raise BadJson(f"The hub sent a frame that is not MessagePack: {error}.") from None


def encode_request(frame: dict[str, Any], fmt: Format) -> str | bytes:
    """A client request as a text (JSON) or binary (MessagePack) frame."""
    if fmt == "msgpack":
        packed: bytes = msgpack.packb(frame, use_bin_type=True)
        return packed
    return orjson.dumps(frame).decode()


def decode_gap(item: dict[str, Any]) -> Gap:
    """A ``gap`` object from the hub as a :class:`Gap`.

    Raises:
        BadField: a required field is missing or mistyped.
    """
    try:
        to_offset = item.get("to")
        epoch = item.get("epoch")
        return Gap(
            str(item["topic"]),
            int(item["from"]),
            None if to_offset is None else int(to_offset),
            item.get("reason", "trimmed"),
            None if epoch is None else int(epoch),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BadField(f"Not a gap notice: {error!r}.") from None


def decode_gaps(item: dict[str, Any]) -> list[Gap]:
    """A ``gap`` object from the hub as gaps: one, or several for the coalesced form
    ``{"op": "gap", "gaps": [[TOPIC, FROM, TO, REASON, EPOCH], ...]}``.

    Raises:
        BadField: a required field is missing or mistyped.
    """
    entries = item.get("gaps")
    if entries is None:
        return [decode_gap(item)]
    if not isinstance(entries, list):
        raise BadField("A gap list's 'gaps' must be a list.")
    gaps = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 5:
            raise BadField(f"Not a gap list entry: {entry!r:.80}.")
        topic, start, end, reason, epoch = entry
        gaps.append(decode_gap({"topic": topic, "from": start, "to": end, "reason": reason, "epoch": epoch}))
    return gaps
