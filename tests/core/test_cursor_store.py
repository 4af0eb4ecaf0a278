"""Stored resume cursors: deltas, chains, expiry and bounds, without sockets."""

from __future__ import annotations

from rtnb.core.cursor import INLINE_CURSOR_LIMIT, STORED_CURSOR_PREFIX, read_cursor
from rtnb.core.cursor_store import MAX_CHAIN, CursorIssuer, CursorStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wide(count: int, offset: int = 1) -> dict[str, tuple[int, int]]:
    return {f"plant/sensor-{index}/temp": (1000 + index, offset) for index in range(count)}


def test_small_cursors_stay_inline_and_name_their_patterns() -> None:
    issuer = CursorIssuer()
    text = issuer.issue({"a/b": (5, 3)}, ["a/#"], issuer="stream")
    point = read_cursor(text)
    assert point.positions == {"a/b": (5, 3)} and point.patterns == frozenset({"a/#"})
    assert len(issuer.store) == 0


def test_wide_cursors_are_stored_with_a_constant_size_and_resolve_exactly() -> None:
    issuer = CursorIssuer()
    positions = wide(10_000)
    text = issuer.issue(positions, ["plant/#"], issuer="group")
    assert text.startswith(STORED_CURSOR_PREFIX) and len(text) < 40 < INLINE_CURSOR_LIMIT
    head = issuer.store.load(read_cursor(text).stored_id or "")
    assert head is not None and head.positions == positions and head.patterns == frozenset({"plant/#"})


def test_later_cursors_of_an_issuer_are_deltas_that_resolve_to_the_full_map() -> None:
    store = CursorStore()
    issuer = CursorIssuer(store)
    positions = wide(5_000)
    issued = []
    for step in range(3 * MAX_CHAIN):
        positions[f"plant/sensor-{step}/temp"] = (1000 + step, 2 + step)
        if step == 10:
            del positions["plant/sensor-4999/temp"]
        issued.append((issuer.issue(positions, ["plant/#"], issuer="group"), dict(positions)))
    # a full record per chain, small deltas in between: far fewer entries than 96 full maps
    assert store.entries < 4 * len(positions)
    for text, expected in issued:
        head = issuer.store.load(text[1:])
        assert head is not None and head.positions == expected


def test_records_expire_after_the_ttl_and_chains_restart_before_their_start_expires() -> None:
    clock = FakeClock()
    issuer = CursorIssuer(CursorStore(ttl=100, clock=clock))
    positions = wide(1_000)
    first = issuer.issue(positions, ["plant/#"], issuer="group")
    clock.now = 60  # past half the ttl: the next cursor starts a new chain
    positions["plant/sensor-1/temp"] = (1001, 9)
    second = issuer.issue(positions, ["plant/#"], issuer="group")
    clock.now = 101
    assert issuer.store.load(first[1:]) is None
    head = issuer.store.load(second[1:])
    assert head is not None and head.positions == positions


def test_the_store_holds_at_most_max_entries_oldest_first() -> None:
    issuer = CursorIssuer(CursorStore(max_entries=2_500))
    texts = [issuer.issue(wide(1_000, offset), ["plant/#"]) for offset in range(1, 5)]
    assert issuer.store.entries <= 2_500
    assert issuer.store.load(texts[0][1:]) is None
    assert issuer.store.load(texts[-1][1:]) is not None


def test_an_unknown_or_forged_id_is_expired() -> None:
    issuer = CursorIssuer()
    assert issuer.store.load("AAAAAAAAAAAAAAAA") is None
