// The errors rtnb-rtc.js raises: an Error carrying a code, as the hub's errors do.

/** An Error with `code` ("bad_field", "timeout", "closed", ...). */
export function rtcError(code, message) {
  const error = new Error(message);
  error.code = code;
  return error;
}
