"""A hub inside the kernel: :func:`start_hub` runs one on its own thread and loop.

Why a thread: a notebook cell can block the kernel's main thread for minutes
(a long computation, ``time.sleep``). Devices, browsers and other kernels must
keep talking to the hub meanwhile, so the hub gets a private asyncio loop on a
daemon thread and never waits for the kernel. Code on other threads reaches the
hub through :meth:`EmbeddedHub.call`, which runs a function on the hub's loop.

One hub per process: :func:`start_hub` returns the running one when called
again, and the hub stops when the interpreter exits. This module imports
neither ipywidgets nor plotly, so clients can use it cheaply.

``start_hub(mqtt="mqtt://127.0.0.1:1883", mqtt_in=["plant/#"])`` also bridges
an MQTT broker (:mod:`rtnb.bridge`): the bridge is a component of the hub, so
it starts and stops with it. :func:`mqtt_bridge_options` turns those keywords
into checked :class:`~rtnb.bridge.options.MqttOptions`; the Jupyter server
extension uses it too.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import importlib.util
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..bridge.options import MqttOptions
from ..client._loop_thread import LoopThread, LoopTimeout
from ..core.errors import BadArgument, BadArgumentType, Timeout, Unavailable
from ..server.hub import Hub, HubConfig
from ..server.runner import HubServer

if TYPE_CHECKING:
    from ..bridge.mqtt import MqttBridge

__all__ = ["MQTT_COMPONENT", "EmbeddedHub", "current_hub", "mqtt_bridge_options", "start_hub"]

log = logging.getLogger("rtnb.embedded")

Result = TypeVar("Result")

#: the MQTT bridge's component name on the hub (``/healthz``, ``/metrics``)
MQTT_COMPONENT = "mqtt"

#: seconds :func:`start_hub` waits for the hub to listen before giving up
START_TIMEOUT = 10.0

_HUB_CONFIG_FIELDS = frozenset(field.name for field in dataclasses.fields(HubConfig))
#: MqttOptions fields given by their own keyword, not through ``mqtt_options``
_MQTT_TOPIC_FIELDS = frozenset({"url", "inbound", "outbound", "prefix"})
_MQTT_OTHER_FIELDS = frozenset(field.name for field in dataclasses.fields(MqttOptions)) - _MQTT_TOPIC_FIELDS

_lock = threading.Lock()
_current: EmbeddedHub | None = None


class EmbeddedHub:
    """A :class:`~rtnb.server.runner.HubServer` running on its own thread and event loop.

    Create it with :func:`start_hub`, not directly.

    Attributes:
        server: the HTTP server, with its :class:`~rtnb.server.hub.Hub` as ``server.hub``.
        mqtt_options: the MQTT bridge's options, or None without a bridge.
        loop: the hub's private event loop.
        thread: the daemon thread running ``loop``.
    """

    def __init__(self, server: HubServer, mqtt_options: MqttOptions | None = None) -> None:
        self.server = server
        self.mqtt_options = mqtt_options
        self._loop_thread = LoopThread("rtnb-hub")
        self.loop = self._loop_thread.loop
        self.thread = self._loop_thread.thread

    # -- lifecycle -------------------------------------------------------------------

    async def _start_server(self) -> None:
        await self.server.start()
        if self.mqtt_options is not None:
            from ..bridge.mqtt import start_mqtt_bridge

            try:
                # starts connecting in the background: a broker that is down is retried, not fatal
                await start_mqtt_bridge(self.server.hub, self.mqtt_options, name=MQTT_COMPONENT)
            except BaseException:  # e.g. TLS files that cannot be read: no half-started hub
                await self.server.stop()
                raise

    def _start(self, timeout: float) -> None:
        self._loop_thread.start()
        try:
            self._loop_thread.run(self._start_server(), timeout)
        except LoopTimeout:
            raise Timeout(f"The embedded hub did not start within {timeout} seconds.") from None
        except BaseException:  # the server is not listening: nothing to keep the loop for
            self._loop_thread.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Close every client connection (code 1001), stop the loop and join the thread.

        Safe to call twice, and from any thread but the hub's own.
        """
        global _current
        with _lock:
            if _current is self:
                _current = None
        if not self._loop_thread.alive:
            return
        if self._loop_thread.on_thread:
            raise RuntimeError("EmbeddedHub.stop() cannot run on the hub's own thread")
        try:
            self._loop_thread.run(self.server.stop(), timeout)
        except LoopTimeout:
            log.warning("the embedded hub did not stop within %ss; stopping its loop anyway", timeout)
        self._loop_thread.stop(timeout)

    @property
    def running(self) -> bool:
        """True while the hub serves requests."""
        return self._loop_thread.alive and self.server.port is not None

    # -- where it listens ------------------------------------------------------------

    @property
    def hub(self) -> Hub:
        return self.server.hub

    @property
    def bridge(self) -> MqttBridge | None:
        """The MQTT bridge started with the hub (``start_hub(mqtt=...)``), or None.

        Use it on the hub's loop, e.g. ``hub.call(hub.bridge.wait_connected)``.
        """
        # start() registers the MQTT bridge, and nothing else, under this name
        return cast("MqttBridge | None", self.server.hub.components.get(MQTT_COMPONENT))

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``; what clients and ``rtnb.connect`` take."""
        return self.server.url

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint, ``ws://127.0.0.1:PORT/ws``."""
        return self.server.ws_url

    @property
    def view_key(self) -> str | None:
        """The secret that lets notebook views' browsers subscribe (read only) from any origin.

        Views put it in their widget state; browsers without it are still held
        to the origin check.
        """
        return self.server.view_key

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    # -- running code on the hub's loop ----------------------------------------------

    def call(self, function: Callable[..., Result], *args: Any, timeout: float | None = 10.0) -> Result:
        """Run ``function(*args)`` on the hub's loop and return its result.

        Hub objects are not thread-safe; this is how other threads use them,
        e.g. ``hub.call(hub.hub.publish_now, "plant/boiler/temp", {"value": 71})``.
        A coroutine result is awaited on the hub's loop.

        Raises:
            Unavailable: the hub is stopped.
            Timeout: no result within ``timeout`` seconds.
            Exception: whatever ``function`` raised.
        """
        if self._loop_thread.on_thread:
            result = function(*args)
            if asyncio.iscoroutine(result):
                raise RuntimeError("EmbeddedHub.call() on the hub thread cannot await; await the coroutine instead")
            return result
        if not self.running:
            raise Unavailable("The embedded hub is stopped.")

        async def run() -> Result:
            result = function(*args)
            if asyncio.iscoroutine(result):
                awaited: Result = await result  # the coroutine function's own result
                return awaited
            return result

        try:
            return self._loop_thread.run(run(), timeout)
        except LoopTimeout:
            name = getattr(function, "__name__", function)
            raise Timeout(f"The hub did not run {name!r} within {timeout}s.") from None

    def __repr__(self) -> str:
        if self.server.port is None:
            return "<EmbeddedHub (not listening)>"
        state = "running" if self.running else "stopped"
        bridge = ""
        if self.mqtt_options is not None:
            bridge = f", MQTT bridge to {self.mqtt_options.address.display}"
        return f"<EmbeddedHub {state} at {self.url} (WebSocket {self.ws_url}{bridge})>"


