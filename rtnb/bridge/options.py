"""What an MQTT bridge is told: the broker address, the topics, QoS, security.

Pure data and validation, no I/O: :class:`MqttOptions` is checked when it is
built, so a typo in ``rtnb serve --mqtt ...`` fails at start with a typed
:mod:`rtnb.core.errors` error and one sentence, not later in a reconnect loop.

Broker URLs::

    mqtt://host[:port]                 plain TCP, port 1883 by default
    mqtts://host[:port]                TLS, port 8883 by default
    ws://host[:port][/path]            MQTT over WebSockets, port 80 and path /mqtt by default
    wss://host[:port][/path]           MQTT over secure WebSockets (TLS), port 443 by default
    mqtt://user:password@host:port     credentials in the URL (percent-encoded), any scheme

WebSockets get MQTT through networks that only let HTTP(S) out (Binder, many
corporate proxies block port 1883); brokers usually serve them on a path such
as ``/mqtt`` (Mosquitto ignores the path).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

from ..core.errors import BadArgument
from ..core.topics import MQTT_BRIDGE_STATUS_TOPIC, validate_pattern, validate_topic

__all__ = [
    "DEFAULT_STATUS_TOPIC",
    "DEFAULT_WEBSOCKET_PATH",
    "BrokerAddress",
    "MqttOptions",
    "PayloadMode",
    "ProtocolName",
    "TransportName",
    "parse_broker_url",
]

#: where a bridge reports its state, as a hub system topic
DEFAULT_STATUS_TOPIC = MQTT_BRIDGE_STATUS_TOPIC

PayloadMode = Literal["auto", "json", "text", "binary"]
ProtocolName = Literal["5", "3.1.1"]
TransportName = Literal["tcp", "websockets"]

_DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883, "ws": 80, "wss": 443}
_TLS_SCHEMES = {"mqtts", "ssl", "wss"}
_WEBSOCKET_SCHEMES = {"ws", "wss"}
#: the WebSocket path when a ws:// or wss:// URL has none (paho's default, and most brokers')
DEFAULT_WEBSOCKET_PATH = "/mqtt"
_PAYLOAD_MODES = ("auto", "json", "text", "binary")
_PROTOCOLS = ("5", "3.1.1")


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to log in, parsed from a URL.

    ``transport`` is ``"tcp"`` (``mqtt://``, ``mqtts://``) or ``"websockets"``
    (``ws://``, ``wss://``, then ``path`` is the HTTP path of the WebSocket).
    """

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    transport: TransportName = "tcp"
    path: str = ""

    @property
    def display(self) -> str:
        """The URL without the password, safe for logs, ``/healthz`` and status topics."""
        if self.transport == "websockets":
            scheme = "wss" if self.tls else "ws"
        else:
            scheme = "mqtts" if self.tls else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{host}:{self.port}{self.path}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Read ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS), or
    ``ws://`` / ``wss://`` ``[user[:password]@]host[:port][/path]`` for MQTT over WebSockets.

    Raises:
        BadArgument (a ValueError): the URL has another scheme, no host, a bad port, a query or
            fragment, or a path on an ``mqtt://``/``mqtts://`` URL.
    """
    if not isinstance(url, str) or not url:
        raise BadArgument("The MQTT broker URL must be a non-empty string such as 'mqtt://127.0.0.1:1883'.")
    if "://" not in url:
        url = f"mqtt://{url}"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise BadArgument(
            f"MQTT broker URL {url!r}: the scheme must be mqtt:// or mqtts:// (or ws://, wss:// for MQTT over "
            f"WebSockets), not {scheme}://."
        )
    websockets = scheme in _WEBSOCKET_SCHEMES
    if parts.query or parts.fragment:
        raise BadArgument(f"MQTT broker URL {url!r} must not have a query or fragment.")
    if not websockets and parts.path not in ("", "/"):
        raise BadArgument(f"MQTT broker URL {url!r} must not have a path (only ws:// and wss:// URLs have one).")
    try:
        port = parts.port
    except ValueError:
        raise BadArgument(f"MQTT broker URL {url!r} has an invalid port.") from None
    if not parts.hostname:
        raise BadArgument(f"MQTT broker URL {url!r} has no host.")
    return BrokerAddress(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[scheme],
        tls=scheme in _TLS_SCHEMES,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        transport="websockets" if websockets else "tcp",
        path=(parts.path or DEFAULT_WEBSOCKET_PATH) if websockets else "",
    )


def _check_filters(filters: object, what: str) -> tuple[str, ...]:
    if isinstance(filters, str):
        filters = (filters,)
    if not isinstance(filters, (tuple, list)):
        raise BadArgument(f"{what} must be a list of MQTT topic filters such as 'factory/#'.")
    for mqtt_filter in filters:
        validate_pattern(mqtt_filter)
    return tuple(filters)


@dataclass(frozen=True)
class MqttOptions:
    """Everything an MQTT bridge can be told. Defaults suit a local broker.

    Topic filters are MQTT names (``factory/#``). A message on MQTT topic ``T``
    becomes hub topic ``prefix/T`` (or ``T`` without a prefix); a hub message on
    ``prefix/T`` matching an ``outbound`` filter goes to MQTT topic ``T``.

    Attributes:
        url: the broker, see :func:`parse_broker_url`.
        inbound: MQTT filters whose messages are republished into the hub.
        outbound: MQTT filters (seen through the prefix) whose hub messages go
            out to the broker.
        prefix: hub topic level(s) in front of every bridged topic; ``""`` for none.
        qos: MQTT QoS of the inbound subscriptions and of outbound publishes (0, 1, 2).
        retain: set the MQTT retain flag on outbound publishes.
        payload: how inbound payloads are decoded: ``"auto"`` (JSON, else text,
            else base64 envelope), ``"json"`` (non-JSON is refused and counted),
            ``"text"`` (UTF-8 string, else envelope), ``"binary"`` (always the
            base64 envelope). See :mod:`rtnb.bridge.payloads`.
        username / password: broker credentials; override the URL's.
        ca_file: PEM bundle to verify the broker's certificate (TLS); the system's
            trust store when ``None``.
        cert_file / key_file: client certificate for mutual TLS.
        tls_insecure: skip the broker hostname check (self-signed test brokers only).
        client_id: a fixed MQTT client id. With one, the broker keeps the
            bridge's session (``session_expiry`` seconds) and queues QoS >= 1
            messages while the bridge is away; without one, every connection
            starts a clean session.
        session_expiry: seconds the broker keeps a named session after a disconnect.
        protocol: ``"5"`` (default; the broker itself never echoes the bridge's
            publishes back, via MQTT 5's *no local*) or ``"3.1.1"`` (echoes are
            recognised by topic and payload and dropped).
        keepalive: seconds between MQTT keepalive pings; a dead broker is noticed
            after about 1.5 times this.
        reconnect_initial / reconnect_max: the reconnect backoff, as the Python
            clients': after the n-th failed attempt in a row, a random wait in
            ``[0, min(reconnect_max, reconnect_initial * 2 ** (n - 1))]``.
        publish_window: outbound publishes in flight at once (pipelining).
        max_inbound_queue: messages read from the broker but not yet in the hub;
            past it messages are dropped and counted (``None`` disables the bound).
        status_topic: hub system topic where the bridge reports its state.
        status_interval: seconds between periodic status reports while counters
            change; ``None`` reports state changes only.
        connect_timeout: seconds to wait for the broker's CONNACK.
    """

    url: str = "mqtt://127.0.0.1:1883"
    inbound: tuple[str, ...] = ()
    outbound: tuple[str, ...] = ()
    prefix: str = ""
    qos: int = 1
    retain: bool = False
    payload: PayloadMode = "auto"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    client_id: str | None = None
    session_expiry: int = 3600
    protocol: ProtocolName = "5"
    keepalive: int = 30
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    publish_window: int = 256
    max_inbound_queue: int | None = 1_000_000
    status_topic: str = DEFAULT_STATUS_TOPIC
    status_interval: float | None = 5.0
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        parse_broker_url(self.url)
        object.__setattr__(self, "inbound", _check_filters(self.inbound, "inbound"))
        object.__setattr__(self, "outbound", _check_filters(self.outbound, "outbound"))
        if not self.inbound and not self.outbound:
            raise BadArgument("An MQTT bridge needs at least one inbound or outbound topic filter.")
        if self.prefix:
            validate_topic(self.prefix)
        if isinstance(self.qos, bool) or self.qos not in (0, 1, 2):
            raise BadArgument(f"MQTT QoS must be 0, 1 or 2, not {self.qos!r}.")
        if self.payload not in _PAYLOAD_MODES:
            raise BadArgument(f"Payload mode must be one of {', '.join(_PAYLOAD_MODES)}, not {self.payload!r}.")
        if self.protocol not in _PROTOCOLS:
            raise BadArgument(f"MQTT protocol must be one of {', '.join(_PROTOCOLS)}, not {self.protocol!r}.")
        if (self.cert_file is None) != (self.key_file is None):
            raise BadArgument("A client certificate needs both cert_file and key_file.")
        if self.keepalive < 1 or self.session_expiry < 0 or self.publish_window < 1:
            raise BadArgument("keepalive and publish_window must be >= 1 and session_expiry >= 0.")
        if not (0 < self.reconnect_initial <= self.reconnect_max) or not math.isfinite(self.reconnect_max):
            raise BadArgument("The reconnect backoff needs 0 < reconnect_initial <= reconnect_max (finite).")
        if self.max_inbound_queue is not None and self.max_inbound_queue < 1:
            raise BadArgument("max_inbound_queue must be >= 1, or None for no bound.")
        if self.status_interval is not None and self.status_interval <= 0:
            raise BadArgument("status_interval must be > 0 seconds, or None.")
        if self.connect_timeout <= 0:
            raise BadArgument("connect_timeout must be > 0 seconds.")
        validate_topic(self.status_topic, allow_system=True)

    @property
    def address(self) -> BrokerAddress:
        """The broker address, with ``username``/``password`` overriding the URL's."""
        address = parse_broker_url(self.url)
        if self.username is None and self.password is None:
            return address
        return dataclasses.replace(
            address,
            username=self.username if self.username is not None else address.username,
            password=self.password if self.password is not None else address.password,
        )

    @property
    def uses_tls(self) -> bool:
        return self.address.tls or self.ca_file is not None or self.cert_file is not None
