"""An embedded hub for the notebook tests, and a client per test that must not leak."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rtnb.client import connect
from rtnb.notebook.embedded import EmbeddedHub, start_hub

pytest.importorskip("ipywidgets", reason="the notebook extra is not installed")
pytest.importorskip("anywidget", reason="the notebook extra is not installed")


@pytest.fixture(scope="package")
def embedded() -> Iterator[EmbeddedHub]:
    hub = start_hub()
    yield hub
    hub.stop()


@pytest.fixture
def client(embedded: EmbeddedHub) -> Iterator[Any]:
    """A sync client of the embedded hub; the test's views subscribe through it."""
    threads_before = {thread.ident for thread in threading.enumerate()}
    with connect(embedded.url) as sync_client:
        yield sync_client
    leaked = [t.name for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    # the client's own thread is joined by close(); views start no threads of their own
    assert not [name for name in leaked if name.startswith("rtnb")], leaked
