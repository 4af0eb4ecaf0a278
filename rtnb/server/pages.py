"""The hub's browser side: the live demo page, the browser client and ``/topics``.

* ``GET /`` — the demo page (``static/demo.html``): active topics with rates and
  subscriber counts, a pattern to subscribe to, a live plotly.js chart, a table
  of latest values, the connection status and transport.
* ``GET /rtnb.js`` — the dependency-free ES module ``RtnbClient`` (docs/browser.md),
  with ``/rtnb-react.js`` (React provider and hooks), ``/rtnb-rtc.js`` (WebRTC peers
  signalled over topics) and the TypeScript declarations of all three
  (``/rtnb.d.ts``, ``/rtnb-react.d.ts``, ``/rtnb-rtc.d.ts``), each with
  ``Access-Control-Allow-Origin: *`` so pages on other origins can import them.
* ``GET /rtc`` — two or more peers in a WebRTC room: text, files, a camera.
* ``GET /topics`` — JSON list of known topics: offset, epoch, rate, subscribers.
* ``GET /static/plotly.min.js`` — plotly.js from the ``plotly`` Python package's
  own bundle, so the page works offline; 404 with a JSON error when plotly is
  not installed (the page then shows the table only).
* ``GET /static/<file>`` — the page's script and style sheet.

Every URL in the page is relative, so the same files work under a prefix such
as Jupyter's ``{base_url}rtnb/``.
"""

from __future__ import annotations

import importlib.util
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import tornado.web

from ..core.errors import RtnbError
from ..core.origins import RequestGuard
from ..core.topics import Pattern
from ._http import HttpRouteHandler
from .auth import AccessControl
from .hub import Hub

__all__ = ["CLIENT_FILES", "STATIC_DIRECTORY", "TopicActivity", "page_handlers", "plotly_bundle_path"]

STATIC_DIRECTORY = Path(__file__).parent / "static"

#: Most topics ``/topics`` lists (the busiest first past this).
MAX_LISTED_TOPICS = 500


def plotly_bundle_path() -> Path | None:
    """The ``plotly.min.js`` shipped inside the ``plotly`` Python package, if installed.

    Found without importing plotly, so ``rtnb serve`` stays fast to start.
    """
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "package_data" / "plotly.min.js"
        if candidate.is_file():
            return candidate
    return None


class TopicActivity:
    """Message rates per topic, from offsets sampled when ``/topics`` is asked.

    Sampling offsets works on every backplane (offsets are gap-free, so their
    difference is the message count) and costs nothing on the publish path.

    Args:
        window: seconds of samples kept; the rate spans the oldest to the newest.
        clock: monotonic seconds.
    """

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._samples: dict[str, deque[tuple[float, int, int]]] = {}

    def rate(self, topic: str, epoch: int, offset: int) -> float | None:
        """Record ``offset`` of ``topic`` now; messages/s over the window, ``None`` until two samples."""
        now = self.clock()
        samples = self._samples.get(topic)
        if samples is None or (samples and samples[-1][1] != epoch):
            samples = self._samples[topic] = deque()
        # Keep the newest older sample even past the window, so that a reader
        # polling less often than the window still gets a rate.
        while len(samples) > 1 and now - samples[1][0] > self.window:
            samples.popleft()
        samples.append((now, epoch, offset))
        first_time, _first_epoch, first_offset = samples[0]
        if now - first_time < 0.2:
            return None
        return (offset - first_offset) / (now - first_time)

    def forget_except(self, topics: set[str]) -> None:
        for topic in [topic for topic in self._samples if topic not in topics]:
            del self._samples[topic]


class TopicsHandler(HttpRouteHandler):
    """``GET /topics[?pattern=P]`` -> ``{"topics": [{topic, epoch, offset, retained, rate, subscribers}]}``."""

    def initialize(
        self,
        hub: Hub,
        authenticator: AccessControl | None = None,
        guard: RequestGuard | None = None,
        *,
        activity: TopicActivity | None = None,
    ) -> None:
        # Tornado passes the route's keywords; the base class's come first so the signatures match.
        if activity is None:
            raise TypeError("The /topics route needs activity=, the hub's one TopicActivity.")
        super().initialize(hub, authenticator, guard)
        self.activity = activity

    def get(self) -> None:
        text = self.get_query_argument("pattern", "#")
        pattern = Pattern.parse(text)
        positions = self.hub.backplane.positions(pattern)
        activity = self.activity
        fanout = self.hub.fanout
        topics: list[dict[str, Any]] = []
        for topic, position in positions.items():
            topics.append(
                {
                    "topic": topic,
                    "epoch": position.epoch,
                    "offset": position.last_offset,
                    "retained": position.last_offset - position.first_offset + 1,
                    "rate": activity.rate(topic, position.epoch, position.last_offset),
                    "subscribers": fanout.subscribers_of(topic),
                }
            )
        if text == "#":
            activity.forget_except(set(positions))
        topics.sort(key=lambda row: (-(row["rate"] or 0.0), row["topic"]))
        body = {
            "topics": sorted(topics[:MAX_LISTED_TOPICS], key=lambda row: row["topic"]),
            "total": len(topics),
            "connections": self.hub.connection_count,
        }
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(orjson.dumps(body))


