// Resume cursors: positions (topic -> [epoch, offset]) as the base64url JSON that SSE ids
// and polls carry.

function base64UrlEncode(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64UrlDecode(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (character) => character.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The resume cursor for positions (Map topic -> [epoch, offset]); the format SSE ids and polls use. */
export function encodeCursor(positions) {
  return base64UrlEncode(JSON.stringify(Object.fromEntries(positions)));
}

/** Positions (Map topic -> [epoch, offset]) from a cursor the hub issued; an empty Map if unreadable. */
export function decodeCursor(cursor) {
  try {
    const value = JSON.parse(base64UrlDecode(cursor));
    return new Map(Object.entries(value).filter(([, position]) => Array.isArray(position) && position.length === 2));
  } catch (error) {
    return new Map();
  }
}

/** Longest cursor this client builds itself; past it, it resumes from the hub's stored cursor. */
export const INLINE_CURSOR_LIMIT = 2048;
