"""Views drawn by their real JavaScript in headless Chromium, their kernel side in this process.

A page on its own origin (a small Tornado server, so the embedded hub sees a
cross-site browser, as under Jupyter) evaluates the views library that the
widget ships. Each view gets a model object with the anywidget model's
interface (``get``, ``on``/``off``, ``send``): what the browser sends goes to
the view's own message handler here, what the view sends (relay) goes to the
page with its binary buffers. Only the Jupyter comm is left out; the end-to-end
tests in tests/e2e drive a real JupyterLab.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from chromium_support import CHROMIUM_ARGUMENTS as CHROMIUM_ARGUMENTS

from rtnb.notebook._assets import library_source

CHROMIUM = Path("/usr/bin/chromium")


def playwright_or_skip() -> Any:
    """The Playwright async API, or a skip (a failure under RTNB_CI) without it or Chromium."""
    if os.environ.get("RTNB_CI"):
        import playwright.async_api as api

        assert CHROMIUM.exists(), f"RTNB_CI: no Chromium at {CHROMIUM}"
        return api
    api = pytest.importorskip("playwright.async_api", reason="Playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} to draw the views in", allow_module_level=True)
    return api


PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body { margin: 0; font-family: sans-serif; } .cell { width: var(--cell-width, 600px); }
</style></head><body></body></html>"""

SETUP = """async (source) => {
  const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
  window.rtnbLibrary = await import(url);
  window.rtnbModels = new Map();
  window.rtnbDeliver = (id, content, buffers) => {
    const views = buffers.map((text) => {
      const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
      return new DataView(bytes.buffer);
    });
    for (const handler of window.rtnbModels.get(id).handlers) handler(content, views);
  };
}"""

SHOW = """([id, state, width, modelId, draw]) => {
  const handlers = new Set();
  const changes = new Set();
  const model = {
    get: (name) => state[name],
    set: (name, value) => {
      state[name] = value;
      for (const handler of changes) handler();
    },
    save_changes: () => window.rtnbSave(id, state.value),
    on: (name, handler) => (name === "msg:custom" ? handlers : changes).add(handler),
    off: (name, handler) => handlers.delete(handler) || changes.delete(handler),
    send: (content) => window.rtnbSend(id, content),
    handlers,
    // like a host's widget manager: a Dashboard finds its children's models by model id
    widget_manager: {
      get_model: async (wanted) => {
        const found = window.rtnbModels.get("model:" + wanted);
        if (!found) throw new Error("no model " + wanted);
        return found;
      },
    },
  };
  window.rtnbModels.set(id, model);
  window.rtnbModels.set("model:" + modelId, model);
  if (!draw) return;
  const cell = document.createElement("div");
  cell.className = "cell";
  cell.id = "cell-" + id;
  cell.style.width = width + "px";
  document.body.appendChild(cell);
  model.cleanup = window.rtnbLibrary.render(model, cell);
}"""


class PageServer:
    """Serves :data:`PAGE` on 127.0.0.1, another origin than the hub's."""

    def __init__(self) -> None:
        page = PAGE

        class Handler(tornado.web.RequestHandler):
            def get(self) -> None:
                self.write(page)

        self.app = tornado.web.Application([(r"/", Handler)])
        self.server: Any = None
        self.url = ""

    def start(self) -> None:
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets

        sockets = bind_sockets(0, "127.0.0.1")
        self.server = HTTPServer(self.app)
        self.server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class ViewPage:
    """One browser page showing views; see the module docstring."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.views: dict[str, Any] = {}
        self.sent: list[dict[str, Any]] = []  # what the page sent to the kernel side
        self._deliveries: list[asyncio.Future[Any]] = []

    async def open(self, url: str) -> ViewPage:
        await self.page.goto(url)
        await self.page.expose_function("rtnbSend", self._from_page)
        await self.page.expose_function("rtnbSave", self._saved_by_page)
        await self.page.evaluate(SETUP, library_source())
        return self

    def _from_page(self, view_id: str, content: Any) -> None:
        self.sent.append(content)
        view = self.views[view_id]
        view._on_browser_message(view.widget, content, [])

    def _saved_by_page(self, view_id: str, value: Any) -> None:
        """The page changed a control's synced ``value``, as a frontend's state update would."""
        self.views[view_id].value = value

    def _to_page(self, view_id: str, content: Any, buffers: Any = None) -> None:
        encoded = [base64.b64encode(bytes(buffer)).decode() for buffer in buffers or ()]
        self._deliveries.append(
            asyncio.ensure_future(self.page.evaluate("(a) => window.rtnbDeliver(...a)", [view_id, content, encoded]))
        )

    async def show(self, view: Any, width: int = 600, *, hub: dict[str, Any] | None = None, draw: bool = True) -> str:
        """Render ``view`` into a cell ``width`` px wide; ``hub`` overrides how the browser reaches the hub.

        With ``draw=False`` the view's model is only put on the page (a Dashboard's child, drawn by the Dashboard).
        A bare ipywidget (no ``kind``) gets a model of its ``value`` only, as a non-rtnb widget would have.
        """
        widget = view.widget if hasattr(view, "widget") else view
        view_id = getattr(view, "view_id", None) or widget.model_id
        self.views[view_id] = view
        if not hasattr(widget, "kind"):
            await self.page.evaluate(SHOW, [view_id, {"value": getattr(widget, "value", None)}, width, view_id, False])
            return f"#cell-{view_id} > div"
        widget.send = lambda content, buffers=None: self._to_page(view_id, content, buffers)
        state = widget.get_state(["kind", "config", "hub", "transport", "library_version"])
        if hub is not None:
            state["hub"] = hub
        if widget.kind == "control":
            state["value"] = widget.value
        if widget.kind == "dashboard":
            state["children"] = widget.get_state(["children"])["children"]
        await self.page.evaluate(SHOW, [view_id, state, width, widget.model_id, draw])
        return f"#cell-{view_id} > div"

    async def attribute(self, selector: str, name: str) -> str | None:
        return await self.page.get_attribute(selector, name)  # type: ignore[no-any-return]

    async def points(self, selector: str) -> int:
        return int(await self.attribute(selector, "data-rtnb-points") or 0)

    async def wait_for(self, expression: str, argument: Any = None, timeout: float = 10.0) -> None:
        await self.page.wait_for_function(expression, arg=argument, timeout=timeout * 1000)

    async def wait_mode(self, selector: str, mode: str, timeout: float = 10.0) -> None:
        """Until the view's ``data-rtnb-mode`` is ``mode``."""
        await self.wait_for("([s, m]) => document.querySelector(s)?.dataset.rtnbMode === m", [selector, mode], timeout)

    async def wait_points(self, selector: str, at_least: int, timeout: float = 10.0) -> None:
        """Until the view holds at least ``at_least`` points (``data-rtnb-points``)."""
        await self.wait_for(
            "([s, n]) => +(document.querySelector(s)?.dataset.rtnbPoints || 0) >= n", [selector, at_least], timeout
        )


class TcpForwarder:
    """A port that forwards to the hub while open: the browser's way to the hub, cut and restored at will."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            writer.close()
        for task in list(self.tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        for task in (
            asyncio.ensure_future(pipe(reader, upstream_writer)),
            asyncio.ensure_future(pipe(upstream_reader, writer)),
        ):
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