def mqtt_bridge_options(
    url: str | MqttOptions | None,
    inbound: Sequence[str] | str = (),
    outbound: Sequence[str] | str = (),
    prefix: str = "",
    more: Mapping[str, Any] | None = None,
    *,
    names: tuple[str, str, str, str, str] = ("mqtt", "mqtt_in", "mqtt_out", "mqtt_prefix", "mqtt_options"),
) -> MqttOptions | None:
    """Checked MQTT bridge options from ``start_hub``'s keywords (or the extension's traits).

    Args:
        url: the broker (``"mqtt://127.0.0.1:1883"``), a whole
            :class:`~rtnb.bridge.options.MqttOptions`, or None/``""`` for no bridge.
        inbound: MQTT topic filters bridged into the hub.
        outbound: MQTT topic filters whose hub messages go out to the broker.
        prefix: hub topic level(s) in front of the bridged MQTT topics.
        more: any other :class:`~rtnb.bridge.options.MqttOptions` field
            (``qos``, ``retain``, ``payload``, ``username``, ``password``, ``ca_file``...).
        names: how the caller calls these five options, for the error sentences.

    Returns:
        The options, or None when no broker was given (and nothing else either).

    Raises:
        BadArgument / BadArgumentType (a ValueError / TypeError): topics or other options
            without a broker URL, an unknown option, a bad URL, QoS, payload mode...;
            or aiomqtt is not installed.
        InvalidPattern / InvalidTopic: a bad topic filter or prefix.
    """
    url_name, inbound_name, outbound_name, prefix_name, more_name = names
    more = dict(more or {})
    if isinstance(url, MqttOptions):
        if inbound or outbound or prefix or more:
            raise BadArgument(
                f"Give the topics and settings inside the MqttOptions passed as {url_name}, "
                f"not also as {inbound_name}/{outbound_name}/{prefix_name}/{more_name}."
            )
        options: MqttOptions | None = url
    elif url is None or url == "":
        if inbound or outbound or prefix or more:
            raise BadArgument(
                f"{inbound_name}, {outbound_name}, {prefix_name} and {more_name} need a broker: "
                f"set {url_name} to a URL such as 'mqtt://127.0.0.1:1883'."
            )
        return None
    elif not isinstance(url, str):
        raise BadArgumentType(f"{url_name} must be a broker URL such as 'mqtt://127.0.0.1:1883', not {url!r}.")
    else:
        unknown = sorted(set(more) - _MQTT_OTHER_FIELDS)
        if unknown:
            raise BadArgument(
                f"Unknown {more_name} {', '.join(map(repr, unknown))}; known: {', '.join(sorted(_MQTT_OTHER_FIELDS))}."
            )
        for value, name in ((inbound, inbound_name), (outbound, outbound_name)):
            if not isinstance(value, (str, list, tuple)) or not all(isinstance(item, str) for item in value):
                raise BadArgumentType(
                    f"{name} must be a list of MQTT topic filters such as ['factory/#'], not {value!r}."
                )
        if not isinstance(prefix, str):
            raise BadArgumentType(
                f"{prefix_name} must be a string (a hub topic prefix such as 'mqtt'), not {prefix!r}."
            )
        try:
            options = MqttOptions(
                url=url,
                inbound=(inbound,) if isinstance(inbound, str) else tuple(inbound),
                outbound=(outbound,) if isinstance(outbound, str) else tuple(outbound),
                prefix=prefix,
                **more,
            )
        except TypeError as error:  # a value of the wrong type deep in the dataclass checks
            raise BadArgumentType(f"Invalid MQTT bridge option: {error}.") from None
    if importlib.util.find_spec("aiomqtt") is None:
        raise BadArgument(f"{url_name} needs the aiomqtt package: pip install 'rtnb[mqtt]'.")
    return options


