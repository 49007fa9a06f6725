/**
 * Warm restart of a replicated node (`serve -e` with `--replicate`): what a
 * stopped node saves next to its cache so that, started again, it goes on
 * with its peers from the backlogs instead of a full copy each way.
 *
 * Saved (once the links are closed and nothing changes the store any more):
 * - this node's stream id and the part of its backlog some peer has not
 *   confirmed (after the stop's drain usually nothing, only the end
 *   offset), so each peer, which knows the stream at some offset, gets
 *   the rest with a RESUME;
 * - per peer (the pair's one, or each other member of a group, found again
 *   by its address): where this node stands in that peer's stream, so the
 *   peer resumes from its backlog when it still holds that offset (else a
 *   full copy, as for any peer it lost track of); what it confirmed of our
 *   stream; the agreed versions of our stream (the exactness point of a
 *   full copy, should one follow); the ids of the copies sent to it;
 * - the clock, the flush epoch (and a delayed flush), tombstones, touches
 *   and expiry guards: a change from a peer's backlog older than a delete,
 *   flush or expired write made here is refused as it was before the stop
 *   (nothing resurrected).
 *
 * The handshake needs nothing new: the restored state is what the STATE
 * line carries (stream id and end, the peer's stream and offset, clock).
 * Nothing is saved for what cannot be resumed: a full copy this node was
 * receiving or sweeping (that peer sends a new copy), or one it was
 * sending and the peer had not confirmed: a pair's stream then starts anew
 * (the peer gets a new copy); in a group the stream goes on for the other
 * peers and that one gets a new copy on its next link (`copyNext`).
 *
 * Encoding (little endian, a multiple of 4 bytes; the image checksums it):
 * "memrepRS", u32 version (3; 2 has no expiry guards, 1 is a pair's state
 * of earlier versions),
 * u32 parts (1 stream, 4 delayed flush), f64 clock, flush epoch, delayed
 * flush epoch and clock second; the stream (u8 id length, id, f64 start,
 * f64 end, the bytes [start, end)); tombstones, touches and expiry guards
 * (u32 count, then u16 key length, key bytes, f64 version each); u32 peer count, then
 * per peer: u8 address length, address, u16 member index, u8 flags (1 a
 * position, 2 copy next), the position (u8 id length, id, f64 offset),
 * f64 confirmed, f64 copy ids, the agreement (f64 base offset, f64 base
 * version, u32 count, f64 offset and version each); zero padding.
 * @module
 */

import type { AgreedVersions, AgreementState, Backlog } from "./backlog.ts";
import type { Merger } from "./merge.ts";
import type { HybridClock } from "./versions.ts";
import { Writer } from "../protocol/mod.ts";

const MAGIC = "memrepRS";
const VERSION = 3;
/** A state of memrep versions that did not save expiry guards. */
const VERSION_NO_GUARDS = 2;
/** A pair's state as memrep versions before replica groups saved it. */
const VERSION_PAIR = 1;
const PART_STREAM = 1;
const PART_PEER = 2;
const PART_PENDING = 4;
const PEER_POSITION = 1;
const PEER_COPY_NEXT = 2;
/** Longest stream id accepted (this code makes 16 hex digits). */
const MAX_ID = 64;
/** Longest tombstone or touch key (memcached keys are 250 bytes at most). */
const MAX_KEY = 1024;
/** Most peers a state may name (a group's member index has up to 3 digits). */
const MAX_PEERS = 1000;

/** One peer's part of a {@linkcode ResumeState}. */
export interface PeerResumeState {
  /** The peer's replication address as configured ("host:port"; "" in a version 1 state). */
  address: string;
  /** Its index in the group's member list (0 for the pair's peer). */
  index: number;
  /** Where this node stood in the peer's stream (null: the peer sends a full copy). */
  peerStream: { id: string; offset: number } | null;
  /** Our stream offset the peer confirmed (it holds everything before it). */
  confirmed: number;
  /** A full copy to this peer was not confirmed (a group): its next link sends a new one. */
  copyNext: boolean;
  /** Ids of the copies sent to it so far (a new copy's id must not pass for an old one's). */
  copyIds: number;
  /** Which versions of our stream the peer has seen. */
  agreement: AgreementState;
}

/** What a node saves to resume replication after a warm restart. */
export interface ResumeState {
  /** This node's stream to go on with (null: a new stream, the peers get full copies). */
  stream: { id: string; start: number; bytes: Uint8Array } | null;
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
  /** Keys whose item expired here and the version it had, oldest first. */
  expiries: Array<[string, number]>;
  /** Per peer: position, confirmation, agreement. */
  peers: PeerResumeState[];
}

