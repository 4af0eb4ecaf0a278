// node --test: the pure parts of rtnb-rtc.js (room and peer names, topics, politeness,
// file chunking). The negotiation itself runs in Chromium: tests/browser/test_rtc_page.py.
import assert from "node:assert/strict";
import { test } from "node:test";

// From the source modules (rtnb/server/static/src/rtc/); see tests/js/bundles.test.mjs.
import { FILE_CHUNK_BYTES, chunkRanges } from "../../rtnb/server/static/src/rtc/files.js";
import { checkLevel, isPolite, roomTopics } from "../../rtnb/server/static/src/rtc/names.js";

test("a room's signalling topics: one for all, one inbox per peer", () => {
  const topics = roomTopics("lab", "alice");
  assert.equal(topics.all, "rtc/lab/all");
  assert.equal(topics.inbox, "rtc/lab/to/alice");
  assert.equal(topics.to("bob"), "rtc/lab/to/bob");
});

test("rooms and peer ids must be one topic level", () => {
  assert.equal(checkLevel("room", "lab-1"), "lab-1");
  for (const bad of ["", "a/b", "+", "#", "room#1", "$system", "x".repeat(65), 7, null]) {
    assert.throws(() => checkLevel("room", bad), (error) => error.code === "bad_field", `accepted ${bad}`);
  }
});

test("exactly one peer of a pair is polite, whatever the order", () => {
  for (const [a, b] of [["alice", "bob"], ["p1", "p2"], ["z", "a"]]) {
    assert.notEqual(isPolite(a, b), isPolite(b, a));
  }
});

test("a file is cut into contiguous chunks of at most the chunk size", () => {
  assert.deepEqual(chunkRanges(0), []);
  assert.deepEqual(chunkRanges(10, 4), [[0, 4], [4, 8], [8, 10]]);
  assert.deepEqual(chunkRanges(8, 4), [[0, 4], [4, 8]]);
  const ranges = chunkRanges(100_000);
  assert.equal(ranges.length, Math.ceil(100_000 / FILE_CHUNK_BYTES));
  assert.equal(ranges.at(-1)[1], 100_000);
  for (let index = 1; index < ranges.length; index++) assert.equal(ranges[index][0], ranges[index - 1][1]);
});
