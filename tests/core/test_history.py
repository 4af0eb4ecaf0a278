from __future__ import annotations

import pytest

from rtnb.core.history import Gap, HistoryLimits, HistoryStore, TopicHistory
from rtnb.core.topics import Pattern


def offsets(messages: list) -> list[int]:
    return [message.offset for message in messages]


def make_history(**limits: object) -> TopicHistory:
    return TopicHistory("t", epoch=100, limits=HistoryLimits(**limits))  # type: ignore[arg-type]


def fill(history: TopicHistory, count: int, ts: float = 0.0) -> None:
    for index in range(count):
        history.append({"i": index}, ts + index)


def test_offsets_are_gap_free_from_one() -> None:
    history = make_history()
    fill(history, 5)
    assert offsets(list(history)) == [1, 2, 3, 4, 5]
    assert history.first_offset == 1 and history.last_offset == 5


def test_count_limit_trims_oldest() -> None:
    history = make_history(max_messages=3)
    fill(history, 10)
    assert offsets(list(history)) == [8, 9, 10]


def test_byte_limit_trims_oldest_but_keeps_the_latest() -> None:
    history = make_history(max_bytes=200)
    fill(history, 20)
    assert history.retained_bytes <= 200
    assert history.last_offset == 20 and offsets(list(history))[-1] == 20
    huge = make_history(max_bytes=10)
    huge.append("x" * 100, 0.0)
    assert len(huge) == 1


def test_since_returns_exactly_what_came_after() -> None:
    history = make_history()
    fill(history, 5)
    gaps, messages = history.since(2)
    assert gaps == [] and offsets(messages) == [3, 4, 5]
    assert history.since(5) == ([], [])
    assert offsets(history.since(0)[1]) == [1, 2, 3, 4, 5]


def test_since_reports_a_gap_for_trimmed_messages() -> None:
    history = make_history(max_messages=3)
    fill(history, 10)
    gaps, messages = history.since(2)
    assert gaps == [Gap("t", 3, 7, "trimmed", 100)]
    assert offsets(messages) == [8, 9, 10]


def test_since_with_another_epoch_reports_epoch_change() -> None:
    history = make_history()
    fill(history, 3)
    gaps, messages = history.since(40, epoch=99)
    assert gaps == [Gap("t", 41, None, "epoch_changed", 100)]
    assert offsets(messages) == [1, 2, 3]


def test_an_offset_ahead_of_history_means_a_new_epoch() -> None:
    history = make_history()
    fill(history, 3)
    gaps, messages = history.since(50)
    assert gaps[0].reason == "epoch_changed" and offsets(messages) == [1, 2, 3]


def test_epoch_change_with_trimmed_new_history_reports_both() -> None:
    history = make_history(max_messages=2)
    fill(history, 5)
    gaps, messages = history.since(9, epoch=1)
    assert [gap.reason for gap in gaps] == ["epoch_changed", "trimmed"]
    assert gaps[1] == Gap("t", 1, 3, "trimmed", 100)
    assert offsets(messages) == [4, 5]


def test_last_n() -> None:
    history = make_history()
    fill(history, 5)
    assert offsets(history.last(2)) == [4, 5]
    assert offsets(history.last(50)) == [1, 2, 3, 4, 5]
    assert history.last(0) == []


def test_age_limit() -> None:
    store = HistoryStore(HistoryLimits(max_age=10))
    for second in range(30):
        store.append("t", second, now=1000.0 + second)
    store.trim_by_age(now=1029.5)
    history = store.get("t")
    assert history is not None
    assert offsets(list(history)) == list(range(21, 31))
    assert store.total_bytes == history.retained_bytes


def test_zero_history_still_assigns_offsets() -> None:
    history = make_history(max_messages=0)
    fill(history, 3)
    assert history.last_offset == 3 and len(history) == 0
    gaps, messages = history.since(1)
    assert gaps == [Gap("t", 2, 3, "trimmed", 100)] and messages == []


def test_store_epochs_are_unique_and_increasing() -> None:
    store = HistoryStore()
    first = store.open("a", now=5.0).epoch
    second = store.open("b", now=5.0).epoch
    assert second > first
    store.reset("a")
    assert store.open("a", now=5.0).epoch > second


def test_store_evicts_least_recently_published_topic() -> None:
    store = HistoryStore(HistoryLimits(max_topics=2))
    store.append("a", 1, now=1.0)
    store.append("b", 1, now=1.0)
    store.append("a", 2, now=1.0)
    store.append("c", 1, now=1.0)
    assert sorted(store.topics()) == ["a", "c"]
    assert store.evicted_topics == 1


def test_store_total_bytes_bound() -> None:
    store = HistoryStore(HistoryLimits(max_total_bytes=2000))
    for index in range(100):
        store.append(f"t/{index}", "x" * 50, now=1.0)
    assert store.total_bytes <= 2000
    assert "t/99" in store


def test_insert_keeps_backplane_offsets_and_detects_holes() -> None:
    from rtnb.core.message import Message

    store = HistoryStore()
    for offset in (1, 2, 3):
        store.insert(Message("t", offset, 7, 1.0, offset))
    store.insert(Message("t", 2, 7, 1.0, 2))  # duplicate, ignored
    history = store.get("t")
    assert history is not None and offsets(list(history)) == [1, 2, 3]
    store.insert(Message("t", 6, 7, 1.0, 6))  # hole: only 6 is known to follow
    assert offsets(list(history)) == [6]
    store.insert(Message("t", 1, 8, 1.0, 1))  # new epoch replaces the topic
    new = store.get("t")
    assert new is not None and new.epoch == 8 and offsets(list(new)) == [1]


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        HistoryLimits(max_messages=-1)
    with pytest.raises(ValueError):
        HistoryLimits(max_age=0)


def test_long_runs_of_gaps_are_coalesced_into_gap_lists_in_order() -> None:
    from rtnb.core.history import COALESCE_GAPS_FROM, GAP_LIST_SIZE, GapList, coalesce_gaps
    from rtnb.core.message import Message

    few = [Gap(f"t/{index}", 1, 2, "trimmed", 5) for index in range(COALESCE_GAPS_FROM - 1)]
    assert coalesce_gaps(few) == few
    many = [Gap(f"t/{index}", 3, None, "epoch_changed") for index in range(GAP_LIST_SIZE + 10)]
    message = Message("t/x", 1, 5, 0.0, 1)
    items = coalesce_gaps([message, *many, message])
    assert [type(item).__name__ for item in items] == ["Message", "GapList", "GapList", "Message"]
    lists = [item for item in items if isinstance(item, GapList)]
    assert [gap for gap_list in lists for gap in gap_list.gaps] == many
    assert lists[0].to_wire()["gaps"][0] == ["t/0", 3, None, "epoch_changed", None]


def test_a_reset_remembers_the_epoch_it_lost_and_eviction_keeps_the_epoch() -> None:
    store = HistoryStore(HistoryLimits(max_topics=1))
    first = store.append("a", 1, now=1.0)
    store.append("b", 1, now=2.0)  # evicts a
    again = store.append("a", 2, now=3.0)
    assert (again.epoch, again.offset) == (first.epoch, 2)
    assert store.reset("a") == (first.epoch, 2)
    assert store.lost_epochs(Pattern.parse("#")) == {"a": (first.epoch, 2)}
    reborn = store.append("a", 3, now=4.0)
    assert reborn.epoch > first.epoch and reborn.offset == 1
