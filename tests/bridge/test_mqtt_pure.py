"""The bridge's pure parts: options, payload codecs, topic mapping, loop bookkeeping. No I/O."""

from __future__ import annotations

import argparse

import pytest

from rtnb.bridge.cli import add_mqtt_arguments, options_from_args
from rtnb.bridge.mapping import EchoFilter, OriginLedger, TopicMap
from rtnb.bridge.options import MqttOptions, parse_broker_url
from rtnb.bridge.payloads import binary_envelope, decode_payload, encode_payload, is_binary_envelope
from rtnb.core.errors import BadField, BadJson, InvalidPattern, InvalidTopic
from rtnb.core.limits import Limits
from rtnb.core.topics import Pattern

# -- broker URLs and options -------------------------------------------------------------


def test_broker_url_defaults_and_credentials() -> None:
    plain = parse_broker_url("mqtt://127.0.0.1")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("127.0.0.1", 1883, False, None)
    secure = parse_broker_url("mqtts://user:p%40ss@broker.example:8884")
    assert (secure.host, secure.port, secure.tls, secure.username, secure.password) == (
        "broker.example",
        8884,
        True,
        "user",
        "p@ss",
    )
    assert secure.display == "mqtts://user@broker.example:8884"
    assert "p@ss" not in repr(secure)
    assert parse_broker_url("localhost:1884").port == 1884


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1883", "mqtt://", "mqtt://host:99999", "mqtt://host/path", "mqtt://h?x=1", ""]
)
def test_bad_broker_urls_are_refused(url: str) -> None:
    with pytest.raises(BadField):
        parse_broker_url(url)


def test_options_validate_everything_at_construction() -> None:
    options = MqttOptions(inbound=("factory/#",), outbound="factory/+/cmd")  # a single filter is accepted
    assert options.outbound == ("factory/+/cmd",)
    with pytest.raises(BadField, match="at least one"):
        MqttOptions()
    with pytest.raises(InvalidPattern):
        MqttOptions(inbound=("factory/#/x",))
    with pytest.raises(BadField, match="QoS"):
        MqttOptions(inbound=("a",), qos=3)
    with pytest.raises(InvalidTopic):
        MqttOptions(inbound=("a",), prefix="$rtnb")
    with pytest.raises(BadField, match="cert_file and key_file"):
        MqttOptions(inbound=("a",), cert_file="c.pem")
    with pytest.raises(BadField, match="Payload mode"):
        MqttOptions(inbound=("a",), payload="xml")  # type: ignore[arg-type]
    with pytest.raises(BadField, match="backoff"):
        MqttOptions(inbound=("a",), reconnect_initial=5, reconnect_max=1)


def test_credentials_from_options_override_the_url() -> None:
    options = MqttOptions(url="mqtt://a:b@h", inbound=("x",), password="secret")
    assert (options.address.username, options.address.password) == ("a", "secret")
    assert MqttOptions(url="mqtts://h", inbound=("x",)).uses_tls
    assert MqttOptions(url="mqtt://h", inbound=("x",), ca_file="ca.pem").uses_tls


def test_command_line_options(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_mqtt_arguments(parser)
    assert options_from_args(parser.parse_args([])) is None
    monkeypatch.setenv("RTNB_MQTT_PASSWORD", "from-env")
    args = parser.parse_args(
        [
            "--mqtt",
            "mqtt://127.0.0.1:1883",
            "--mqtt-in",
            "factory/#",
            "--mqtt-in",
            "lab/#",
            "--mqtt-out",
            "factory/+/cmd",
            "--mqtt-prefix",
            "mqtt",
            "--mqtt-qos",
            "2",
            "--mqtt-retain",
            "--mqtt-username",
            "bridge",
        ]
    )
    options = options_from_args(args)
    assert options is not None
    assert options.inbound == ("factory/#", "lab/#") and options.outbound == ("factory/+/cmd",)
    assert (options.prefix, options.qos, options.retain) == ("mqtt", 2, True)
    assert (options.address.username, options.address.password) == ("bridge", "from-env")


# -- payloads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "data"),
    [
        (b'{"value": 21.5}', {"value": 21.5}),
        (b"21.5", 21.5),
        (b'"quoted"', "quoted"),
        (b"on", "on"),
        (b"", ""),
        ("température".encode(), "température"),
        (b"\xff\x00\x01", {"base64": "/wAB", "binary": True}),
    ],
)
def test_auto_decoding(payload: bytes, data: object) -> None:
    assert decode_payload(payload) == data