class StaticAssetHandler(HttpRouteHandler):
    """A file from ``static/`` (or plotly's bundle), read once and cached in memory."""

    _cache: dict[Path, bytes] = {}

    def initialize(
        self,
        hub: Hub,
        authenticator: AccessControl | None = None,
        guard: RequestGuard | None = None,
        *,
        path: Path | None = None,
        content_type: str = "",
        public: bool = False,
    ) -> None:
        # Tornado passes the route's keywords; the base class's come first so the signatures match.
        super().initialize(hub, authenticator, guard)
        self.path_to_serve = path
        self.content_type = content_type
        self.public = public

    def head(self, name: str | None = None) -> None:
        """The headers ``GET`` would send (Tornado leaves the body out of a HEAD answer)."""
        self.get(name)

    def get(self, name: str | None = None) -> None:
        path = self.path_to_serve
        content_type = self.content_type
        if path is None and name is not None:
            path, content_type = _static_file(name)
        if path is None:
            hint = " (plotly.js comes from the 'plotly' Python package: pip install plotly)" if name is None else ""
            raise _NotFound(f"Nothing is served at {self.request.path}{hint}.")
        data = self._cache.get(path)
        if data is None:
            data = self._cache[path] = path.read_bytes()
        self.set_header("Content-Type", content_type)
        if self.public:
            # rtnb.js is public code that pages on other origins import as an ES module,
            # which browsers fetch in CORS mode; without this header they refuse it.
            self.set_header("Access-Control-Allow-Origin", "*")
        # The page and client change with the package version; the browser revalidates them.
        self.set_header("Cache-Control", "no-cache")
        self.finish(data)


class _NotFound(RtnbError):
    code = "not_found"
    http_status = 404


class NotFoundHandler(HttpRouteHandler):
    """Any path no route matches: the ``Host`` check, then 404 with a JSON error."""

    async def prepare(self) -> None:
        await super().prepare()
        raise _NotFound(f"Nothing is served at {self.request.path}; see docs/transports.md.")


_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".ts": "application/typescript; charset=utf-8",  # the .d.ts declarations
}

#: The browser client's modules and their declarations, each served at ``/<name>``.
CLIENT_FILES = ("rtnb.js", "rtnb.d.ts", "rtnb-react.js", "rtnb-react.d.ts", "rtnb-rtc.js", "rtnb-rtc.d.ts")


def _static_file(name: str) -> tuple[Path | None, str]:
    if "/" in name or "\\" in name or name.startswith("."):
        return None, ""
    path = STATIC_DIRECTORY / name
    content_type = _CONTENT_TYPES.get(path.suffix)
    if content_type is None or not path.is_file():
        return None, ""
    return path, content_type


def page_handlers(
    hub: Hub, prefix: str, guard: RequestGuard | None = None
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The demo and /rtc pages, the browser modules, ``/topics`` and static routes under ``prefix``."""
    common = {"hub": hub, "guard": guard}
    routes: list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]] = [
        (
            f"{prefix}/",
            StaticAssetHandler,
            {**common, "path": STATIC_DIRECTORY / "demo.html", "content_type": _CONTENT_TYPES[".html"]},
        ),
        *[
            (
                f"{prefix}/{name}",
                StaticAssetHandler,
                {
                    **common,
                    "path": STATIC_DIRECTORY / name,
                    "content_type": _CONTENT_TYPES[Path(name).suffix],
                    "public": True,
                },
            )
            for name in CLIENT_FILES
        ],
        (
            f"{prefix}/rtc",
            StaticAssetHandler,
            {**common, "path": STATIC_DIRECTORY / "rtc.html", "content_type": _CONTENT_TYPES[".html"]},
        ),
        (f"{prefix}/topics", TopicsHandler, {**common, "activity": TopicActivity()}),
        (
            f"{prefix}/static/plotly.min.js",
            StaticAssetHandler,
            {**common, "path": plotly_bundle_path(), "content_type": _CONTENT_TYPES[".js"]},
        ),
        (f"{prefix}/static/([^/]+)", StaticAssetHandler, common),
    ]
    if prefix:
        routes.append((prefix, tornado.web.RedirectHandler, {"url": f"{prefix}/"}))
    return routes
