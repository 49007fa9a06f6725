/**
 * Key rules and base64 keys (meta protocol `b` flag).
 * @module
 */

/** memcached's KEY_MAX_LENGTH. */
export const MAX_KEY_LENGTH = 250;

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const DECODE = new Int16Array(256).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;
const ENCODE = new Uint8Array(64);
for (let i = 0; i < 64; i++) ENCODE[i] = ALPHABET.charCodeAt(i);

/**
 * Decode base64 src[start, end) into dst at 0 as memcached's decoder does:
 * bytes outside the alphabet are skipped, `=` is a zero digit that ends the
 * key after its group of four (one or two of them; more is invalid).
 * Returns the decoded length, or 0 when the input is not valid (no digits,
 * or a count of them that is not a multiple of four).
 */
export function base64Decode(src: Uint8Array, start: number, end: number, dst: Uint8Array): number {
  let count = 0;
  for (let i = start; i < end; i++) if (DECODE[src[i]] >= 0 || src[i] === 61) count++;
  if (count === 0 || count % 4 !== 0) return 0;
  let out = 0, got = 0, pad = 0, acc = 0;
  for (let i = start; i < end; i++) {
    let v = DECODE[src[i]];
    if (v < 0) {
      if (src[i] !== 61) continue;
      v = 0;
      pad++;
    }
    acc = (acc << 6) | v;
    if (++got < 4) continue;
    dst[out++] = acc >> 16;
    dst[out++] = (acc >> 8) & 255;
    dst[out++] = acc & 255;
    got = acc = 0;
    if (pad > 0) {
      if (pad > 2) return 0;
      out -= pad;
      break;
    }
  }
  return out;
}

/** Encode src[start, end) as base64 into dst at pos; returns the new position. */
export function base64Encode(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
  pos: number,
): number {
  let i = start;
  for (; i + 3 <= end; i += 3) {
    const v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];
    dst[pos++] = ENCODE[v >> 18];
    dst[pos++] = ENCODE[(v >> 12) & 63];
    dst[pos++] = ENCODE[(v >> 6) & 63];
    dst[pos++] = ENCODE[v & 63];
  }
  const rest = end - i;
  if (rest > 0) {
    const v = (src[i] << 16) | (rest === 2 ? src[i + 1] << 8 : 0);
    dst[pos++] = ENCODE[v >> 18];
    dst[pos++] = ENCODE[(v >> 12) & 63];
    dst[pos++] = rest === 2 ? ENCODE[(v >> 6) & 63] : 61;
    dst[pos++] = 61;
  }
  return pos;
}

/** Bytes base64Encode writes for n input bytes. */
export function base64Length(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/**
 * True when `key` can be sent as-is in a text command: 1..250 bytes, no
 * space, newline or NUL (memcached's and serve's tokenizers split on spaces
 * only, so tabs, CR or DEL are key bytes). Other keys travel base64-encoded
 * (meta `b`), whose 250-character limit fits only 186 bytes: a 250-byte text
 * key with a control byte must go as-is.
 */
export function isTextKey(key: Uint8Array): boolean {
  const n = key.length;
  if (n === 0 || n > MAX_KEY_LENGTH) return false;
  for (let i = 0; i < n; i++) {
    const c = key[i];
    if (c === 0x20 || c === 0x0a || c === 0) return false;
  }
  return true;
}

/** base64 of `key` (for the meta `b` flag). */
export function base64Key(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(base64Length(key.length));
  base64Encode(key, 0, key.length, out, 0);
  return out;
}
