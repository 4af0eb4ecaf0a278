// The errors the client raises: an Error carrying the hub's code ("timeout", "closed", ...).

/** An Error with `code`, as the hub's error frames and the client's own failures name it. */
export function hubError(code, message) {
  const error = new Error(message);
  error.code = code;
  return error;
}
