"""Resume bookkeeping, pure: duplicates, gaps, epochs and since cursors without sockets."""

from __future__ import annotations

from rtnb.client import ResumeTracker
from rtnb.client._resume import CHECKPOINT_MIN_TOPICS, CHECKPOINT_RENEW_TOPICS
from rtnb.core.history import Gap
from rtnb.core.topics import Pattern

EPOCH = 100
NEW_EPOCH = 200


def feed(tracker: ResumeTracker, topic: str, epoch: int, offsets: range | list[int]) -> list[object]:
    """What the application would see for these messages: gaps and delivered offsets."""
    seen: list[object] = []
    for offset in offsets:
        deliver, gaps = tracker.on_message(topic, epoch, offset)
        seen.extend(gaps)
        if deliver:
            seen.append(offset)
    return seen


def test_in_order_messages_pass_and_the_cursor_follows() -> None:
    tracker = ResumeTracker()
    assert feed(tracker, "t", EPOCH, range(1, 6)) == [1, 2, 3, 4, 5]
    assert tracker.positions == {"t": (EPOCH, 5)}
    assert tracker.cursor == {"t": (EPOCH, 5)}


def test_replayed_messages_are_dropped_as_duplicates() -> None:
    tracker = ResumeTracker()
    feed(tracker, "t", EPOCH, range(1, 6))
    assert feed(tracker, "t", EPOCH, [3, 4, 5, 6, 7]) == [6, 7]


def test_an_unexplained_jump_is_reported_as_a_missing_gap() -> None:
    tracker = ResumeTracker()
    feed(tracker, "t", EPOCH, [1, 2])
    assert feed(tracker, "t", EPOCH, [5]) == [Gap("t", 3, 4, "missing", EPOCH), 5]


def test_an_unannounced_epoch_change_is_reported() -> None:
    tracker = ResumeTracker()
    feed(tracker, "t", EPOCH, [1, 2, 3])
    assert feed(tracker, "t", NEW_EPOCH, [1]) == [Gap("t", 4, None, "epoch_changed", NEW_EPOCH), 1]
    feed(tracker, "u", EPOCH, [1])
    assert feed(tracker, "u", NEW_EPOCH, [3]) == [
        Gap("u", 2, None, "epoch_changed", NEW_EPOCH),
        Gap("u", 1, 2, "missing", NEW_EPOCH),
        3,
    ]


def test_a_hub_trimmed_gap_moves_the_cursor_so_what_follows_is_accepted() -> None:
    tracker = ResumeTracker()
    feed(tracker, "t", EPOCH, [1, 2])
    trimmed = Gap("t", 3, 7, "trimmed", EPOCH)
    assert tracker.on_gap(trimmed) == [trimmed]
    assert feed(tracker, "t", EPOCH, [8, 9]) == [8, 9]
    assert tracker.on_gap(trimmed) == []  # the same notice again is about the past


def test_an_announced_epoch_change_without_epoch_accepts_the_new_start() -> None:
    tracker = ResumeTracker()
    feed(tracker, "t", EPOCH, [1, 2, 3])
    gone = Gap("t", 4, None, "epoch_changed")
    assert tracker.on_gap(gone) == [gone]
    assert tracker.cursor["t"] == (None, 0)
    assert feed(tracker, "t", NEW_EPOCH, [1, 2]) == [1, 2]
    assert tracker.cursor["t"] == (NEW_EPOCH, 2)


def test_an_announced_epoch_change_with_epoch_is_not_reported_twice() -> None:
    tracker = ResumeTracker()
    feed(tracker, "t", EPOCH, [1])
    changed = Gap("t", 2, None, "epoch_changed", NEW_EPOCH)
    assert tracker.on_gap(changed) == [changed]
    assert feed(tracker, "t", NEW_EPOCH, [1]) == [1]
    assert tracker.on_gap(changed) == []


def test_a_trimmed_gap_in_a_new_epoch_implies_the_epoch_change() -> None:
    tracker = ResumeTracker()
    feed(tracker, "t", EPOCH, [1])
    trimmed = Gap("t", 1, 4, "trimmed", NEW_EPOCH)
    assert tracker.on_gap(trimmed) == [Gap("t", 2, None, "epoch_changed", NEW_EPOCH), trimmed]
    assert feed(tracker, "t", NEW_EPOCH, [5]) == [5]


