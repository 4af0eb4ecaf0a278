// The reconnection delay: exponential backoff with jitter and a cap.

/**
 * Milliseconds to wait before reconnection pass number `attempts` (0 first):
 * min(max, initial * factor^attempts), less up to `jitter` of it at random.
 */
export function backoffDelay(attempts, { initial, max, factor, jitter }, random = Math.random) {
  return Math.min(max, initial * factor ** attempts) * (1 - jitter * random());
}
