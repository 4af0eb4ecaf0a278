// rtnb.js — the browser client of an rtnb hub. A dependency-free ES module.
//
//   import { RtnbClient } from "/rtnb.js";
//   const client = new RtnbClient();                 // the hub that served this file
//   client.on("message", (m) => console.log(m.topic, m.offset, m.data));
//   client.subscribe("plant/+/temp", { last: 100 });
//   await client.publish("plant/boiler/cmd", { setpoint: 80 });
//
// Transports, tried in order until one opens: WebSocket (/ws), Server-Sent
// Events (/sse) and long polling (/poll); publishing without WebSocket uses
// POST /publish/<topic>. Reconnection uses exponential backoff with jitter and
// a cap, and resumes from the last offset seen per topic (with its epoch), so
// nothing is lost silently: what the hub no longer holds arrives as a "gap"
// event. Publishes made while offline wait in a bounded queue.
// See docs/browser.md.

// The modules beside this one hold the parts, one job each; this one names the public
// face. Bundled into ../../rtnb.js by scripts/jsbuild/build.mjs (see docs/browser.md).

import { RtnbClient } from "./client.js";

export { backoffDelay } from "./backoff.js";
export { RtnbClient, STATUS } from "./client.js";
export { decodeCursor, encodeCursor } from "./cursor.js";
export { topicMatches } from "./topics.js";

/**
 * Join a WebRTC room whose peers signal over this hub's topics (rtnb-rtc.js, beside this
 * file, loaded on first use so that rtnb.js stays small): see docs/browser.md.
 */
export function rtcPeer(client, room, options) {
  return import(new URL("./rtnb-rtc.js", import.meta.url).href).then((rtc) => rtc.rtcPeer(client, room, options));
}

export default RtnbClient;
