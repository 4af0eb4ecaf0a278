// RtcLink: the connection to one other peer (perfect negotiation, one data channel).

import { rtcError } from "./errors.js";
import { BUFFER_HIGH, BUFFER_LOW, chunkRanges, drained } from "./files.js";

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