/** One peer's parts a {@linkcode ResumeState} is taken from and put back into. */
export interface ResumePeer {
  /** The peer's replication address ("host:port"). */
  readonly address: string;
  /** Its member index (0 for the pair's peer). */
  readonly index: number;
  /** Where the peer's stream stands for us. */
  peerStream: { id: string; offset: number } | null;
  /** Our stream offset the peer confirmed. */
  confirmed: number;
  /** Ids of the copies sent to it. */
  copyIds: number;
  /** The next link to this peer sends a full copy, whatever it knows of our stream. */
  copyNext: boolean;
  /** Versions the peer has seen of our stream. */
  readonly agreement: AgreedVersions;
}

/** The replicator's parts a {@linkcode ResumeState} is taken from and put back into. */
export interface ResumeTarget {
  /** This node's stream id. */
  readonly streamId: string;
  /** This node's stream. */
  readonly backlog: Backlog;
  /** Version clock. */
  readonly hlc: HybridClock;
  /** Tombstones, touches, expiry guards, flush epoch. */
  readonly merger: Merger;
  /** The peers (one for a pair). */
  readonly peers: readonly ResumePeer[];
}

/** A stopped replicator's state, per peer, that decides what can resume. */
export interface ResumeConditions {
  /** Our stream offset the peer confirmed (everything before it). */
  confirmed: number;
  /** A full copy we send it is not confirmed yet: our stream cannot go on for it. */
  sendingCopy: boolean;
  /** A full copy we receive from it is not entirely applied (incomplete, or its sweep cut short). */
  receivingCopy: boolean;
}

/**
 * Take the state to save from a stopped replicator (no link, no change any
 * more); `conditions[i]` is about `t.peers[i]`.
 */
export function captureResume(t: ResumeTarget, conditions: ResumeConditions[]): ResumeState {
  const b = t.backlog;
  const pair = t.peers.length === 1;
  let stream: ResumeState["stream"] = null;
  // A pair's peer sent an unconfirmed copy gets a new stream (and copy); a group goes on with
  // the stream for the others.
  if (!(pair && conditions[0].sendingCopy)) {
    let start = b.end;
    t.peers.forEach((p, i) => {
      const c = conditions[i];
      if (c.sendingCopy) return;
      // The peer applied all of our stream (the stop's drain): as a link does when it sees
      // that, every version the clock issued or saw so far is agreed.
      if (c.confirmed >= b.end) p.agreement.caughtUp(b.end, t.hlc.last);
      // What the peer confirmed it will never ask for again; the rest it may.
      start = Math.min(start, Math.max(b.start, c.confirmed));
    });
    const w = new Writer(Math.max(16, b.end - start));
    b.copyTo(w, start, b.end);
    stream = { id: t.streamId, start, bytes: w.buf.slice(0, w.length) };
  }
  const m = t.merger;
  return {
    stream,
    hlc: t.hlc.last,
    flushEpoch: m.flushEpoch,
    pendingFlush: m.pendingFlush,
    tombstones: [...m.tombstones],
    touches: [...m.touches],
    expiries: [...m.expiries],
    peers: t.peers.map((p, i) => {
      const c = conditions[i];
      return {
        address: p.address,
        index: p.index,
        peerStream: c.receivingCopy || p.peerStream === null ? null : { ...p.peerStream },
        confirmed: c.confirmed,
        copyNext: !pair && c.sendingCopy,
        copyIds: p.copyIds,
        agreement: p.agreement.save(),
      };
    }),
  };
}

/**
 * Put a saved state back into a new replicator whose stream id is
 * `state.stream.id` (or a new one when that is null) and whose store holds
 * the cache saved with it. Each peer takes the saved part of the same
 * address (a pair's one peer: the one saved); a peer not in the state
 * knows nothing (full copies with it).
 */
export function restoreResume(t: ResumeTarget, state: ResumeState): void {
  t.hlc.observe(state.hlc);
  const goesOn = state.stream !== null && state.stream.id === t.streamId;
  if (goesOn) t.backlog.restore(state.stream!.start, state.stream!.bytes);
  const b = t.backlog;
  for (const p of t.peers) {
    const saved = t.peers.length === 1 && state.peers.length === 1
      ? state.peers[0]
      : state.peers.find((s) => s.address === p.address);
    if (saved === undefined) continue;
    p.peerStream = saved.peerStream === null ? null : { ...saved.peerStream };
    p.copyIds = Math.max(p.copyIds, saved.copyIds);
    if (!goesOn) continue; // a new stream: no peer knows any of it
    p.agreement.restore(saved.agreement);
    p.confirmed = Math.min(b.end, Math.max(b.start, saved.confirmed));
    p.copyNext = saved.copyNext;
  }
  t.merger.restore(
    state.flushEpoch,
    state.pendingFlush,
    state.tombstones,
    state.touches,
    state.expiries,
  );
}