def test_other_decoding_modes() -> None:
    assert decode_payload(b"21.5", "text") == "21.5"
    assert decode_payload(b"21.5", "binary") == binary_envelope(b"21.5")
    assert decode_payload(b"\xff", "text") == binary_envelope(b"\xff")
    assert decode_payload(b"[1]", "json") == [1]
    with pytest.raises(BadJson):
        decode_payload(b"on", "json")
    with pytest.raises(BadJson):
        decode_payload(b"\xff", "json")


@pytest.mark.parametrize("payload", [b'{"value":21.5}', b"on", b"\x00\xffbinary\x80", b"", b"[1,2]"])
def test_payloads_round_trip(payload: bytes) -> None:
    assert encode_payload(decode_payload(payload)) == payload


def test_encoding_hub_data() -> None:
    assert encode_payload("on") == b"on"
    assert encode_payload({"setpoint": 80}) == b'{"setpoint":80}'
    assert encode_payload(None) == b"null"
    # only the exact envelope is treated as bytes; a larger object is plain JSON
    assert encode_payload({"base64": "AAE=", "binary": True, "x": 1}).startswith(b"{")
    assert not is_binary_envelope({"base64": "AAE=", "binary": 1})
    with pytest.raises(BadField, match="base64"):
        encode_payload({"base64": "not base64!", "binary": True})


# -- topics ------------------------------------------------------------------------------


def test_topic_map_with_and_without_prefix() -> None:
    mapped = TopicMap("mqtt")
    assert mapped.to_hub("factory/boiler/temp") == "mqtt/factory/boiler/temp"
    assert mapped.to_mqtt("mqtt/factory/boiler/cmd") == "factory/boiler/cmd"
    assert mapped.to_mqtt("other/topic") is None
    assert mapped.to_mqtt("mqtt") is None
    assert mapped.hub_pattern("factory/+/cmd") == Pattern.parse("mqtt/factory/+/cmd")
    plain = TopicMap()
    assert plain.to_hub("a/b") == "a/b" and plain.to_mqtt("a/b") == "a/b"


@pytest.mark.parametrize("topic", ["a//b", "/leading", "trailing/", "$SYS/broker/uptime", "x" * 300])
def test_topics_the_hub_refuses(topic: str) -> None:
    with pytest.raises(InvalidTopic):
        TopicMap(limits=Limits()).to_hub(topic)


def test_origin_ledger_claims_each_bridged_message_once() -> None:
    ledger = OriginLedger([Pattern.parse("factory/+/cmd")], capacity=3)
    assert ledger.could_return("factory/boiler/cmd") and not ledger.could_return("factory/boiler/temp")
    ledger.record("factory/boiler/cmd", 1, 7)
    assert ledger.claim("factory/boiler/cmd", 1, 7)
    assert not ledger.claim("factory/boiler/cmd", 1, 7)
    assert not ledger.claim("factory/boiler/cmd", 2, 7)  # another epoch is another message
    for offset in range(10):
        ledger.record("factory/boiler/cmd", 1, offset)
    assert len(ledger) == 3 and ledger.evicted == 7


def test_echo_filter_recognises_our_own_publishes() -> None:
    echo = EchoFilter([Pattern.parse("factory/#")])
    echo.sent("factory/boiler/cmd", b'{"on":false}')
    echo.sent("elsewhere/cmd", b"x")  # no inbound filter matches: cannot come back, not kept
    assert len(echo) == 1
    assert echo.is_echo("factory/boiler/cmd", b'{"on":false}')
    assert not echo.is_echo("factory/boiler/cmd", b'{"on":false}')  # the device's own identical publish passes
