// rtnb-rtc.js — WebRTC peers that find each other and negotiate over an rtnb hub's topics.
//
//   import { RtnbClient } from "/rtnb.js";
//   import { rtcPeer } from "/rtnb-rtc.js";          // also: import { rtcPeer } from "/rtnb.js"
//   const room = await rtcPeer(new RtnbClient(), "lab", { id: "alice" });
//   room.on("open", ({ peer }) => room.send({ hello: peer }, { to: peer }));
//   room.on("message", ({ peer, data }) => console.log(peer, data));
//   room.on("file", ({ peer, name, blob }) => ...);
//   await room.sendFile(file);
//
// Signalling rides on topics under rtc/<room>/, so the hub's tokens and topic permissions
// apply as to any topic (a peer can only join rooms it may publish to):
//   rtc/<room>/all       hello and bye, to everyone in the room
//   rtc/<room>/to/<id>   offers, answers and ICE candidates for peer <id> (its inbox)
// A peer subscribes to both, then says hello; every peer that hears a hello answers in the
// newcomer's inbox and both make a connection; the impolite one of the pair sends the
// first offer. Perfect negotiation (the "polite" peer yields when both offer at once) then
// lets either side renegotiate at any time, e.g. both adding a camera together. Presence on rtc/<room>/all lists the room's connections
// and says when one leaves, so a peer that vanished mid-negotiation is dropped; an
// established connection ends when WebRTC says so (failed, closed) or on bye.
// Every peer pair shares one ordered, reliable data channel (negotiated, id 0) carrying
// JSON envelopes as text and file chunks as binary. See docs/browser.md.

// The modules beside this one hold the parts, one job each; this one names the public
// face. Bundled into ../../rtnb-rtc.js by scripts/jsbuild/build.mjs (see docs/browser.md).

import { rtcError } from "./errors.js";
import { checkLevel, randomId } from "./names.js";
import { RtcRoom } from "./room.js";

export { FILE_CHUNK_BYTES, chunkRanges } from "./files.js";
export { RtcLink } from "./link.js";
export { checkLevel, isPolite, roomTopics } from "./names.js";
export { RtcRoom } from "./room.js";

/**
 * Join `room`: resolves with an RtcRoom once this peer is listening and has said hello;
 * rejects with code "forbidden" when the client's token may not publish or subscribe
 * there, "unavailable" when the client is not on WebSocket (presence needs it).
 *
 * Options: `id` (this peer's name in the room, one topic level; random by default),
 * `config` (the RTCPeerConnection configuration; `{iceServers: []}` by default: host
 * candidates only, enough on one machine or LAN; add STUN/TURN servers beyond),
 * `joinTimeout` (ms to wait for the client and the hub, 10000).
 */
export async function rtcPeer(client, room, { id = randomId(), config = { iceServers: [] }, joinTimeout = 10000 } = {}) {
  checkLevel("room", room);
  checkLevel("peer id", id);
  const joined = new RtcRoom(client, room, id, config);
  try {
    await withTimeout(joined._join(), joinTimeout, `Joining the room ${room} took longer than ${joinTimeout} ms.`);
  } catch (error) {
    joined.leave();
    throw error;
  }
  // Signals that came while joining wait until the caller's `await` has resumed and its
  // listeners are attached, so that no "peer" or "open" event goes unheard.
  setTimeout(() => joined._release(), 0);
  return joined;
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(rtcError("timeout", message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
