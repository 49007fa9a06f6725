/**
 * Warm restart of a replicated node (`serve -e` with `--replicate`): what a
 * stopped node saves next to its cache so that, started again, it goes on
 * with its peer from the backlogs instead of a full copy each way.
 *
 * Saved (once the link is closed and nothing changes the store any more):
 * - this node's stream id and the part of its backlog the peer has not
 *   confirmed (after the stop's drain usually nothing, only the end
 *   offset), so the peer, which knows the stream at some offset, gets
 *   the rest with a RESUME;
 * - where this node stands in the peer's stream, so the peer resumes from
 *   its backlog when it still holds that offset (else a full copy, as
 *   for any peer it lost track of);
 * - the clock, the flush epoch (and a delayed flush), tombstones and
 *   touches: a change from the peer's backlog older than a delete or flush
 *   made here is refused as it was before the stop (nothing resurrected);
 * - the agreed versions of this node's stream (the exactness point of a
 *   full copy, should one follow).
 *
 * The handshake needs nothing new: the restored state is what the STATE
 * line carries (stream id and end, the peer's stream and offset, clock).
 * Nothing is saved for what cannot be resumed: a full copy this node was
 * sending and the peer had not confirmed (the stream then starts anew and
 * the peer gets a new copy), or one it was receiving or sweeping (then the
 * peer sends a new copy).
 *
 * Encoding (little endian, a multiple of 4 bytes; the image checksums it):
 * "memrepRS", u32 version, u32 parts (1 stream, 2 peer, 4 delayed flush),
 * f64 clock, flush epoch, delayed flush epoch and clock second; the
 * stream (u8 id length, id, f64 start, f64 end, the bytes [start, end));
 * the peer (u8 id length, id, f64 offset); tombstones and touches (u32
 * count, then u16 key length, key bytes, f64 version each); the agreement
 * (f64 base offset, f64 base version, u32 count, f64 offset and version
 * each); zero padding.
 * @module
 */

import type { AgreedVersions, AgreementState, Backlog } from "./backlog.ts";
import type { Merger } from "./merge.ts";
import type { HybridClock } from "./versions.ts";
import { Writer } from "../protocol/mod.ts";

const MAGIC = "memrepRS";
const VERSION = 1;
const PART_STREAM = 1;
const PART_PEER = 2;
const PART_PENDING = 4;
/** Longest stream id accepted (this code makes 16 hex digits). */
const MAX_ID = 64;
/** Longest tombstone or touch key (memcached keys are 250 bytes at most). */
const MAX_KEY = 1024;

/** What a node saves to resume replication after a warm restart. */
export interface ResumeState {
  /** This node's stream to go on with (null: a new stream, the peer gets a full copy). */
  stream: { id: string; start: number; bytes: Uint8Array } | null;
  /** Where this node stood in the peer's stream (null: the peer sends a full copy). */
  peerStream: { id: string; offset: number } | null;
  /** The clock's newest version. */
  hlc: number;
  /** Items older than this were flushed. */
  flushEpoch: number;
  /** A delayed flush_all not in effect yet. */
  pendingFlush: { epoch: number; atLocal: number } | null;
  /** Deleted keys (one char per byte) and their versions, oldest first. */
  tombstones: Array<[string, number]>;
  /** Touched keys and their touch versions, oldest first. */
  touches: Array<[string, number]>;
  /** Which versions of this stream the peer has seen. */
  agreement: AgreementState;
}

/** The replicator's parts a {@linkcode ResumeState} is taken from and put back into. */
export interface ResumeTarget {
  /** This node's stream id. */
  readonly streamId: string;
  /** This node's stream. */
  readonly backlog: Backlog;
  /** Version clock. */
  readonly hlc: HybridClock;
  /** Tombstones, touches, flush epoch. */
  readonly merger: Merger;
  /** Versions the peer has seen of our stream. */
  readonly agreement: AgreedVersions;
  /** Where the peer's stream stands for us. */
  peerStream: { id: string; offset: number } | null;
}

