// A room's names: checked topic levels, its signalling topics, peer ids and which peer of
// a pair is polite.

import { rtcError } from "./errors.js";

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

/** A random peer id (or session), one topic level. */
export function randomId() {
  return "p" + Math.random().toString(36).slice(2, 10);
}
