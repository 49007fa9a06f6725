/**
 * `lru_crawler metadump` lines (`key=<urlenc> exp=... cas=...`), as the
 * client's dump reader and `replicate` read them: one pass over the bytes,
 * keys URL-decoded into fresh bytes.
 * @module
 */

import { carve, parseDecimalBigInt, parseSignedDecimal, SP } from "./bytes.ts";

/** One line of `lru_crawler metadump`, decoded. */
export interface DumpEntry {
  /** The key's bytes (URL-decoded). */
  key: Uint8Array;
  /** Absolute expiry in unix seconds on the server's clock; -1 or 0: never. */
  exp: number;
  /** Last access, unix seconds on the server's clock (-1 when absent). */
  la: number;
  /** CAS (0 when absent). */
  cas: bigint;
  /** Whether the item was fetched before. */
  fetch: boolean;
  /** Slab class (-1 when absent). */
  cls: number;
  /** Item size in memory (-1 when absent). */
  size: number;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * URL-decodes `buf[start, end)` (`%XX` escapes; `+` is kept as is, since
 * memcached escapes it) into fresh bytes (see {@linkcode carve}); undefined
 * when malformed.
 */
export function urlDecodeBytes(
  buf: Uint8Array,
  start: number,
  end: number,
): Uint8Array | undefined {
  let n = 0;
  for (let i = start; i < end; i++) {
    if (buf[i] === 0x25) i += 2;
    n++;
  }
  // Dumps hold millions of keys: carved views, not an allocation each.
  const out = carve(n);
  let o = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c === 0x25) {
      if (i + 2 >= end) return undefined;
      const h = hexValue(buf[i + 1]), l = hexValue(buf[i + 2]);
      if (h < 0 || l < 0) return undefined;
      out[o++] = (h << 4) | l;
      i += 2;
    } else out[o++] = c;
  }
  return out;
}

/**
 * Decodes one metadump line `key=<urlenc> exp=<n> la=<n> cas=<n> fetch=<yes|no>
 * cls=<n> size=<n>` (unknown fields are ignored, so newer servers work).
 * Returns undefined when there is no valid `key=`.
 */
export function parseDumpEntry(buf: Uint8Array, start: number, end: number): DumpEntry | undefined {
  let key: Uint8Array | undefined;
  const entry: DumpEntry = {
    key: EMPTY,
    exp: -1,
    la: -1,
    cas: 0n,
    fetch: false,
    cls: -1,
    size: -1,
  };
  // One pass over the bytes: a per-field indexOf costs more than the scan itself.
  let i = start;
  while (i < end) {
    let eq = i;
    while (eq < end && buf[eq] !== 0x3d && buf[eq] !== SP) eq++;
    if (eq === end || buf[eq] === SP) {
      i = eq + 1; // a token without "=": skipped
      continue;
    }
    const v = eq + 1;
    let sp = v;
    while (sp < end && buf[sp] !== SP) sp++;
    const nameLen = eq - i;
    const c0 = buf[i];
    if (nameLen === 3 && c0 === 0x6b) key = urlDecodeBytes(buf, v, sp); // key
    else if (nameLen === 3 && c0 === 0x65) entry.exp = parseSignedDecimal(buf, v, sp); // exp
    else if (nameLen === 2 && c0 === 0x6c) entry.la = parseSignedDecimal(buf, v, sp); // la
    else if (nameLen === 3 && c0 === 0x63 && buf[i + 1] === 0x61) { // cas
      entry.cas = parseDecimalBigInt(buf, v, sp) ?? 0n;
    } else if (nameLen === 5 && c0 === 0x66) entry.fetch = buf[v] === 0x79; // fetch=yes
    else if (nameLen === 3 && c0 === 0x63) entry.cls = parseSignedDecimal(buf, v, sp); // cls
    else if (nameLen === 4 && c0 === 0x73) entry.size = parseSignedDecimal(buf, v, sp); // size
    i = sp + 1;
  }
  if (key === undefined || key.length === 0) return undefined;
  if (Number.isNaN(entry.exp)) entry.exp = -1;
  entry.key = key;
  return entry;
}

const EMPTY = new Uint8Array(0);