/** The state of a stopped replicator, beyond its target, that decides what can resume. */
export interface ResumeConditions {
  /** Our stream offset the peer confirmed (everything before it). */
  confirmed: number;
  /** A full copy we send is not confirmed yet: our stream cannot go on. */
  sendingCopy: boolean;
  /** A full copy we receive is not entirely applied (incomplete, or its sweep cut short). */
  receivingCopy: boolean;
}

/** Take the state to save from a stopped replicator (no link, no change any more). */
export function captureResume(t: ResumeTarget, c: ResumeConditions): ResumeState {
  const b = t.backlog;
  let stream: ResumeState["stream"] = null;
  if (!c.sendingCopy) {
    // The peer applied all of our stream (the stop's drain): as a link does when it sees that,
    // every version the clock issued or saw so far is agreed.
    if (c.confirmed >= b.end) t.agreement.caughtUp(b.end, t.hlc.last);
    // What the peer confirmed it will never ask for again; the rest it may.
    const start = Math.min(b.end, Math.max(b.start, c.confirmed));
    const w = new Writer(Math.max(16, b.end - start));
    b.copyTo(w, start, b.end);
    stream = { id: t.streamId, start, bytes: w.buf.slice(0, w.length) };
  }
  const m = t.merger;
  return {
    stream,
    peerStream: c.receivingCopy || t.peerStream === null ? null : { ...t.peerStream },
    hlc: t.hlc.last,
    flushEpoch: m.flushEpoch,
    pendingFlush: m.pendingFlush,
    tombstones: [...m.tombstones],
    touches: [...m.touches],
    agreement: t.agreement.save(),
  };
}

/**
 * Put a saved state back into a new replicator whose stream id is
 * `state.stream.id` (or a new one when that is null) and whose store holds
 * the cache saved with it.
 */
export function restoreResume(t: ResumeTarget, state: ResumeState): void {
  t.hlc.observe(state.hlc);
  if (state.stream !== null && state.stream.id === t.streamId) {
    t.backlog.restore(state.stream.start, state.stream.bytes);
    t.agreement.restore(state.agreement);
  }
  t.peerStream = state.peerStream === null ? null : { ...state.peerStream };
  t.merger.restore(state.flushEpoch, state.pendingFlush, state.tombstones, state.touches);
}

/** Encode a state for the image (a multiple of 4 bytes). */
export function encodeResume(s: ResumeState): Uint8Array {
  const w = new Bytes();
  w.latin1(MAGIC);
  w.u32(VERSION);
  w.u32(
    (s.stream ? PART_STREAM : 0) | (s.peerStream ? PART_PEER : 0) |
      (s.pendingFlush ? PART_PENDING : 0),
  );
  w.f64(s.hlc);
  w.f64(s.flushEpoch);
  w.f64(s.pendingFlush?.epoch ?? 0);
  w.f64(s.pendingFlush?.atLocal ?? 0);
  if (s.stream) {
    w.id(s.stream.id);
    w.f64(s.stream.start);
    w.f64(s.stream.start + s.stream.bytes.length);
    w.raw(s.stream.bytes);
  }
  if (s.peerStream) {
    w.id(s.peerStream.id);
    w.f64(s.peerStream.offset);
  }
  for (const map of [s.tombstones, s.touches]) {
    w.u32(map.length);
    for (const [key, version] of map) {
      w.u16(key.length);
      w.latin1(key);
      w.f64(version);
    }
  }
  const a = s.agreement;
  w.f64(a.baseOffset);
  w.f64(a.baseVersion);
  const n = Math.min(a.offsets.length, a.versions.length);
  w.u32(n);
  for (let i = 0; i < n; i++) {
    w.f64(a.offsets[i]);
    w.f64(a.versions[i]);
  }
  while (w.length % 4 !== 0) w.u8(0);
  return w.done();
}

