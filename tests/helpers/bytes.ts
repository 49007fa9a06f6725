/**
 * Small byte helpers shared by the test client, the relay and the suites.
 * @module
 */

const encoder = new TextEncoder();

/** Encodes a string as bytes; each char code below 256 becomes one byte (latin1), so test scripts can hold any byte. */
export function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) return encoder.encode(s); // not a byte string: fall back to UTF-8
    out[i] = c;
  }
  return out;
}

/** Coerces a string (latin1, see {@linkcode latin1}) or bytes to bytes. */
export function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? latin1(data) : data;
}

/** Decodes bytes one char per byte, so no byte is lost or merged. */
export function bytesToString(bytes: Uint8Array): string {
  // Not TextDecoder("latin1"): WHATWG maps that label to windows-1252 (0x80 -> U+20AC).
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

/** Joins byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Index of `needle` in `hay` at or after `from`, or -1. */
export function indexOfBytes(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  if (needle.length === 0) return from <= hay.length ? from : -1;
  const first = needle[0];
  const last = hay.length - needle.length;
  outer: for (let i = from; i <= last; i++) {
    if (hay[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/**
 * Shows bytes as printable text: `\r`, `\n`, `\t`, `\\` and `\xNN` escapes, so
 * two protocol replies can be compared by eye. Long input is cut in the middle.
 */
export function escapeBytes(data: Uint8Array | string, max = 4000): string {
  const b = toBytes(data);
  let s = "";
  const n = b.length;
  for (let i = 0; i < n; i++) {
    if (n > max && i === max / 2) {
      s += `...<${n - max} bytes>...`;
      i = n - max / 2 - 1;
      continue;
    }
    const c = b[i];
    if (c === 0x0d) s += "\\r";
    else if (c === 0x0a) s += "\\n";
    else if (c === 0x09) s += "\\t";
    else if (c === 0x5c) s += "\\\\";
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += "\\x" + c.toString(16).padStart(2, "0");
  }
  return s;
}