def start_hub(port: int = 0, host: str = "127.0.0.1", **options: Any) -> EmbeddedHub:
    """Start the process's embedded hub, or return the one already running.

    Args:
        port: TCP port; 0 (the default) lets the OS pick a free one.
        host: address to bind; loopback unless told otherwise.
        **options: :class:`~rtnb.server.hub.HubConfig` fields (``history=``,
            ``limits=``, ``ping_interval=``...), or ``config=`` a whole
            HubConfig, ``backplane=`` or ``redis=`` (a Redis URL such as
            ``"redis://127.0.0.1:6379/0"``: the hub shares topics and history with
            the other hubs on that Redis), and :class:`~rtnb.server.runner.HubServer`
            options (``prefix=``, ``allowed_origins=``, ``ssl_context=``).
        mqtt: bridge this MQTT broker (``"mqtt://127.0.0.1:1883"``,
            ``"mqtts://user:password@host"``), or a whole
            :class:`~rtnb.bridge.options.MqttOptions`. The bridge is a hub
            component: it reconnects on its own and stops with the hub.
        mqtt_in: MQTT topic filters bridged into the hub, e.g. ``["plant/#"]``.
        mqtt_out: MQTT topic filters whose hub messages go out to the broker,
            e.g. ``["plant/+/cmd"]``.
        mqtt_prefix: hub topic of MQTT topic ``T`` is ``prefix/T`` (default ``T``).
        mqtt_options: other bridge options, e.g. ``{"qos": 0, "retain": True}``.

    Returns:
        The running :class:`EmbeddedHub` (its bridge, if any, as ``.bridge``).

    Raises:
        Unavailable: a hub already runs on another address, or with another
            MQTT bridge, than the one asked for.
        BadArgument / InvalidPattern / InvalidTopic: invalid MQTT options (checked
            before anything starts).
        OSError: the port cannot be bound.
        Timeout: the hub did not start within :data:`START_TIMEOUT` seconds.
    """
    global _current
    mqtt_options = mqtt_bridge_options(
        options.pop("mqtt", None),
        options.pop("mqtt_in", ()),
        options.pop("mqtt_out", ()),
        options.pop("mqtt_prefix", ""),
        options.pop("mqtt_options", None),
    )
    with _lock:
        existing = _current
        if existing is not None and existing.running:
            if (port and port != existing.port) or host != existing.server.host:
                raise Unavailable(
                    f"An embedded hub already runs at {existing.url}; stop it before starting one on {host}:{port}."
                )
            if mqtt_options is not None and mqtt_options != existing.mqtt_options:
                raise Unavailable(
                    f"An embedded hub already runs at {existing.url} with another MQTT bridge, or none; "
                    "stop it (hub.stop()) before starting one with this bridge."
                )
            return existing
        config_fields = {name: options.pop(name) for name in list(options) if name in _HUB_CONFIG_FIELDS}
        config = options.pop("config", None) or HubConfig()
        if config_fields:
            config = dataclasses.replace(config, **config_fields)
        backplane, redis = options.pop("backplane", None), options.pop("redis", None)
        if backplane is None and redis is not None:
            from ..backplane.redis import RedisBackplane

            backplane = RedisBackplane(redis, limits=config.history)
        hub = Hub(config, backplane)
        # the notebook views' key: their browsers (pages served by Jupyter, another origin) subscribe with it
        options.setdefault("view_key", secrets.token_urlsafe(24))
        embedded = EmbeddedHub(HubServer(hub, host=host, port=port, **options), mqtt_options)
        embedded._start(START_TIMEOUT)
        _current = embedded
        log.info("embedded rtnb hub listening on %s", embedded.url)
        if mqtt_options is not None:
            log.info("embedded rtnb hub bridging MQTT broker %s", mqtt_options.address.display)
        return embedded


def current_hub() -> EmbeddedHub | None:
    """The running embedded hub of this process, or None."""
    hub = _current
    return hub if hub is not None and hub.running else None


@atexit.register
def _stop_at_exit() -> None:
    hub = _current
    if hub is not None:
        hub.stop(timeout=2.0)
