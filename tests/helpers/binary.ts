/**
 * Binary protocol packets for tests, built and read independently of
 * lib/protocol/binary.ts (so a codec bug cannot hide in both sides).
 * @module
 */

import { connect, type TestConn } from "./conn.ts";
import { concatBytes } from "./bytes.ts";

/** Opcodes (memcached protocol_binary.h). */
export const OP = {
  GET: 0x00,
  SET: 0x01,
  ADD: 0x02,
  REPLACE: 0x03,
  DELETE: 0x04,
  INCR: 0x05,
  DECR: 0x06,
  QUIT: 0x07,
  FLUSH: 0x08,
  GETQ: 0x09,
  NOOP: 0x0a,
  VERSION: 0x0b,
  GETK: 0x0c,
  GETKQ: 0x0d,
  APPEND: 0x0e,
  PREPEND: 0x0f,
  STAT: 0x10,
  SETQ: 0x11,
  ADDQ: 0x12,
  REPLACEQ: 0x13,
  DELETEQ: 0x14,
  INCRQ: 0x15,
  DECRQ: 0x16,
  QUITQ: 0x17,
  FLUSHQ: 0x18,
  APPENDQ: 0x19,
  PREPENDQ: 0x1a,
  VERBOSITY: 0x1b,
  TOUCH: 0x1c,
  GAT: 0x1d,
  GATQ: 0x1e,
  SASL_LIST: 0x20,
  SASL_AUTH: 0x21,
  SASL_STEP: 0x22,
  GATK: 0x23,
  GATKQ: 0x24,
} as const;

/** Fields of one request packet; lengths default to the real ones. */
export interface PacketSpec {
  /** Opcode. */
  op: number;
  /** Key (latin1 string or bytes). */
  key?: string | Uint8Array;
  /** Extras bytes. */
  extras?: Uint8Array;
  /** Value (latin1 string or bytes). */
  value?: string | Uint8Array;
  /** CAS. */
  cas?: bigint;
  /** Opaque. */
  opaque?: number;
  /** Override the magic byte. */
  magic?: number;
  /** Override the key length field. */
  keylen?: number;
  /** Override the extras length field. */
  extlen?: number;
  /** Override the total body length field. */
  bodylen?: number;
}

function bytesOf(v: string | Uint8Array | undefined): Uint8Array {
  if (v === undefined) return new Uint8Array(0);
  if (typeof v !== "string") return v;
  const b = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) b[i] = v.charCodeAt(i);
  return b;
}

/** Encode one request packet. */
export function packet(p: PacketSpec): Uint8Array {
  const key = bytesOf(p.key), ext = p.extras ?? new Uint8Array(0), value = bytesOf(p.value);
  const body = ext.length + key.length + value.length;
  const out = new Uint8Array(24 + body);
  const dv = new DataView(out.buffer);
  out[0] = p.magic ?? 0x80;
  out[1] = p.op;
  dv.setUint16(2, p.keylen ?? key.length);
  out[4] = p.extlen ?? ext.length;
  dv.setUint32(8, p.bodylen ?? body);
  dv.setUint32(12, p.opaque ?? 0);
  dv.setBigUint64(16, p.cas ?? 0n);
  out.set(ext, 24);
  out.set(key, 24 + ext.length);
  out.set(value, 24 + ext.length + key.length);
  return out;
}

/** Extras of set/add/replace: flags, expiration. */
export function setExtras(flags: number, exptime: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, flags >>> 0);
  dv.setUint32(4, exptime >>> 0);
  return b;
}

/** Extras of incr/decr: delta, initial, expiration (0xffffffff: do not create). */
export function arithExtras(delta: bigint, initial: bigint, exptime: number): Uint8Array {
  const b = new Uint8Array(20);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, delta);
  dv.setBigUint64(8, initial);
  dv.setUint32(16, exptime >>> 0);
  return b;
}

/** Extras of a single u32 (touch/gat expiration, flush delay). */
export function u32Extras(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return b;
}

/** One response packet as read. */
export interface Response {
  /** Magic byte (0x81). */
  magic: number;
  /** Opcode. */
  op: number;
  /** Status. */
  status: number;
  /** Data type byte. */
  datatype: number;
  /** Opaque. */
  opaque: number;
  /** CAS. */
  cas: bigint;
  /** Extras bytes. */
  extras: Uint8Array;
  /** Key bytes. */
  key: Uint8Array;
  /** Value bytes. */
  value: Uint8Array;
  /** The whole packet. */
  raw: Uint8Array;
}

/** Length of the first complete response packet in buf, or -1. */
export function responseEnd(buf: Uint8Array, from = 0): number {
  if (buf.length - from < 24) return -1;
  const body = new DataView(buf.buffer, buf.byteOffset + from).getUint32(8);
  return buf.length - from >= 24 + body ? from + 24 + body : -1;
}

