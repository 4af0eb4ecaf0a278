"""Reading values out of message payloads, and parsing window lengths."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..core.errors import BadArgument, BadArgumentType

__all__ = ["MISSING", "Field", "extract", "number", "parse_window"]

#: how a view names a value: a key, a dotted path ("a.b"), a callable, or None (the payload itself)
Field = str | Callable[[Any], Any] | None


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def extract(data: Any, field: Field) -> Any:
    """``data``'s value at ``field``, or :data:`MISSING` when it has none."""
    if field is None:
        return data
    if callable(field):
        try:
            return field(data)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            return MISSING
    value = data
    for key in field.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return MISSING
    return value


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (strings, booleans as 0/1 excepted)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        result = float(value)
        return result if math.isfinite(result) else None
    return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_window(window: int | str | float | timedelta) -> tuple[int | None, float | None]:
    """``(count, seconds)``: a window of the last N points, or of the last S seconds.

    ``500`` is 500 points; ``"60s"``, ``"5m"``, ``"1h"``, ``"250ms"``,
    ``timedelta(minutes=1)`` and floats (seconds) are time windows.

    Raises:
        BadArgumentType (a TypeError): neither a count nor a duration.
        BadArgument (a ValueError): a malformed or non-positive window.
    """
    if isinstance(window, bool):
        raise BadArgumentType(f"window must be a count or a duration, not {window!r}.")
    if isinstance(window, int):
        if window < 1:
            raise BadArgument(f"window must be at least 1 point, not {window}.")
        return window, None
    if isinstance(window, timedelta):
        seconds = window.total_seconds()
    elif isinstance(window, float):
        seconds = window
    elif isinstance(window, str):
        match = _DURATION.match(window)
        if match is None:
            raise BadArgument(f"window {window!r} is not a duration like '60s', '5m' or '250ms'.")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise BadArgumentType(f"window must be a count or a duration, not {type(window).__name__}.")
    if not seconds > 0:
        raise BadArgument(f"window must be longer than 0 seconds, not {window!r}.")
    return None, seconds
