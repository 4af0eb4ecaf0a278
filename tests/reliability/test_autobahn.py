"""Protocol compliance: Autobahn's fuzzing cases against the hub's own WebSocket stack.

The echo endpoint is ``EchoHubServer`` (tests/reliability/echo_server.py): the hub's
HTTP server, handler, frame reader and limits, with only message handling
replaced by an echo. Groups 1-7 and 10 run here; 9, 12 and 13 (limits,
compression) run with ``python scripts/autobahn.py`` (see docs/compliance.md).

The hostile-peer tests below check the same behaviour on the real ``/ws``
route of a running hub, where the hub's protocol runs above the frames.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest
from echo_server import EchoHubServer
from raw_websocket import build_frame, open_raw

from rtnb.core.close_codes import is_valid_close_code
from rtnb.server._wsprotocol import truncate_reason
from rtnb.server.hub import Hub, HubConfig
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, wait_until

kosoku = pytest.importorskip("kosoku", reason="kosoku (Autobahn runner) is not installed: pip install -e '.[test]'")

CORE_GROUPS = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]

#: every case allowed to end other than OK/OK, with the reason in docs/compliance.md
DOCUMENTED_NOT_OK = {
    "7.1.6": ("INFORMATIONAL", "INFORMATIONAL"),
    "7.13.1": ("INFORMATIONAL", "INFORMATIONAL"),
    "7.13.2": ("INFORMATIONAL", "INFORMATIONAL"),
}


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoHubServer]:
    server = EchoHubServer(Hub(HubConfig(ping_interval=0)))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def run_cases(url: str, cases: list[str]) -> list[object]:
    try:
        return list(await kosoku.run_fuzzingclient(url, cases=cases, concurrency=4))
    except kosoku.FailureError as failure:
        return list(failure.results)


async def test_core_groups_pass_with_only_documented_exceptions(echo_server: EchoHubServer) -> None:
    results = await run_cases(echo_server.ws_url, CORE_GROUPS)
    assert len(results) > 240, f"only {len(results)} cases ran"
    failed = [
        f"{result.case_id}: {result.behavior.value}/{result.behavior_close.value} {result.result_close}"
        for result in results
        if not result.passed
    ]
    assert failed == [], "Autobahn cases FAILED:\n" + "\n".join(failed)
    verdicts = {
        result.case_id: (result.behavior.value, result.behavior_close.value)
        for result in results
        if (result.behavior.value, result.behavior_close.value) != ("OK", "OK")
    }
    undocumented = {case: verdict for case, verdict in verdicts.items() if DOCUMENTED_NOT_OK.get(case) != verdict}
    assert undocumented == {}, "a verdict is not OK and not explained: update docs/compliance.md and DOCUMENTED_NOT_OK"
    by_case = {result.case_id: result for result in results}
    for case in (f"7.9.{index}" for index in range(1, 10)):  # plain Tornado echoes these codes
        assert by_case[case].remote_close_code == 1002, case
    assert by_case["6.3.1"].remote_close_code == 1007  # invalid UTF-8 closes with 1007, not a TCP drop


def test_close_code_rules() -> None:
    valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
    invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
    assert [code for code in valid if not is_valid_close_code(code)] == []
    assert [code for code in invalid if is_valid_close_code(code)] == []


def test_close_reason_is_cut_on_a_character_boundary() -> None:
    reason = "é" * 100  # 200 bytes in UTF-8
    cut = truncate_reason(reason)
    assert len(cut.encode("utf-8")) <= 123
    assert cut == "é" * 61
    assert truncate_reason("short") == "short"


async def test_hub_route_fails_bad_close_code_with_1002(hub_server: HubServer) -> None:
    peer = await open_raw(hub_server.ws_url)
    try:
        await peer.send(build_frame(0x8, struct.pack("!H", 1005)))
        code, _reason = await peer.read_close()
        assert code == 1002
        assert await peer.at_eof()
    finally:
        peer.close()
    await wait_until(lambda: hub_server.hub.connection_count == 0)


async def test_hub_route_fails_invalid_utf8_with_1007_and_others_carry_on(hub_server: HubServer) -> None:
    async with WirePeer(hub_server.ws_url) as bystander:
        peer = await open_raw(hub_server.ws_url)
        try:
            await peer.send(build_frame(0x1, b'{"op":"ping","x":"\xff\xfe"}'))
            code, reason = await peer.read_close()
            assert (code, reason) == (1007, "text is not valid UTF-8")
        finally:
            peer.close()
        assert (await bystander.request({"op": "ping"}))["op"] == "pong"


async def test_hub_route_rejects_unmasked_and_reserved_frames(hub_server: HubServer) -> None:
    for frame in (
        build_frame(0x1, b'{"op":"ping"}', masked=False),
        build_frame(0x1, b"{}", reserved=0x40),
        build_frame(0x3, b""),
        build_frame(0x9, b"", final=False),
        build_frame(0x0, b"x"),
    ):
        peer = await open_raw(hub_server.ws_url)
        try:
            await peer.send(frame)
            code, _reason = await peer.read_close()
            assert code == 1002, frame[:2]
        finally:
            peer.close()


async def test_oversize_frame_gets_1009_and_its_payload_is_never_buffered(hub_server: HubServer) -> None:
    limit = hub_server.hub.limits.max_frame_bytes
    peer = await open_raw(hub_server.ws_url)
    try:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, 8 * limit) + b"\x00\x00\x00\x00"
        await peer.send(header + b"x" * limit)  # a promise of 8 MiB; the hub must not wait to buffer it
        code, _reason = await peer.read_close()
        assert code == 1009
    finally:
        peer.close()
    await wait_until(lambda: hub_server.hub.connection_count == 0)


async def test_peer_that_never_answers_the_close_is_dropped_after_close_timeout() -> None:
    config = HubConfig(close_timeout=0.3, ping_interval=0)
    async with HubServer(Hub(config)) as server:
        peer = await open_raw(server.ws_url)
        try:
            await peer.send(build_frame(0x1, b"\xc0"))  # invalid UTF-8: the hub fails the connection
            assert (await peer.read_close())[0] == 1007
            await peer.send(build_frame(0x1, b'{"op":"ping"}'))  # ignored: the hub is closing
            assert await peer.at_eof(timeout=3.0)
        finally:
            peer.close()
        await wait_until(lambda: server.hub.connection_count == 0)