/** Pipeline `packets` on `t` and wait for as many response packets (each request answered once). */
export async function sendPackets(
  t: TestConn,
  packets: Uint8Array[],
  timeoutMs = 30_000,
): Promise<Uint8Array> {
  await t.send(concatBytes(...packets));
  return t.readUntil((b) => {
    let p = 0;
    for (let k = 0; k < packets.length; k++) {
      p = responseEnd(b, p);
      if (p < 0) return -1;
    }
    return p;
  }, timeoutMs);
}

/** Decode one response packet at buf[0..). */
export function decodeResponse(raw: Uint8Array): Response {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.length);
  const keylen = dv.getUint16(2), extlen = raw[4];
  return {
    magic: raw[0],
    op: raw[1],
    status: dv.getUint16(6),
    datatype: raw[5],
    opaque: dv.getUint32(12),
    cas: dv.getBigUint64(16),
    extras: raw.slice(24, 24 + extlen),
    key: raw.slice(24 + extlen, 24 + extlen + keylen),
    value: raw.slice(24 + extlen + keylen),
    raw,
  };
}

/** Split a byte stream into whole response packets; a partial tail is returned apart. */
export function splitResponses(buf: Uint8Array): { packets: Response[]; rest: Uint8Array } {
  const packets: Response[] = [];
  let p = 0;
  for (;;) {
    const e = responseEnd(buf, p);
    if (e < 0) break;
    packets.push(decodeResponse(buf.slice(p, e)));
    p = e;
  }
  return { packets, rest: buf.slice(p) };
}

/** Opaque of the barrier noop the helpers append. */
export const BARRIER_OPAQUE = 0xba5eba11;

/**
 * Send `bytes` plus a noop barrier and read every response up to the
 * barrier's (excluded). Quiet commands therefore show as silence.
 */
export async function roundTrip(
  conn: TestConn,
  bytes: Uint8Array,
  timeoutMs = 3000,
): Promise<Response[]> {
  const barrier = packet({ op: OP.NOOP, opaque: BARRIER_OPAQUE });
  const all = new Uint8Array(bytes.length + barrier.length);
  all.set(bytes);
  all.set(barrier, bytes.length);
  await conn.send(all);
  const raw = await conn.readUntil((b) => {
    let p = 0;
    for (;;) {
      const e = responseEnd(b, p);
      if (e < 0) return -1;
      const r = decodeResponse(b.subarray(p, e));
      if (r.op === OP.NOOP && r.opaque === BARRIER_OPAQUE) return e;
      p = e;
    }
  }, timeoutMs);
  return splitResponses(raw).packets.slice(0, -1);
}

/** A response value as latin1 text. */
export function text(b: Uint8Array): string {
  return String.fromCharCode(...b);
}

/**
 * Opaque:status of every reply to `bytes` sent as a connection's first
 * write, until `n` replies or the server closes.
 */
export async function firstWriteReplies(
  port: number,
  bytes: Uint8Array,
  n: number,
): Promise<string[]> {
  const c = await connect(port);
  try {
    await c.send(bytes);
    const raw = await c.readUntil((b) => {
      const { packets, rest } = splitResponses(b);
      return packets.length >= n ? b.length - rest.length : -1;
    }, 10_000).catch(async () => await c.readIdle(1, 1));
    return splitResponses(raw).packets.map((r) => `${r.opaque}:${r.status}`);
  } finally {
    await c.close();
  }
}

/**
 * First binary writes whose replies depend on how much the server's first
 * read takes (memcached: up to 16 KB), each with the replies to wait for:
 * exactly 1 KB (40 noops and a get: nothing behind it), 60 hits of keys
 * `bm:0`..`bm:59` (set them first) over 1 KB then a bad magic byte
 * (memcached sends up to its last transmit: after 21 requests of a read,
 * then every 20), and exactly 1 KB ending in a bad magic byte.
 */
export function firstWriteCases(): [Uint8Array, number, string][] {
  const noops = (n: number) =>
    Array.from({ length: n }, (_, i) => packet({ op: OP.NOOP, opaque: i + 1 }));
  const exact = concatBytes(...noops(40), packet({ op: OP.GET, key: "x".repeat(40), opaque: 99 }));
  const gets = Array.from(
    { length: 60 },
    (_, i) => packet({ op: OP.GET, key: `bm:${i}`, opaque: i + 1 }),
  );
  const bad = concatBytes(...gets, packet({ op: OP.GET, key: "k", magic: 0x00 }));
  const badExact = concatBytes(...noops(41), packet({ op: OP.GET, key: "k".repeat(16), magic: 0 }));
  return [[exact, 41, "exactly 1 KB"], [bad, 61, "hits then bad magic"], [
    badExact,
    42,
    "exactly 1 KB ending in bad magic",
  ]];
}
