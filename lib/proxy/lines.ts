/**
 * Byte builders for the requests the proxy makes itself (copies to
 * backups, read-backs, repairs) and for replies it assembles (multi-get,
 * fallback hits). The hot path forwards the client's own bytes instead.
 * @module
 */

import { NO_TTL } from "../client/mod.ts";
import { ascii, Op, type OpCode, type Request, writeUint } from "../protocol/mod.ts";

/** `\r\n`. */
export const CRLF: Uint8Array = ascii("\r\n");
/** No bytes. */
export const EMPTY: Uint8Array = new Uint8Array(0);
/** `VALUE `. */
export const W_VALUE: Uint8Array = ascii("VALUE ");
/** `set `. */
export const W_SET: Uint8Array = ascii("set ");
/** `ms `. */
export const W_MS: Uint8Array = ascii("ms ");
/** `mg `. */
export const W_MG: Uint8Array = ascii("mg ");
/** `md `. */
export const W_MD: Uint8Array = ascii("md ");
/** What a copy needs: value, client flags, remaining TTL. */
export const FETCH_FLAGS: Uint8Array = ascii(" v f t");
/** The same plus the CAS (gets through a backup). */
export const FETCH_FLAGS_CAS: Uint8Array = ascii(" v f t c");
/** A repair is an add (mode E) that returns the new CAS. */
export const REPAIR_FLAGS: Uint8Array = ascii(" ME c");
/** Meta base64-key flag. */
export const BINARY_FLAG: Uint8Array = ascii(" b");
/** Meta client-flags prefix. */
export const FLAGS_PREFIX: Uint8Array = ascii(" F");
/** Meta TTL prefix. */
export const TTL_PREFIX: Uint8Array = ascii(" T");

/** memcached reads exptimes above 30 days as unix times. */
const MAX_RELATIVE_EXPTIME = 2592000;

/** Decimal digits of an integer (exptimes may be negative). */
export function decimal(n: number): Uint8Array {
  const out = new Uint8Array(20);
  if (n < 0) {
    out[0] = 45;
    return out.subarray(0, writeUint(out, 1, -n));
  }
  return out.subarray(0, writeUint(out, 0, n));
}

/** A remaining TTL from `mg t` as an exptime to store (-1/absent: never). */
export function ttlToExptime(ttl: number): number {
  if (ttl === -1 || ttl === NO_TTL) return 0;
  if (ttl <= 0) return 1;
  return ttl > MAX_RELATIVE_EXPTIME ? Math.floor(Date.now() / 1000) + ttl : ttl;
}

/** The request line without token `i` (noreply, q), then the value block if any. */
export function withoutToken(req: Request, i: number): Uint8Array[] {
  const buf = req.buf;
  const cut = i > 0 ? req.tokEnd[i - 1] : req.tokStart[i];
  const parts = [buf.subarray(req.lineStart, cut)];
  if (i + 1 < req.ntokens) parts.push(buf.subarray(req.tokEnd[i], req.lineEnd));
  parts.push(CRLF);
  if (hasData(req.op)) parts.push(buf.subarray(req.dataStart, req.dataEnd + 2));
  return parts;
}

/** Storage commands carry a value block. */
export function hasData(op: OpCode): boolean {
  return (op >= Op.SET && op <= Op.CAS) || op === Op.MS;
}

/** `set <key> <flags> <exptime> <bytes>\r\n` from a text storage request. */
export function textSetLine(req: Request): Uint8Array {
  const s = req.tokStart[1], e = req.tokEnd[4];
  const out = new Uint8Array(4 + e - s + 2);
  out.set(W_SET);
  out.set(req.buf.subarray(s, e), 4);
  out[out.length - 2] = 13;
  out[out.length - 1] = 10;
  return out;
}

/** `ms <key> <len> F<flags> T<exptime>[ b]\r\n`. */
export function metaSetLine(
  keyToken: Uint8Array,
  len: number,
  flags: number,
  exptime: number,
  binary: boolean,
): Uint8Array {
  return concat([
    W_MS,
    keyToken,
    ascii(" "),
    decimal(len),
    FLAGS_PREFIX,
    decimal(flags),
    TTL_PREFIX,
    decimal(exptime),
    binary ? BINARY_FLAG : EMPTY,
    CRLF,
  ]);
}

/** ` v f t u`: a copy's read, which must not count as a client's (`u`: not marked fetched, LRU untouched). */
const COPY_FLAGS = ascii(" v f t u");

/** `mg <key> v f t u[ b]\r\n`: everything needed to copy an item, read as no client would see. */
export function fetchLine(keyToken: Uint8Array, binary: boolean): Uint8Array[] {
  return binary
    ? [W_MG, keyToken, COPY_FLAGS, BINARY_FLAG, CRLF]
    : [W_MG, keyToken, COPY_FLAGS, CRLF];
}

/**
 * `mn\r\n`, sent after a write's read-back: memcached holds an item for
 * as long as a reply carrying it waits to be sent, and incr/decr rewrite
 * (and space-pad) a counter in place only when no one holds it; `mn`
 * makes memcached send its replies, so the next command sees the item
 * as a client of memcached itself would.
 */
export const FLUSH_LINE: readonly Uint8Array[] = [ascii("mn\r\n")];

/** `md <key>[ b]\r\n`. */
export function deleteLine(keyToken: Uint8Array, binary: boolean): Uint8Array[] {
  return binary ? [W_MD, keyToken, BINARY_FLAG, CRLF] : [W_MD, keyToken, CRLF];
}

/** `VALUE <key> <flags> <len>[ <cas>]\r\n<data>\r\n`. */
export function valueBlock(
  key: Uint8Array,
  flags: number,
  data: Uint8Array,
  cas?: bigint,
): Uint8Array {
  const head = [W_VALUE, key, ascii(" "), decimal(flags), ascii(" "), decimal(data.length)];
  if (cas !== undefined) head.push(ascii(" " + cas.toString()));
  head.push(CRLF, data, CRLF);
  return concat(head);
}

/** The bytes of `parts`, one after the other, in one new array. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A copy of a meta reply with its two-letter code replaced. */
export function patchCode(bytes: Uint8Array, code: string): Uint8Array {
  const out = bytes.slice();
  out[0] = code.charCodeAt(0);
  out[1] = code.charCodeAt(1);
  return out;
}
