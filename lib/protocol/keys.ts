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
