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
 * Decode base64 src[start, end) into dst at 0. Returns the decoded length,
 * or 0 when the input is not valid base64 (as memcached treats it).
 */
export function base64Decode(src: Uint8Array, start: number, end: number, dst: Uint8Array): number {
  const n = end - start;
  if (n === 0 || n % 4 !== 0) return 0;
  let out = 0;
  for (let i = start; i < end; i += 4) {
    const a = DECODE[src[i]], b = DECODE[src[i + 1]];
    const c3 = src[i + 2], c4 = src[i + 3];
    if (a < 0 || b < 0) return 0;
    dst[out++] = (a << 2) | (b >> 4);
    if (c3 === 61) {
      if (c4 !== 61 || i + 4 !== end) return 0;
      break;
    }
    const c = DECODE[c3];
    if (c < 0) return 0;
    dst[out++] = ((b & 15) << 4) | (c >> 2);
    if (c4 === 61) {
      if (i + 4 !== end) return 0;
      break;
    }
    const d = DECODE[c4];
    if (d < 0) return 0;
    dst[out++] = ((c & 3) << 6) | d;
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
