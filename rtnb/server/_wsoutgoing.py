"""The WebSocket frames the hub writes: built once per batch, shared by every connection of a group.

Compression is off by default, so pre-framed bytes are valid on every connection.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence

import orjson
import tornado.iostream

from ..core.fanout import Batch
from ..core.history import Gap, GapList
from ..core.message import Format, Message, encode_msgpack
from ._tornado import stream_bytes_sent, stream_bytes_written

__all__ = ["buffered_bytes", "frame_bytes", "split_frames"]

_TEXT = 0x1
_BINARY = 0x2
_SEPARATOR = {"json": b"\n", "msgpack": b""}


def frame_bytes(payload: bytes, opcode: int) -> bytes:
    """One unmasked, final WebSocket frame (server to client) around ``payload``."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def split_frames(parts: Sequence[bytes], fmt: Format, max_frame: int) -> list[bytes]:
    """Pack encoded objects into as few frames as fit in ``max_frame`` bytes each.

    JSON objects are ``\\n``-separated in a text frame; MessagePack objects are
    concatenated in a binary frame. An object larger than ``max_frame`` gets a
    frame of its own.
    """
    opcode = _TEXT if fmt == "json" else _BINARY
    if len(parts) == 1:
        return [frame_bytes(parts[0], opcode)]
    separator = _SEPARATOR[fmt]
    frames: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for part in parts:
        if chunk and size + len(part) + 1 > max_frame:
            frames.append(frame_bytes(separator.join(chunk), opcode))
            chunk, size = [], 0
        chunk.append(part)
        size += len(part) + 1
    frames.append(frame_bytes(separator.join(chunk), opcode))
    return frames


def _encode_item(item: Message | Gap | GapList, fmt: Format) -> bytes:
    if isinstance(item, Message):
        return item.encoded(fmt)
    return orjson.dumps(item.to_wire()) if fmt == "json" else encode_msgpack(item.to_wire())


@functools.lru_cache(maxsize=64)
def _batch_builder(fmt: Format, max_frame: int) -> Callable[[Batch], list[bytes]]:
    """The function turning a batch into frames; one per (format, size), shared by connections."""
    if fmt == "json":

        def build(batch: Batch) -> list[bytes]:
            return split_frames([message.json for message in batch.messages], "json", max_frame)

    else:

        def build(batch: Batch) -> list[bytes]:
            return split_frames([message.msgpack for message in batch.messages], "msgpack", max_frame)

    return build


def buffered_bytes(stream: tornado.iostream.BaseIOStream) -> int:
    """Bytes handed to ``stream`` that the socket has not taken yet.

    Tornado keeps this as two private counters; reading them costs nothing,
    where asking through futures would cost an allocation per write.
    """
    return stream_bytes_written(stream) - stream_bytes_sent(stream)
