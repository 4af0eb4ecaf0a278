"""The views' browser code: one library per page, shared by every view.

Each view widget's own ESM (``static/loader.js``, about 2 KB) only finds the
library and calls it. The library is the browser client ``rtnb.js`` (the same
file the hub serves, so direct mode speaks the hub's protocol exactly), the
views' CSS and the parts of ``static/views/`` (in name order), joined into one
ES module here. It travels
once per kernel, as the state of one :class:`ViewLibrary` widget that every
view references; the loader evaluates it once per page and keeps the module on
``globalThis`` under its version (a content hash), so ten views, or a second
kernel with the same rtnb, evaluate it once. Nothing is fetched from the hub:
in relay mode the browser cannot reach it. Nothing is built here: plain ESM files, and
rtnb.js is the committed bundle of ``server/static/src/rtnb/`` (docs/browser.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["LOADER_ESM", "ViewLibrary", "library_source", "library_version", "shared_library"]

STATIC = Path(__file__).with_name("static")
#: the browser client the hub serves, bundled into the library as is
RTNB_JS = Path(__file__).resolve().parent.parent / "server" / "static" / "rtnb.js"

LOADER_ESM = (STATIC / "loader.js").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def library_source() -> str:
    """The library module: rtnb.js, then the CSS as a string, then the views' parts in order."""
    css = (STATIC / "views.css").read_text(encoding="utf-8")
    parts = [path.read_text(encoding="utf-8") for path in sorted((STATIC / "views").glob("*.js"))]
    return "\n".join([RTNB_JS.read_text(encoding="utf-8"), f"const RTNB_VIEWS_CSS = {json.dumps(css)};", *parts])


@functools.lru_cache(maxsize=1)
def library_version() -> str:
    """A content hash of :func:`library_source`; the key the loader caches the module under."""
    return hashlib.sha256(library_source().encode()).hexdigest()[:16]


class ViewLibrary(anywidget.AnyWidget):
    """Carries the library's source to the page once; never displayed."""

    _esm = "export default {};"
    source = traitlets.Unicode("").tag(sync=True)
    version = traitlets.Unicode("").tag(sync=True)


_library: ViewLibrary | None = None
_library_lock = threading.Lock()


def shared_library() -> ViewLibrary:
    """The process's :class:`ViewLibrary` (created on first use, again if it was closed)."""
    global _library
    with _library_lock:
        if _library is None or getattr(_library, "comm", None) is None:
            _library = ViewLibrary(source=library_source(), version=library_version())
        return _library


def library_reply() -> dict[str, Any]:
    """The answer to a loader's ``{"op": "library"}`` request (hosts without a widget manager)."""
    return {"op": "library", "version": library_version(), "source": library_source()}