/** Encode a state for the image (a multiple of 4 bytes). */
export function encodeResume(s: ResumeState): Uint8Array {
  const w = new Bytes();
  w.latin1(MAGIC);
  w.u32(VERSION);
  w.u32((s.stream ? PART_STREAM : 0) | (s.pendingFlush ? PART_PENDING : 0));
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
  for (const map of [s.tombstones, s.touches, s.expiries]) {
    w.u32(map.length);
    for (const [key, version] of map) {
      w.u16(key.length);
      w.latin1(key);
      w.f64(version);
    }
  }
  w.u32(s.peers.length);
  for (const p of s.peers) {
    const address = p.address.slice(0, 255);
    w.u8(address.length);
    w.latin1(address);
    w.u16(p.index);
    w.u8((p.peerStream ? PEER_POSITION : 0) | (p.copyNext ? PEER_COPY_NEXT : 0));
    if (p.peerStream) {
      w.id(p.peerStream.id);
      w.f64(p.peerStream.offset);
    }
    w.f64(p.confirmed);
    w.f64(p.copyIds);
    writeAgreement(w, p.agreement);
  }
  while (w.length % 4 !== 0) w.u8(0);
  return w.done();
}

function writeAgreement(w: Bytes, a: AgreementState): void {
  w.f64(a.baseOffset);
  w.f64(a.baseVersion);
  const n = Math.min(a.offsets.length, a.versions.length);
  w.u32(n);
  for (let i = 0; i < n; i++) {
    w.f64(a.offsets[i]);
    w.f64(a.versions[i]);
  }
}

function readAgreement(r: Reader): AgreementState {
  const baseOffset = r.count();
  const baseVersion = r.count();
  const n = r.u32();
  const offsets: number[] = [], versions: number[] = [];
  for (let i = 0; i < n; i++) {
    offsets.push(r.count());
    versions.push(r.count());
  }
  return { baseOffset, baseVersion, offsets, versions };
}

/** Decode a saved state; a string says why it is unusable. Never throws. */
export function decodeResume(bytes: Uint8Array): ResumeState | string {
  const r = new Reader(bytes);
  try {
    if (r.latin1(MAGIC.length) !== MAGIC) return "not a replication state";
    const version = r.u32();
    if (version !== VERSION && version !== VERSION_NO_GUARDS && version !== VERSION_PAIR) {
      return `replication state version ${version}, expected ${VERSION}`;
    }
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
    let pairPosition: PeerResumeState["peerStream"] = null;
    if (version === VERSION_PAIR && parts & PART_PEER) {
      pairPosition = { id: r.id(), offset: r.count() };
    }
    const maps: Array<Array<[string, number]>> = version === VERSION ? [[], [], []] : [[], []];
    for (const map of maps) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const len = r.u16();
        if (len === 0 || len > MAX_KEY) throw new Error("bad key length");
        const key = r.latin1(len);
        map.push([key, r.count()]);
      }
    }
    const peers: PeerResumeState[] = [];
    if (version === VERSION_PAIR) {
      // The peer confirmed what the stream's saved part begins at.
      peers.push({
        address: "",
        index: 0,
        peerStream: pairPosition,
        confirmed: stream?.start ?? 0,
        copyNext: false,
        copyIds: 0,
        agreement: readAgreement(r),
      });
    } else {
      const n = r.u32();
      if (n > MAX_PEERS) throw new Error("too many peers");
      for (let i = 0; i < n; i++) {
        const address = r.latin1(r.u8());
        if (!/^[!-~]*$/.test(address)) throw new Error("bad peer address");
        const index = r.u16();
        const flags = r.u8();
        const peerStream = flags & PEER_POSITION ? { id: r.id(), offset: r.count() } : null;
        const confirmed = r.count();
        const copyIds = r.count();
        const agreement = readAgreement(r);
        const copyNext = (flags & PEER_COPY_NEXT) !== 0;
        peers.push({ address, index, peerStream, confirmed, copyNext, copyIds, agreement });
      }
    }
    if (r.rest().some((x) => x !== 0)) throw new Error("trailing bytes");
    return {
      stream,
      hlc,
      flushEpoch,
      pendingFlush: parts & PART_PENDING ? { epoch: pendingEpoch, atLocal: pendingAt } : null,
      tombstones: maps[0],
      touches: maps[1],
      expiries: maps[2] ?? [],
      peers,
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

  u8(): number {
    return this.#dv.getUint8(this.#take(1));
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
