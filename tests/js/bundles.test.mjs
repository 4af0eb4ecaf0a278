// node --test: the shipped bundles (rtnb.js, rtnb-rtc.js) offer exactly what their source
// entry modules export, and the pure functions are the same objects' behaviour. That the
// bundles are up to date with src/ is tests/js/test_bundles.py's job (it needs esbuild).
import assert from "node:assert/strict";
import { test } from "node:test";

import * as rtcBundle from "../../rtnb/server/static/rtnb-rtc.js";
import * as rtcSource from "../../rtnb/server/static/src/rtc/index.js";
import * as clientBundle from "../../rtnb/server/static/rtnb.js";
import * as clientSource from "../../rtnb/server/static/src/rtnb/index.js";

const CLIENT_EXPORTS = ["RtnbClient", "STATUS", "backoffDelay", "decodeCursor", "default", "encodeCursor", "rtcPeer", "topicMatches"];
const RTC_EXPORTS = ["FILE_CHUNK_BYTES", "RtcLink", "RtcRoom", "checkLevel", "chunkRanges", "isPolite", "roomTopics", "rtcPeer"];

test("rtnb.js exports what src/rtnb/index.js exports, and what rtnb.d.ts declares", () => {
  assert.deepEqual(Object.keys(clientBundle).sort(), CLIENT_EXPORTS);
  assert.deepEqual(Object.keys(clientSource).sort(), CLIENT_EXPORTS);
  assert.equal(clientBundle.default, clientBundle.RtnbClient);
  assert.deepEqual(clientBundle.STATUS, clientSource.STATUS);
});

test("rtnb-rtc.js exports what src/rtc/index.js exports", () => {
  assert.deepEqual(Object.keys(rtcBundle).sort(), RTC_EXPORTS);
  assert.deepEqual(Object.keys(rtcSource).sort(), RTC_EXPORTS);
  assert.equal(rtcBundle.FILE_CHUNK_BYTES, rtcSource.FILE_CHUNK_BYTES);
});

test("the bundle's pure functions answer as the sources do", () => {
  const positions = new Map([["plant/boiler/temp", ["e1", 7]], ["plant/ü", ["e2", 0]]]);
  assert.equal(clientBundle.encodeCursor(positions), clientSource.encodeCursor(positions));
  assert.deepEqual(clientBundle.decodeCursor(clientSource.encodeCursor(positions)), positions);
  assert.equal(clientBundle.topicMatches("plant/+/temp", "plant/boiler/temp"), true);
  assert.equal(clientBundle.topicMatches("#", "$rtnb/x"), false);
  const backoff = { initial: 250, max: 10000, factor: 2, jitter: 0.5 };
  assert.equal(clientBundle.backoffDelay(3, backoff, () => 0.5), clientSource.backoffDelay(3, backoff, () => 0.5));
  assert.deepEqual(rtcBundle.chunkRanges(40000), rtcSource.chunkRanges(40000));
  assert.throws(() => rtcBundle.checkLevel("room", "a/b"), { code: "bad_field" });
});
