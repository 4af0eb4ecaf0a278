// Files over a data channel: the chunks a file is cut into, and the flow control that
// waits for the channel to drain.

/** Largest file chunk sent in one data-channel message (16 KiB crosses every browser). */
export const FILE_CHUNK_BYTES = 16 * 1024;
export const BUFFER_HIGH = 1024 * 1024; // wait for the channel to drain past this many buffered bytes
export const BUFFER_LOW = 256 * 1024;

/** [start, end) byte ranges that cut `size` bytes into chunks of at most `chunk` bytes. */
export function chunkRanges(size, chunk = FILE_CHUNK_BYTES) {
  const ranges = [];
  for (let start = 0; start < size; start += chunk) ranges.push([start, Math.min(size, start + chunk)]);
  return ranges;
}

/** Resolves once `channel` buffers less than its low threshold, or closes. */
export function drained(channel) {
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
