// node --test: the pure parts of rtnb.js (topic matching, resume cursors, backoff) and the
// client's lifecycle rule that needs no network (close() before the deferred connect).
// Run by tests/js/test_node_suite.py, so `./dev test` runs it.
import assert from "node:assert/strict";
import { test } from "node:test";

// Each from its source module (rtnb/server/static/src/rtnb/); tests/js/bundles.test.mjs checks
// that the shipped bundle exports the same.
import { backoffDelay } from "../../rtnb/server/static/src/rtnb/backoff.js";
import { RtnbClient } from "../../rtnb/server/static/src/rtnb/client.js";
import { decodeCursor, encodeCursor } from "../../rtnb/server/static/src/rtnb/cursor.js";
import { topicMatches } from "../../rtnb/server/static/src/rtnb/topics.js";

test("a concrete pattern matches only its own topic", () => {
  assert.equal(topicMatches("plant/boiler/temp", "plant/boiler/temp"), true);
  assert.equal(topicMatches("plant/boiler/temp", "plant/boiler"), false);
  assert.equal(topicMatches("plant/boiler", "plant/boiler/temp"), false);
});

test("+ matches exactly one level", () => {
  assert.equal(topicMatches("plant/+/temp", "plant/boiler/temp"), true);
  assert.equal(topicMatches("plant/+/temp", "plant/boiler/pump/temp"), false);
  assert.equal(topicMatches("plant/+", "plant"), false);
  assert.equal(topicMatches("+/+", "a/b"), true);
});

test("# matches the rest, zero levels included", () => {
  assert.equal(topicMatches("plant/#", "plant"), true);
  assert.equal(topicMatches("plant/#", "plant/boiler/temp"), true);
  assert.equal(topicMatches("plant/#", "plants/boiler"), false);
  assert.equal(topicMatches("#", "anything/at/all"), true);
});

test("a pattern starting with a wildcard never matches a $ system topic", () => {
  assert.equal(topicMatches("#", "$rtnb/bridge/mqtt"), false);
  assert.equal(topicMatches("+/bridge/mqtt", "$rtnb/bridge/mqtt"), false);
  assert.equal(topicMatches("$rtnb/#", "$rtnb/bridge/mqtt"), true);
});

test("a cursor decodes to the positions it encodes, non-ASCII topics included", () => {
  const positions = new Map([
    ["plant/boiler/temp", [1795779517825, 42]],
    ["usine/chaudière/température", [7, 1]],
  ]);
  const cursor = encodeCursor(positions);
  assert.match(cursor, /^[A-Za-z0-9_-]+$/, "a cursor is URL-safe base64 without padding");
  assert.deepEqual(decodeCursor(cursor), positions);
});

test("an unreadable cursor decodes to no positions instead of throwing", () => {
  assert.deepEqual(decodeCursor("not a cursor!"), new Map());
  assert.deepEqual(decodeCursor(""), new Map());
  const wrongShape = Buffer.from(JSON.stringify({ a: [1], b: "x", c: [2, 3] })).toString("base64url");
  assert.deepEqual(decodeCursor(wrongShape), new Map([["c", [2, 3]]]));
});

const BACKOFF = { initial: 250, max: 10000, factor: 2, jitter: 0.5 };

test("backoff doubles from its initial delay up to its cap", () => {
  const noJitter = () => 0;
  const delays = [0, 1, 2, 3, 5, 6, 20].map((attempts) => backoffDelay(attempts, BACKOFF, noJitter));
  assert.deepEqual(delays, [250, 500, 1000, 2000, 8000, 10000, 10000]);
});

test("jitter takes off at most its share of the delay", () => {
  assert.equal(backoffDelay(2, BACKOFF, () => 1), 500);
  assert.equal(backoffDelay(2, BACKOFF, () => 0.5), 750);
  for (let index = 0; index < 200; index++) {
    const delay = backoffDelay(3, BACKOFF);
    assert.ok(delay > 1000 && delay <= 2000, `delay ${delay} outside (1000, 2000]`);
  }
});

test("a client closed in the tick that created it never starts connecting", async () => {
  const client = new RtnbClient("http://127.0.0.1:9", { transports: ["ws"] });
  const statuses = [];
  client.on("status", ({ status }) => statuses.push(status));
  client.subscribe("plant/#");
  client.close();
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(client.status, "closed");
  assert.deepEqual(statuses, []);
});

test("a client without autoConnect waits for connect()", async () => {
  const client = new RtnbClient("http://127.0.0.1:9", { autoConnect: false });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(client.status, "closed");
  assert.equal(client.baseUrl, "http://127.0.0.1:9");
});

test("subscribe's since seeds positions of matching topics the client does not know yet", () => {
  const client = new RtnbClient("http://127.0.0.1:9", { autoConnect: false });
  client.positions.set("plant/a/temp", [5, 40]);
  client.subscribe("plant/+/temp", {
    since: { "plant/a/temp": [5, 1], "plant/b/temp": [5, 7], "other/topic": [5, 9] },
  });
  client.subscribe("lab/#", { since: new Map([["lab/x", [3, 2]]]) });
  assert.deepEqual(Object.fromEntries(client.positions), {
    "plant/a/temp": [5, 40], // what the client saw wins over an older saved position
    "plant/b/temp": [5, 7],
    "lab/x": [3, 2],
  });
});
