// MQTT-style topic names: which topics a pattern selects, and a topic as a URL path.

/** True when the concrete `topic` is selected by the MQTT-style `pattern` (`+`, `#`). */
export function topicMatches(pattern, topic) {
  if (pattern === topic) return true;
  const want = pattern.split("/");
  const have = topic.split("/");
  if (topic.startsWith("$") && (want[0] === "+" || want[0] === "#")) return false;
  for (let index = 0; index < want.length; index++) {
    if (want[index] === "#") return true;
    if (index >= have.length) return false;
    if (want[index] !== "+" && want[index] !== have[index]) return false;
  }
  return want.length === have.length;
}

/** `topic` as a URL path: each level percent-encoded, the "/" between levels kept. */
export function topicPath(topic) {
  return topic.split("/").map(encodeURIComponent).join("/");
}
