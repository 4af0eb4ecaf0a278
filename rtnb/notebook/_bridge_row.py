"""The MQTT bridge's row of a ``Status`` panel: which status topic, and its relay.

The bridge of the kernel's hub reports its state on a hub system topic
(``$rtnb/bridge/mqtt`` by default, see :mod:`rtnb.bridge.mqtt`): on every state
change and every few seconds while its counters move. The browser subscribes
to that topic itself (``last=1`` gives the current state at once). When it
cannot reach the hub, it asks the kernel (``{"op": "bridge"}``) and the kernel
subscribes and forwards each status message as ``{"op": "bridge", "topic",
"ts", "data"}``; they are a few a minute, so the relay costs nothing worth a
budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..core.errors import RtnbError
from ..core.topics import MQTT_BRIDGE_STATUS_TOPIC as DEFAULT_STATUS_TOPIC
from ._pump import Frame, Pump
from ._widget import _same_hub

__all__ = ["BridgeRelay", "bridge_row_config", "bridge_static_line"]

log = logging.getLogger("rtnb.views")

#: the bridge's name on the page (``tr[data-rtnb-bridge=...]``): the hub component's name
BRIDGE_NAME = "mqtt"


def bridge_row_config(client: Any) -> dict[str, str] | None:
    """``{"name", "topic"}`` of the bridge whose row a Status panel shows, or None for no row.

    The kernel's embedded hub says whether it has a bridge (``start_hub(mqtt=...)``)
    and on which topic it reports. Any other hub (the Jupyter extension's, whose
    bridge is named ``mqtt``) is asked on the default topic: the row appears when
    a status message arrives, so a hub without a bridge shows none.
    """
    from .embedded import current_hub

    url = getattr(client, "url", None)
    embedded = current_hub()
    if embedded is not None and isinstance(url, str) and _same_hub(url, embedded.url):
        options = embedded.mqtt_options
        if options is None:
            return None
        return {"name": BRIDGE_NAME, "topic": options.status_topic}
    return {"name": BRIDGE_NAME, "topic": DEFAULT_STATUS_TOPIC}


class BridgeRelay:
    """The kernel's subscription to the bridge status topic, forwarding each message to the browsers.

    Started on the first browser request; every later status message goes to the
    widget (all its browser views) until :meth:`stop`.

    Args:
        client: the sync client of the hub whose bridge is shown.
        topic: the bridge's status topic.
        send: sends one comm message to the widget's browser views (called on the kernel's loop).
        loop: the loop ``send`` runs on; the kernel's by default.
    """

    def __init__(self, client: Any, topic: str, send: Callable[[dict[str, Any]], None], loop: Any = None) -> None:
        self.client = client
        self.topic = topic
        self.send = send
        self.loop = loop
        self.latest: dict[str, Any] | None = None
        self.pump: Pump | None = None
        self.subscription: Any = None

    @property
    def started(self) -> bool:
        return self.pump is not None

    def request(self) -> None:
        """A browser asked for the relay: subscribe (the hub replays the current state) or resend the newest."""
        if self.pump is None:
            self.pump = Pump(self._apply, max_fps=4.0, keep_per_topic=1, max_topics=1, loop=self.loop, name="Status")
            try:
                self.subscription = self.client.subscribe(self.topic, callback=self.pump.feed, last=1)
            except RtnbError as error:  # e.g. the hub is gone: the row stays as it was
                log.warning("Status: cannot follow the MQTT bridge status on %s: %s", self.topic, error)
                self.stop()
        elif self.latest is not None:
            self.send(self.latest)

    def snapshot(self) -> dict[str, Any] | None:
        """The bridge's newest status, for the static fallback: relayed, else asked of the kernel's embedded hub."""
        if self.latest is not None:
            status: dict[str, Any] = self.latest["data"]  # the bridge publishes its health object there
            return status
        from .embedded import current_hub

        embedded = current_hub()
        url = getattr(self.client, "url", None)
        bridge = embedded.bridge if embedded is not None else None
        if embedded is None or bridge is None or not isinstance(url, str) or not _same_hub(url, embedded.url):
            return None
        try:
            return embedded.call(bridge.health, timeout=1.0)
        except RtnbError as error:  # stopped or busy: the fallback goes without the row
            log.debug("Status: no bridge status for the static fallback: %s", error)
            return None

    def _apply(self, frame: Frame) -> None:
        for messages in frame.messages.values():
            for message in messages:
                self.latest = {"op": "bridge", "topic": message.topic, "ts": message.ts, "data": message.data}
                self.send(self.latest)

    def stop(self) -> None:
        """Unsubscribe and stop forwarding; idempotent."""
        pump, self.pump = self.pump, None
        if pump is not None:
            pump.stop()
        subscription, self.subscription = self.subscription, None
        try:
            if subscription is not None:
                subscription.close()
        except RtnbError as error:  # the connection is already gone
            log.debug("closing the bridge status subscription: %s", error)


def bridge_static_line(status: dict[str, Any]) -> str:
    """The bridge row as one line of text (the Status panel's static fallback)."""
    state = str(status.get("state", "unknown"))
    if state == "disconnected" and status.get("failed_attempts"):
        state += f", {status['failed_attempts']} failed attempts"
    line = f"MQTT bridge {status.get('broker', '')}: {state}; in {status.get('messages_in', 0):,}, "
    line += f"out {status.get('messages_out', 0):,}"
    if status.get("last_error"):
        line += f"; last error: {status['last_error']}"
    return line
