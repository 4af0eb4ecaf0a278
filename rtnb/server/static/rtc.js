// The /rtc page: peers of one room, found and connected through the hub (rtnb-rtc.js),
// sending text, files and a camera stream to each other. ?room=, ?id= and ?token= set the
// room, this peer's name and a JWT. window.rtnbRtc holds the state, for debugging and
// for tests/browser/test_rtc_page.py.
import { RtnbClient } from "../rtnb.js";
import { rtcPeer } from "../rtnb-rtc.js";

const query = new URLSearchParams(location.search);
const roomName = query.get("room") || "lobby";
const element = (id) => document.getElementById(id);
const state = (window.rtnbRtc = { client: null, room: null, open: new Set(), received: [], files: [], tracks: 0, error: null });

const client = (state.client = new RtnbClient(undefined, { transports: ["ws"], token: query.get("token") }));
client.on("status", ({ status }) => {
  element("status").dataset.status = status;
  element("status").textContent = status;
});
element("room").textContent = roomName;

function line(list, text, attributes = {}) {
  const item = document.createElement("li");
  item.textContent = text;
  Object.assign(item.dataset, attributes);
  element(list).append(item);
  return item;
}

function peerItem(peer) {
  return document.querySelector(`#peers li[data-peer="${CSS.escape(peer)}"]`);
}

function showError({ code, message }) {
  state.error = { code, message };
  const box = element("error");
  box.hidden = false;
  box.dataset.code = code;
  box.textContent = `${code}: ${message}`;
}

function join(room) {
  state.room = room;
  element("me").textContent = room.id;
  room.on("peer", ({ peer }) => peerItem(peer) || line("peers", peer, { peer, state: "new" }));
  room.on("state", ({ peer, state: connectionState }) => {
    const item = peerItem(peer);
    if (item) {
      item.dataset.state = connectionState;
      item.textContent = `${peer} (${connectionState})`;
    }
  });
  room.on("open", ({ peer }) => {
    state.open.add(peer);
    peerItem(peer)?.setAttribute("data-open", "");
  });
  room.on("leave", ({ peer }) => {
    state.open.delete(peer);
    peerItem(peer)?.remove();
    document.querySelector(`#videos video[data-peer="${CSS.escape(peer)}"]`)?.remove();
  });
  room.on("message", ({ peer, data }) => {
    state.received.push({ peer, data });
    line("messages", `${peer}: ${data?.text ?? JSON.stringify(data)}`, { peer });
  });
  room.on("file", (file) => {
    state.files.push(file);
    const item = line("files", "", { peer: file.peer });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(file.blob);
    link.download = file.name;
    link.textContent = `${file.name} (${file.size} bytes) from ${file.peer}`;
    item.append(link);
  });
  room.on("track", ({ peer, streams }) => {
    state.tracks += 1;
    let video = document.querySelector(`#videos video[data-peer="${CSS.escape(peer)}"]`);
    if (!video) {
      video = Object.assign(document.createElement("video"), { autoplay: true, playsInline: true, muted: true });
      video.dataset.peer = peer;
      element("videos").append(video);
    }
    video.srcObject = streams[0] ?? null;
  });
  room.on("error", (error) => console.warn("rtc", error.code, error.message));
  addEventListener("pagehide", () => room.leave());
}

element("chat").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = element("text").value;
  if (!state.room || !text) return;
  const sent = state.room.send({ text });
  line("messages", `me → ${sent} peer${sent === 1 ? "" : "s"}: ${text}`, { me: "" });
  element("text").value = "";
});

element("send-file").addEventListener("click", async () => {
  const file = element("file").files[0];
  if (!state.room || !file) return;
  try {
    await state.room.sendFile(file);
    line("files", `sent ${file.name} (${file.size} bytes)`, { sent: "" });
  } catch (error) {
    showError(error);
  }
});

element("camera").addEventListener("click", async () => {
  const status = element("camera-status");
  try {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error("this browser offers no camera access here (HTTPS or localhost needed)");
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    element("local").srcObject = stream;
    state.room?.addStream(stream);
    status.textContent = "camera on";
    status.dataset.state = "on";
  } catch (error) {
    status.textContent = `no camera: ${error.message}`;
    status.dataset.state = "none";
  }
});

rtcPeer(client, roomName, { id: query.get("id") || undefined }).then(join, showError);
