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

/** Largest file chunk sent in one data-channel message (16 KiB crosses every browser). */
export const FILE_CHUNK_BYTES = 16 * 1024;
const BUFFER_HIGH = 1024 * 1024; // wait for the channel to drain past this many buffered bytes
const BUFFER_LOW = 256 * 1024;

function rtcError(code, message) {
  const error = new Error(message);
  error.code = code;
  return error;
}

/** Throws (code "bad_field") unless `name` can be one topic level: no "/", "+", "#", not "$…". */
export function checkLevel(kind, name) {
  if (typeof name !== "string" || name.length === 0 || name.length > 64 || /[/+#\u0000]/.test(name) || name.startsWith("$")) {
    throw rtcError("bad_field", `A ${kind} must be 1-64 characters without "/", "+", "#" or a leading "$": ${JSON.stringify(name)}.`);
  }
  return name;
}

/** The signalling topics of `room` for peer `id`. */
export function roomTopics(room, id) {
  return { all: `rtc/${room}/all`, inbox: `rtc/${room}/to/${id}`, to: (peer) => `rtc/${room}/to/${peer}` };
}

/** In a pair, the peer with the larger id is polite: it yields when both offer at once. */
export function isPolite(id, other) {
  return id > other;
}

/** [start, end) byte ranges that cut `size` bytes into chunks of at most `chunk` bytes. */
export function chunkRanges(size, chunk = FILE_CHUNK_BYTES) {
  const ranges = [];
  for (let start = 0; start < size; start += chunk) ranges.push([start, Math.min(size, start + chunk)]);
  return ranges;
}

function randomId() {
  return "p" + Math.random().toString(36).slice(2, 10);
}

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

function whenOpen(client) {
  if (client.status === "open") return Promise.resolve();
  return new Promise((resolve) => {
    const stop = client.on("status", ({ status }) => {
      if (status === "open") {
        stop();
        resolve();
      }
    });
  });
}

/** A room joined by rtcPeer(): one RtcLink per other peer. Events: see docs/browser.md. */
export class RtcRoom extends EventTarget {
  constructor(client, room, id, config) {
    super();
    this.client = client;
    this.room = room;
    this.id = id;
    this.config = config;
    this.topics = roomTopics(room, id);
    this.peers = new Map();       // peer id -> RtcLink
    this.clients = new Map();     // peer id -> the hub's client id it said hello from
    this.sessions = new Map();    // peer id -> its session: a new one means it joined again
    this.session = randomId();
    this.members = [];            // presence on rtc/<room>/all: [{client, hub?}]
    this.streams = [];            // local media streams sent to every peer
    this.left = false;
    this._stops = [];
    this._held = [];              // signals received before rtcPeer() resolved; null after
  }

  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async _join() {
    const { client, topics } = this;
    await whenOpen(client);
    if (client.transport !== "ws") {
      throw rtcError("unavailable", "rtcPeer needs the client on WebSocket: presence is not offered over SSE or polling.");
    }
    this._stops.push(
      client.on("message", (message) => {
        if (message.topic === topics.all || message.topic === topics.inbox) this._signal(message.data);
      }),
      client.on("leave", (event) => event.topic === topics.all && this._left(event)),
      client.on("join", (event) => event.topic === topics.all && this.members.push({ client: event.client, hub: event.hub })),
    );
    await this._subscribe([topics.all, topics.inbox]);
    await this._announce();
    // After a reconnect the hub knows this peer under a new client id, without its watch.
    this._stops.push(
      client.on("status", ({ status }) => {
        if (status !== "open" || this.left) return;
        this._announce().catch((error) => this._emit("error", { code: error.code, message: error.message }));
      }),
    );
  }

  /** Subscribe to `patterns`; resolves when the hub confirmed them, rejects on a refusal. */
  _subscribe(patterns) {
    const client = this.client;
    const waiting = new Set(patterns.filter((pattern) => !client.subscriptions.has(pattern)));
    return new Promise((resolve, reject) => {
      if (waiting.size === 0) {
        resolve();
        return;
      }
      const stops = [
        client.on("subscribed", ({ topic }) => {
          waiting.delete(topic);
          if (waiting.size === 0) finish();
        }),
        client.on("error", ({ code, message }) => {
          if (code === "forbidden" || code === "unauthorized") finish(rtcError(code, message));
        }),
      ];
      const finish = (error) => {
        for (const stop of stops) stop();
        if (error) reject(error);
        else resolve();
      };
      for (const pattern of patterns) client.subscribe(pattern);
    });
  }

  /** Hello to the room (which proves this peer may publish there) and a presence watch. */
  async _announce() {
    const { client, topics } = this;
    await client.publish(topics.all, this._hello());
    this.members = await client.presence(topics.all, { watch: true });
  }

  _hello(direct = false) {
    return { type: "hello", from: this.id, client: this.client.clientId, session: this.session, direct };
  }

  _release() {
    const held = this._held;
    this._held = null;
    for (const signal of held) this._signal(signal);
  }

  _signal(signal) {
    if (!signal || typeof signal !== "object" || typeof signal.from !== "string" || signal.from === this.id) return;
    if (this.left) return;
    if (this._held) {
      this._held.push(signal);
      return;
    }
    const peer = signal.from;
    switch (signal.type) {
      case "hello": {
        const known = this.sessions.get(peer);
        if (known !== undefined && known !== signal.session) this._drop(peer); // it left and came back
        this.sessions.set(peer, signal.session);
        if (typeof signal.client === "string") this.clients.set(peer, signal.client);
        // Answer a newcomer in its inbox, so that it learns this peer too; a peer that
        // announces itself again after a reconnect (same session) needs no answer.
        if (!signal.direct && known !== signal.session) this._send(peer, this._hello(true));
        this._link(peer);
        return;
      }
      case "description":
      case "candidate":
        this._link(peer).receive(signal);
        return;
      case "bye":
        this._drop(peer);
        return;
      default:
        this._emit("error", { code: "bad_field", message: `Unknown signal ${JSON.stringify(signal.type)} from ${peer}.` });
    }
  }

  /** Publish a signal in `peer`'s inbox. */
  _send(peer, signal) {
    this.client.publish(this.topics.to(peer), { ...signal, from: this.id }).catch((error) => {
      this._emit("error", { code: error.code, message: error.message, peer });
    });
  }

  _link(peer) {
    let link = this.peers.get(peer);
    if (!link) {
      link = new RtcLink(this, peer, isPolite(this.id, peer));
      this.peers.set(peer, link);
      this._emit("peer", { peer, connection: link.connection });
    }
    return link;
  }

  _drop(peer) {
    const link = this.peers.get(peer);
    if (!link) return;
    this.peers.delete(peer);
    this.clients.delete(peer);
    this.sessions.delete(peer);
    link.close();
    this._emit("leave", { peer });
  }

  _left({ client }) {
    this.members = this.members.filter((member) => member.client !== client);
    for (const [peer, clientId] of this.clients) {
      const link = this.peers.get(peer);
      if (clientId === client && link && link.connection.connectionState !== "connected") this._drop(peer);
    }
  }

  /** The RTCPeerConnection to `peer` (by default the first peer's); null when there is none. */
  connection(peer) {
    const link = peer === undefined ? this.peers.values().next().value : this.peers.get(peer);
    return link ? link.connection : null;
  }

  /** Send a JSON value to `to` (a peer id) or every peer whose channel is open; returns how many. */
  send(data, { to } = {}) {
    let sent = 0;
    for (const link of this._targets(to)) if (link.sendData(data)) sent += 1;
    return sent;
  }

  /** Send a File or Blob (name, type) to `to` or every open peer; resolves when all is queued. */
  async sendFile(file, { to } = {}) {
    await Promise.all(this._targets(to).map((link) => link.sendFile(file)));
  }

  /** Send the tracks of a MediaStream (a camera) to every peer, present and future. */
  addStream(stream) {
    this.streams.push(stream);
    for (const link of this.peers.values()) link.addStream(stream);
  }

  _targets(to) {
    if (to === undefined) return [...this.peers.values()];
    const link = this.peers.get(to);
    return link ? [link] : [];
  }

  /** Say bye, close every connection and stop listening. */
  leave() {
    if (this.left) return;
    this.left = true;
    const { client, topics } = this;
    for (const stop of this._stops.splice(0)) stop();
    for (const peer of [...this.peers.keys()]) this._drop(peer);
    if (client.status === "open") {
      client.publish(topics.all, { type: "bye", from: this.id }).catch(() => {});
      client.presence(topics.all, { watch: false }).catch(() => {});
    }
    client.unsubscribe(topics.inbox);
    client.unsubscribe(topics.all);
  }
}

/** The connection to one other peer: perfect negotiation over the hub, one data channel. */
export class RtcLink {
  constructor(room, peer, polite) {
    this.room = room;
    this.peer = peer;
    this.polite = polite;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this._signals = Promise.resolve(); // signals are applied one after the other
    this._sends = Promise.resolve();   // files are sent one after the other
    this._incoming = null;             // the file being received
    this.channel = null;               // made by start()
    const connection = (this.connection = new RTCPeerConnection(room.config));
    connection.onnegotiationneeded = () => this._offer();
    connection.onicecandidate = ({ candidate }) => {
      if (candidate) room._send(peer, { type: "candidate", candidate: candidate.toJSON() });
    };
    connection.ontrack = ({ track, streams }) => room._emit("track", { peer, track, streams });
    connection.onconnectionstatechange = () => {
      const state = connection.connectionState;
      room._emit("state", { peer, state });
      if (state === "failed" || state === "closed") room._drop(peer);
    };
    // The first offer always comes from the impolite peer: the polite one starts (its data
    // channel, its streams) once that offer is applied. Chromium can stall ICE gathering
    // when the very first offers collide and one is rolled back; afterwards either side
    // may renegotiate at any time, and perfect negotiation settles collisions.
    if (!polite) this.start();
  }

  /** Open the data channel (negotiated, id 0, on both sides) and send the room's streams. */
  start() {
    if (this.channel) return;
    const room = this.room;
    const channel = (this.channel = this.connection.createDataChannel("rtnb", { negotiated: true, id: 0 }));
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = BUFFER_LOW;
    channel.onopen = () => room._emit("open", { peer: this.peer });
    channel.onmessage = ({ data }) => this._onChannelMessage(data);
    for (const stream of room.streams) this.addStream(stream);
  }

  async _offer() {
    try {
      this.makingOffer = true;
      await this.connection.setLocalDescription();
      this.room._send(this.peer, { type: "description", description: this.connection.localDescription.toJSON() });
    } catch (error) {
      this.room._emit("error", { code: "negotiation", message: String(error), peer: this.peer });
    } finally {
      this.makingOffer = false;
    }
  }

  receive(signal) {
    this._signals = this._signals
      .then(() => this._apply(signal))
      .catch((error) => this.room._emit("error", { code: "negotiation", message: String(error), peer: this.peer }));
  }

  async _apply({ description, candidate }) {
    const connection = this.connection;
    if (connection.signalingState === "closed") return;
    if (description) {
      const readyForOffer = !this.makingOffer && (connection.signalingState === "stable" || this.settingRemoteAnswer);
      const collision = description.type === "offer" && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      this.settingRemoteAnswer = description.type === "answer";
      await connection.setRemoteDescription(description);
      this.settingRemoteAnswer = false;
      if (description.type === "offer") {
        this.start();
        await connection.setLocalDescription();
        this.room._send(this.peer, { type: "description", description: connection.localDescription.toJSON() });
      }
    } else if (candidate) {
      try {
        await connection.addIceCandidate(candidate);
      } catch (error) {
        if (!this.ignoreOffer) throw error; // candidates of an offer we ignored may fail
      }
    }
  }

  addStream(stream) {
    if (!this.channel) return; // start() sends the room's streams
    for (const track of stream.getTracks()) this.connection.addTrack(track, stream);
  }

  /** Send a JSON value; false when the channel is not open. */
  sendData(data) {
    if (this.channel?.readyState !== "open") return false;
    this.channel.send(JSON.stringify({ kind: "data", data }));
    return true;
  }

  sendFile(file) {
    const send = async () => {
      const channel = this.channel;
      if (channel?.readyState !== "open") throw rtcError("closed", `No open data channel to ${this.peer}.`);
      channel.send(JSON.stringify({ kind: "file", name: file.name ?? "blob", type: file.type, size: file.size }));
      for (const [start, end] of chunkRanges(file.size)) {
        if (channel.bufferedAmount > BUFFER_HIGH) await drained(channel);
        if (channel.readyState !== "open") throw rtcError("closed", `The data channel to ${this.peer} closed mid-file.`);
        channel.send(await file.slice(start, end).arrayBuffer());
      }
      channel.send(JSON.stringify({ kind: "file-end" }));
    };
    const result = this._sends.then(send, send);
    this._sends = result.catch(() => {});
    return result;
  }

  _onChannelMessage(data) {
    const room = this.room;
    if (typeof data !== "string") {
      if (this._incoming) this._incoming.parts.push(data);
      return;
    }
    let envelope;
    try {
      envelope = JSON.parse(data);
    } catch (error) {
      room._emit("error", { code: "bad_json", message: "A data-channel message was not JSON.", peer: this.peer });
      return;
    }
    if (envelope.kind === "data") {
      room._emit("message", { peer: this.peer, data: envelope.data });
    } else if (envelope.kind === "file") {
      this._incoming = { name: String(envelope.name), type: String(envelope.type || ""), size: envelope.size, parts: [] };
    } else if (envelope.kind === "file-end" && this._incoming) {
      const { name, type, size, parts } = this._incoming;
      this._incoming = null;
      const blob = new Blob(parts, { type });
      if (blob.size !== size) {
        room._emit("error", { code: "bad_field", message: `File ${name}: ${blob.size} bytes arrived, ${size} announced.`, peer: this.peer });
        return;
      }
      room._emit("file", { peer: this.peer, name, type, size, blob });
    }
  }

  close() {
    this.channel?.close();
    this.connection.close();
  }
}

function drained(channel) {
  return new Promise((resolve) => {
    const done = () => {
      channel.removeEventListener("bufferedamountlow", done);
      channel.removeEventListener("close", done);
      resolve();
    };
    channel.addEventListener("bufferedamountlow", done);
    channel.addEventListener("close", done);
  });
}