/** Decode a saved state; a string says why it is unusable. Never throws. */
export function decodeResume(bytes: Uint8Array): ResumeState | string {
  const r = new Reader(bytes);
  try {
    if (r.latin1(MAGIC.length) !== MAGIC) return "not a replication state";
    const version = r.u32();
    if (version !== VERSION) return `replication state version ${version}, expected ${VERSION}`;
    const parts = r.u32();
    const hlc = r.count();
    const flushEpoch = r.count();
    const pendingEpoch = r.count();
    const pendingAt = r.count();
    let stream: ResumeState["stream"] = null;
    if (parts & PART_STREAM) {
      const id = r.id();
      const start = r.count();
      const end = r.count();
      if (end < start) throw new Error("stream end before its start");
      stream = { id, start, bytes: r.raw(end - start) };
    }
    let peerStream: ResumeState["peerStream"] = null;
    if (parts & PART_PEER) peerStream = { id: r.id(), offset: r.count() };
    const maps: Array<Array<[string, number]>> = [[], []];
    for (const map of maps) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const len = r.u16();
        if (len === 0 || len > MAX_KEY) throw new Error("bad key length");
        const key = r.latin1(len);
        map.push([key, r.count()]);
      }
    }
    const baseOffset = r.count();
    const baseVersion = r.count();
    const n = r.u32();
    const offsets: number[] = [], versions: number[] = [];
    for (let i = 0; i < n; i++) {
      offsets.push(r.count());
      versions.push(r.count());
    }
    if (r.rest().some((x) => x !== 0)) throw new Error("trailing bytes");
    return {
      stream,
      peerStream,
      hlc,
      flushEpoch,
      pendingFlush: parts & PART_PENDING ? { epoch: pendingEpoch, atLocal: pendingAt } : null,
      tombstones: maps[0],
      touches: maps[1],
      agreement: { baseOffset, baseVersion, offsets, versions },
    };
  } catch (err) {
    return `damaged replication state (${err instanceof Error ? err.message : String(err)})`;
  }
}

/** A growing little-endian byte buffer. */
class Bytes {
  #buf = new Uint8Array(4096);
  #dv = new DataView(this.#buf.buffer);
  length = 0;

  #need(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#dv = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.#need(1);
    this.#buf[this.length++] = v;
  }

  u16(v: number): void {
    this.#need(2);
    this.#dv.setUint16(this.length, v, true);
    this.length += 2;
  }

  u32(v: number): void {
    this.#need(4);
    this.#dv.setUint32(this.length, v, true);
    this.length += 4;
  }

  f64(v: number): void {
    this.#need(8);
    this.#dv.setFloat64(this.length, v, true);
    this.length += 8;
  }

  raw(b: Uint8Array): void {
    this.#need(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }

  /** One byte per char (ids are ASCII, keys one char per byte). */
  latin1(s: string): void {
    this.#need(s.length);
    for (let i = 0; i < s.length; i++) this.#buf[this.length++] = s.charCodeAt(i) & 255;
  }

  id(s: string): void {
    this.u8(s.length);
    this.latin1(s);
  }

  done(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

/** Reads what {@linkcode Bytes} wrote; throws on anything out of bounds or out of range. */
class Reader {
  #buf: Uint8Array;
  #dv: DataView;
  #at = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
    this.#dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  #take(n: number): number {
    if (n < 0 || this.#at + n > this.#buf.length) throw new Error("truncated");
    const at = this.#at;
    this.#at += n;
    return at;
  }

  u16(): number {
    return this.#dv.getUint16(this.#take(2), true);
  }

  u32(): number {
    return this.#dv.getUint32(this.#take(4), true);
  }

  f64(): number {
    return this.#dv.getFloat64(this.#take(8), true);
  }

  /** A non-negative safe integer (offsets, versions, clock seconds). */
  count(): number {
    const v = this.f64();
    if (!Number.isSafeInteger(v) || v < 0) throw new Error("number out of range");
    return v;
  }

  raw(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#buf.slice(at, at + n);
  }

  latin1(n: number): string {
    const at = this.#take(n);
    let s = "";
    for (let i = at; i < at + n; i++) s += String.fromCharCode(this.#buf[i]);
    return s;
  }

  /** A stream id: 1 to MAX_ID printable ASCII bytes (it travels as a token). */
  id(): string {
    const n = this.#dv.getUint8(this.#take(1));
    const s = this.latin1(n);
    if (n === 0 || n > MAX_ID || !/^[!-~]+$/.test(s)) throw new Error("bad stream id");
    return s;
  }

  rest(): Uint8Array {
    return this.#buf.subarray(this.#at);
  }
}
