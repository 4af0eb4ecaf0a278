"""What keeps a WebSocket handler small in memory: released handshake headers, a primed attribute table."""

from __future__ import annotations

from typing import Any

import tornado.httputil

__all__: list[str] = []


class _ReleasedHeaders(tornado.httputil.HTTPHeaders):
    """Stands for a connection's handshake headers once the socket is open.

    Empty and read-only, so one instance serves every connection; changing it
    raises, as Tornado's ``set_header`` already does after the upgrade.
    """

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("The WebSocket handshake is over: its headers were released after open().")

    add = __setitem__ = __delitem__ = parse_line = _refuse


_RELEASED_HEADERS = _ReleasedHeaders()


#: Attributes Tornado (6.x) gives a WebSocket handler over its life, from
#: ``RequestHandler.__init__`` to ``_detach_stream`` after the upgrade.
_TORNADO_HANDLER_ATTRIBUTES = (
    "application",
    "request",
    "_headers_written",
    "_finished",
    "_auto_finish",
    "_prepared_future",
    "ui",
    "_headers",
    "_write_buffer",
    "_status_code",
    "_reason",
    "ws_connection",
    "close_code",
    "close_reason",
    "_on_close_called",
    "_transforms",
    "path_args",
    "path_kwargs",
    "open_args",
    "open_kwargs",
    "write",
    "redirect",
    "set_header",
    "set_cookie",
    "set_status",
    "flush",
    "finish",
)


def _prime_attribute_table(cls: type) -> None:
    """Register Tornado's handler attribute names in ``cls``'s shared key table, once, up front.

    CPython keeps an instance's attributes as a bare array of values against
    a key table shared by its class (a few hundred bytes) instead of a dict of
    its own (about 1.5 KiB for a handler), as long as every name fits in the
    shared table. That table stops taking new names once many instances exist;
    under a burst of connections (every dashboard reconnecting after a restart)
    hundreds of handlers exist before the first one sets the attributes Tornado
    adds late (``path_args``, ``open_args``, the methods replaced by
    ``_detach_stream``), so those names never get in and every handler pays for
    a dict. Setting each name once on a throw-away instance puts them all in
    first. Names that are data descriptors on ``cls`` are left alone.
    """
    probe: Any = object.__new__(cls)
    for name in _TORNADO_HANDLER_ATTRIBUTES:
        if not hasattr(type(getattr(cls, name, None)), "__set__"):
            setattr(probe, name, None)