def test_seeds_start_unknown_topics_only() -> None:
    tracker = ResumeTracker()
    feed(tracker, "t", EPOCH, [1, 2])
    assert not tracker.seed("t", EPOCH, 0)
    assert tracker.seed("quiet", EPOCH, 40)
    assert feed(tracker, "quiet", EPOCH, [40, 41]) == [41]
    assert tracker.positions == {"t": (EPOCH, 2), "quiet": (EPOCH, 41)}


def test_since_covers_the_topics_a_pattern_matches_in_the_wire_form() -> None:
    tracker = ResumeTracker()
    feed(tracker, "plant/boiler/temp", EPOCH, [1, 2])
    feed(tracker, "plant/pump/temp", EPOCH, [1])
    feed(tracker, "office/temp", EPOCH, [1])
    tracker.on_gap(Gap("plant/gone/temp", 5, None, "epoch_changed"))
    assert tracker.since_for(Pattern.parse("plant/+/temp")) == {
        "plant/boiler/temp": {"offset": 2, "epoch": EPOCH},
        "plant/pump/temp": {"offset": 1, "epoch": EPOCH},
        "plant/gone/temp": {"offset": 0},
    }


def test_forget_drops_topics_no_subscription_covers() -> None:
    tracker = ResumeTracker()
    feed(tracker, "a/x", EPOCH, [1])
    feed(tracker, "b/x", EPOCH, [1])
    assert tracker.forget(Pattern.parse("a/#").matches) == ["b/x"]
    assert list(tracker.topics()) == ["a/x"]
    assert "b/x" not in tracker.positions


def test_checkpoint_resume_sends_the_cursor_and_only_topics_moved_after_it() -> None:
    tracker = ResumeTracker()
    for index in range(CHECKPOINT_MIN_TOPICS):
        tracker.seed(f"w/{index}", 7, 1)
    assert tracker.checkpoint_due() and tracker.resume_for(Pattern.parse("w/#")) == {
        "since": tracker.since_for(Pattern.parse("w/#"))
    }
    tracker.on_message("w/1", 7, 2)  # before the checkpoint: covered by it
    tracker.set_checkpoint("~abcdefgh12", ["w/#"])
    assert not tracker.checkpoint_due()
    tracker.on_message("w/2", 7, 2)
    tracker.on_gap(Gap("w/3", 2, 5, "trimmed", 7))
    tracker.seed("w/new", 7, 0)
    assert tracker.resume_for(Pattern.parse("w/#")) == {
        "since": "~abcdefgh12",
        "delta": {
            "w/2": {"offset": 2, "epoch": 7},
            "w/3": {"offset": 5, "epoch": 7},
            "w/new": {"offset": 0, "epoch": 7},
        },
    }
    # a pattern the checkpoint does not cover resumes with its full map
    assert "delta" not in tracker.resume_for(Pattern.parse("w/+"))
    tracker.drop_checkpoint()
    assert isinstance(tracker.resume_for(Pattern.parse("w/#"))["since"], dict)


def test_a_topic_of_unknown_epoch_stays_in_the_delta_after_a_checkpoint() -> None:
    tracker = ResumeTracker()
    tracker.on_message("t", 3, 9)
    tracker.on_gap(Gap("t", 10, None, "epoch_changed", None))  # a reset, new epoch unnamed
    tracker.set_checkpoint("~abcdefgh12", ["t"])
    assert tracker.resume_for(Pattern.parse("t")) == {"since": "~abcdefgh12", "delta": {"t": {"offset": 0}}}


def test_checkpoints_renew_once_enough_topics_moved() -> None:
    tracker = ResumeTracker()
    for index in range(CHECKPOINT_MIN_TOPICS):
        tracker.seed(f"w/{index}", 1, 0)
    tracker.set_checkpoint("~abcdefgh12", ["w/#"])
    for index in range(CHECKPOINT_RENEW_TOPICS - 1):
        tracker.on_message(f"w/{index}", 1, 1)
    assert not tracker.checkpoint_due()
    tracker.on_message("w/200", 1, 1)
    assert tracker.checkpoint_due() and tracker.moved_since_checkpoint == CHECKPOINT_RENEW_TOPICS
