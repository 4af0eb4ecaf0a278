"""MQTT payloads (bytes) to hub data (JSON values) and back.

MQTT carries bytes; the hub carries JSON values. The mapping, in ``"auto"``
mode (the default):

==========================================  ====================================
MQTT payload                                hub ``data``
==========================================  ====================================
valid JSON (``21.5``, ``{"value": 3}``)     the decoded value
UTF-8 text that is not JSON (``on``)        the text as a JSON string (``"on"``)
anything else (not UTF-8)                   ``{"base64": "<standard base64>", "binary": true}``
==========================================  ====================================

An empty payload is the empty string ``""``. Other modes: ``"json"`` refuses
non-JSON payloads (:class:`~rtnb.core.errors.BadJson`), ``"text"`` never parses
JSON, ``"binary"`` always gives the base64 envelope (for protobuf or CBOR devices).

Going out, :func:`encode_payload` reverses it: a string is sent as its UTF-8
text (no quotes, so ``"on"`` reaches the device as ``on``), an object that is
exactly ``{"base64": ..., "binary": true}`` is sent as the decoded bytes, and
any other value is sent as compact JSON.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from ..core.errors import BadField, BadJson
from .options import PayloadMode

__all__ = ["binary_envelope", "decode_payload", "encode_payload", "is_binary_envelope"]


def binary_envelope(payload: bytes) -> dict[str, Any]:
    """The hub form of bytes that are not text: ``{"base64": ..., "binary": true}``."""
    return {"base64": base64.b64encode(payload).decode("ascii"), "binary": True}


def is_binary_envelope(data: Any) -> bool:
    """True for exactly ``{"base64": STRING, "binary": true}``."""
    return (
        isinstance(data, dict) and len(data) == 2 and data.get("binary") is True and isinstance(data.get("base64"), str)
    )


def decode_payload(payload: bytes, mode: PayloadMode = "auto") -> Any:
    """Turn an MQTT payload into hub data, following ``mode`` (see the module table).

    Raises:
        BadJson: ``mode`` is ``"json"`` and the payload is not JSON.
    """
    if mode == "binary":
        return binary_envelope(payload)
    if mode != "text" and payload:
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            if mode == "json":
                raise BadJson(f"MQTT payload of {len(payload)} bytes is not valid JSON.") from None
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        if mode == "json":
            raise BadJson(f"MQTT payload of {len(payload)} bytes is not valid UTF-8 JSON.") from None
        return binary_envelope(payload)


def encode_payload(data: Any) -> bytes:
    """Turn hub data into an MQTT payload (the reverse of :func:`decode_payload`).

    Raises:
        BadField: a binary envelope whose ``base64`` is not valid base64, or data
            JSON cannot carry.
    """
    if isinstance(data, str):
        return data.encode("utf-8")
    if is_binary_envelope(data):
        try:
            return base64.b64decode(data["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise BadField("Field 'base64' of a binary payload is not valid base64.") from None
    try:
        return orjson.dumps(data)
    except (TypeError, orjson.JSONEncodeError) as error:
        raise BadField(f"Payload cannot be encoded as JSON: {error}.") from None
