// Typed use of rtnb.js and rtnb-rtc.js: checked by `tsc --noEmit -p tests/js`. Each line after an
// expect-error directive must fail to type-check, so the declarations stay strict where they should.
import { RtnbClient, STATUS, backoffDelay, decodeCursor, encodeCursor, rtcPeer, topicMatches } from "../../../rtnb/server/static/rtnb.js";
import type { Gap, Message, Position, StatusDetail } from "../../../rtnb/server/static/rtnb.js";
import { chunkRanges, isPolite, roomTopics } from "../../../rtnb/server/static/rtnb-rtc.js";
import type { RtcRoom } from "../../../rtnb/server/static/rtnb-rtc.js";

const client = new RtnbClient("http://127.0.0.1:8765", {
  transports: ["ws", "sse"],
  backoff: { max: 5000 },
  token: "eyJ...",
});
// @ts-expect-error: no such transport
new RtnbClient(undefined, { transports: ["carrier-pigeon"] });

const stopMessages: () => void = client.on("message", (message: Message) => {
  const offset: number = message.offset;
  const epoch: number = message.epoch;
  console.log(message.topic, offset, epoch, message.data);
});
stopMessages();
client.on("gap", (gap: Gap) => {
  const to: number | null = gap.to;
  // @ts-expect-error: `to` may be null (epoch_changed)
  const width: number = gap.to - gap.from;
  console.log(gap.reason, to, width);
});
client.on("status", ({ status, transport, attempts }: StatusDetail) => {
  if (status === STATUS.OPEN) console.log(transport, attempts);
  // @ts-expect-error: not a status
  if (status === "opened") console.log("never");
});
client.on("error", ({ code, message }) => console.log(code.toUpperCase(), message));
client.on("leave", ({ client: who, topic }) => console.log(who, topic));
client.addEventListener("message", (event) => console.log(event.detail.topic));

client.subscribe("plant/+/temp", { last: 100 }).subscribe("plant/#", { since: { "plant/a": [1, 2] } });
// @ts-expect-error: last is a number
client.subscribe("plant/#", { last: "all" });

async function publishSetpoint(): Promise<number> {
  const ack = await client.publish("plant/boiler/cmd", { setpoint: 80, on: true, tags: ["a", null] });
  // @ts-expect-error: a function is not JSON
  await client.publish("plant/boiler/cmd", () => 1);
  const members = await client.presence("plant/#", { watch: true });
  return ack.offset + members.length;
}

const position: Position | undefined = client.positions.get("plant/boiler/temp");
const cursor: string = encodeCursor(new Map([["a", [1, 2]]]));
const back: Map<string, Position> = decodeCursor(cursor);
const matches: boolean = topicMatches("plant/#", "plant/boiler");
const delay: number = backoffDelay(3, { initial: 250, max: 10000, factor: 2, jitter: 0.5 });
console.log(position, back, matches, delay, publishSetpoint);

async function videoRoom(video: HTMLVideoElement, file: File): Promise<RtcRoom> {
  const room = await rtcPeer(client, "lab", { id: "alice", config: { iceServers: [] } });
  room.on("open", ({ peer }) => room.send({ hello: peer }, { to: peer }));
  room.on("message", ({ peer, data }) => console.log(peer, data));
  room.on("file", ({ name, blob }) => console.log(name, blob.size));
  room.on("track", ({ streams }) => {
    video.srcObject = streams[0];
  });
  const connection: RTCPeerConnection | null = room.connection();
  console.log(connection?.connectionState, room.peers.get("bob")?.channel?.readyState);
  await room.sendFile(file);
  // @ts-expect-error: no such event
  room.on("teleport", () => {});
  return room;
}
console.log(videoRoom, roomTopics("lab", "alice").to("bob"), isPolite("b", "a"), chunkRanges(10, 4));
client.close();
