"""``rtnb token``, ``rtnb serve`` security options and TLS, and the clients' tokens."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from security_helpers import SECRET, expired_token, jwt_authenticator, make_token
from tls_support import self_signed_certificate

from rtnb.cli import build_parser, main
from rtnb.cli._security import authenticator_from_args, binding_warning, ssl_context_from_args
from rtnb.client import AsyncClient, connect
from rtnb.core.auth import DEFAULT_RATE_LIMIT, RateLimit
from rtnb.core.errors import Forbidden, Unauthorized
from rtnb.server.auth import AccessControl
from rtnb.testing import running_hub, wait_until

# -- rtnb token ------------------------------------------------------------------------------


def test_token_verb_prints_a_verifiable_token_last(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "token",
            "--secret",
            SECRET,
            "--sub",
            "device-7",
            "--publish",
            "plant/7/#",
            "--subscribe",
            "plant/7/cmd",
            "--subscribe",
            "plant/+/status",
            "--ttl",
            "120",
            "--audience",
            "rtnb-tests",
        ]
    )
    assert status == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    permissions = AccessControl.jwt(secret=SECRET, audience="rtnb-tests").verify(token)
    assert permissions.subject == "device-7"
    assert [grant.text for grant in permissions.subscribe] == ["plant/7/cmd", "plant/+/status"]
    assert permissions.expires_at is not None


def test_token_verb_reads_the_secret_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTNB_SECRET", SECRET)
    assert main(["token", "--sub", "x", "--ttl", "0"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert AccessControl.jwt(secret=SECRET).verify(token).expires_at is None


def test_token_verb_refuses_bad_input(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RTNB_SECRET", raising=False)
    assert main(["token", "--sub", "x"]) == 2
    assert main(["token", "--secret", SECRET, "--sub", "x", "--publish", "a//b"]) == 2
    assert "empty level" in capsys.readouterr().err


def test_token_verb_signs_with_a_private_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "key.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert main(["token", "--private-key", str(tmp_path / "key.pem"), "--sub", "x", "--key-id", "k1"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert AccessControl.jwt_from_files(public_key_file=tmp_path / "key.pub").verify(token).subject == "x"
    # the same key published as a JWKS, picked by its kid
    import jwt

    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    assert AccessControl.jwt_from_files(jwks_file=tmp_path / "keys.json").verify(token).subject == "x"
    other = make_token(
        secret=key.private_bytes(  # type: ignore[arg-type]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        algorithm="RS256",
        key_id="unknown",
        audience=None,
    )
    with pytest.raises(Unauthorized, match="key id"):
        AccessControl.jwt_from_files(jwks_file=tmp_path / "keys.json").verify(other)


# -- rtnb serve options ------------------------------------------------------------------------


def serve_args(*argv: str) -> Any:
    return build_parser().parse_args(["serve", *argv])


def test_defaults_on_loopback_have_no_auth_and_no_rate_limit() -> None:
    authenticator = authenticator_from_args(serve_args())
    assert not authenticator.required and authenticator.rate_limit is None
    assert authenticator.connections.max_per_key is None
    assert binding_warning("127.0.0.1", authenticator) is None


def test_binding_elsewhere_without_auth_warns_and_limits() -> None:
    args = serve_args("--host", "0.0.0.0")
    authenticator = authenticator_from_args(args)
    assert authenticator.rate_limit == DEFAULT_RATE_LIMIT
    warning = binding_warning("0.0.0.0", authenticator)
    assert warning is not None and "WITHOUT AUTHENTICATION" in warning


def test_jwt_mode_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTNB_SECRET", SECRET)
    authenticator = authenticator_from_args(serve_args("--auth", "jwt", "--host", "0.0.0.0"))
    assert authenticator.required and authenticator.rate_limit == RateLimit(1000, 2000)
    assert authenticator.connections.max_per_key == 1000
    assert binding_warning("0.0.0.0", authenticator) is None
    custom = authenticator_from_args(
        serve_args("--auth", "jwt", "--rate-limit", "50/60", "--max-connections-per-ip", "0", "--audience", "a")
    )
    assert custom.rate_limit == RateLimit(50, 60) and custom.connections.max_per_key is None
    assert authenticator_from_args(serve_args("--auth", "jwt", "--rate-limit", "off")).rate_limit is None


@pytest.mark.parametrize(
    "argv",
    [
        ("--auth", "jwt"),
        ("--secret", "s"),
        ("--auth", "jwt", "--rate-limit", "fast"),
        ("--auth", "jwt", "--secret", "s", "--jwks", "x.json"),
    ],
)
def test_contradictory_options_are_refused(argv: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RTNB_SECRET", raising=False)
    with pytest.raises(ValueError):
        authenticator_from_args(serve_args(*argv))


def test_serve_exits_2_on_bad_security_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RTNB_SECRET", raising=False)
    assert main(["serve", "--port", "0", "--auth", "jwt"]) == 2
    assert "exactly one of --secret" in capsys.readouterr().err
    with pytest.raises(ValueError):
        ssl_context_from_args(serve_args("--keyfile", "k.pem"))


# -- TLS ------------------------------------------------------------------------------------------


async def test_rtnb_serve_with_tls_and_jwt(tmp_path: Path) -> None:
    certfile, keyfile = self_signed_certificate(tmp_path)
    environment = {**os.environ, "RTNB_SECRET": SECRET}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtnb",
        "serve",
        "--port",
        "0",
        "--auth",
        "jwt",
        "--certfile",
        str(certfile),
        "--keyfile",
        str(keyfile),
        stderr=subprocess.PIPE,
        env=environment,
    )
    try:
        assert process.stderr is not None
        line = b""
        while b"rtnb hub on" not in line:
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            assert line, "rtnb serve exited early"
        url = line.decode().split("rtnb hub on ", 1)[1].split()[0]
        assert url.startswith("https://127.0.0.1:")
        client_context = ssl.create_default_context(cafile=str(certfile))
        token = make_token(audience=None)
        async with websockets.connect(
            url.replace("https", "wss") + "/ws",
            ssl=client_context,
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as connection:
            assert orjson.loads(await connection.recv())["op"] == "welcome"
            await connection.send(orjson.dumps({"op": "publish", "topic": "plant/7/a", "data": 1, "id": 1}).decode())
            assert orjson.loads(await connection.recv())["op"] == "ack"
        port = int(url.rsplit(":", 1)[1])

        def https_publish(headers: dict[str, str]) -> int:
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=client_context, timeout=10)
            try:
                connection.request("POST", "/publish/plant/7/a", body=b"2", headers=headers)
                return connection.getresponse().status
            finally:
                connection.close()

        assert await asyncio.to_thread(https_publish, {}) == 401
        assert await asyncio.to_thread(https_publish, {"Authorization": f"Bearer {token}"}) == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0


# -- clients ---------------------------------------------------------------------------------------


async def test_async_client_with_a_token() -> None:
    async with running_hub(authenticator=jwt_authenticator()) as server:
        async with AsyncClient(server.url, token=make_token()) as client:
            subscription = await client.subscribe("plant/7/#")
            assert await client.publish("plant/7/temp", {"value": 1}) == 1
            item = await asyncio.wait_for(subscription.__anext__(), 5)
            assert item.topic == "plant/7/temp"
            with pytest.raises(Forbidden):
                await client.publish("plant/8/temp", 1)
            with pytest.raises(Forbidden):
                await client.subscribe("#")
            reply = await client.authenticate(make_token(ttl=3600))
            assert reply["op"] == "authenticated" and reply["subject"] == "device-7"
            with pytest.raises(Unauthorized):
                await client.authenticate(expired_token())
            assert await client.publish("plant/7/temp", {"value": 2}) == 2  # the old grant still holds


async def test_async_client_with_a_bad_token_is_refused() -> None:
    async with running_hub(authenticator=jwt_authenticator()) as server:
        with pytest.raises(Unauthorized):
            await AsyncClient(server.url, token=expired_token(), reconnect=False).connect()
        async with AsyncClient(server.url, reconnect=False) as anonymous:
            with pytest.raises(Unauthorized):  # then the hub closes with 4003
                await anonymous.publish("plant/7/a", 1)


async def test_sync_client_and_simulated_devices_with_a_token() -> None:
    from rtnb import sim

    async with running_hub(authenticator=jwt_authenticator()) as server:

        def use_sync_client() -> int | None:
            with connect(server.url, token=make_token()) as client:
                return client.publish("plant/7/sync", 1)

        assert await asyncio.to_thread(use_sync_client) == 1
        devices = await asyncio.to_thread(
            sim.sensors, server.url, ["plant/+/temp"], devices=("7",), rate=50.0, token=make_token()
        )
        try:
            await wait_until(lambda: devices.published >= 3)
        finally:
            await asyncio.to_thread(devices.stop)
