/**
 * The full copy ("marugoto"): every live item, then every tombstone, as
 * CS/CD frames, produced a chunk at a time with a store cursor so the link
 * can interleave it with the live stream and clients keep being served.
 * Changes made while the copy runs travel on the stream, and the receiver
 * merges by version, so nothing written during the copy is lost.
 *
 * A copy outlives its link: the sender keeps its {@linkcode OutgoingCopy}
 * (the cursor as of the last chunk the receiver acknowledged) and the
 * receiver its {@linkcode IncomingCopy}, so a link that drops mid-copy goes
 * on from there, plus the backlog tail, instead of starting over.
 *
 * Exactness: the receiver marks every item the copy mentions (one bit per
 * store chunk) and, once the copy is complete, drops the unmarked items not
 * newer than the point both nodes last agreed on (`agreed`: the sender
 * had, or had applied, every such version, so it no longer has them because
 * it deleted, flushed or evicted them). Items written on the receiver since
 * are newer and stay; they reach the sender in the other direction.
 * @module
 */

import { decodeAscii, type Writer } from "../protocol/mod.ts";
import type { Store } from "../store/mod.ts";
import { wireBits } from "./merge.ts";
import type { Merger } from "./merge.ts";
import { VERB, writeDeleteFrame, writeItemFrame } from "./stream.ts";

/** Items visited per store scan call. */
const SCAN_BATCH = 256;

/** Where a {@linkcode Snapshot} stands: store cursor (-1: items done), counts. */
export interface SnapshotPosition {
  /** Store scan cursor; -1 once every item was written. */
  cursor: number;
  /** Items written up to here. */
  items: number;
}

/** One pass over the store and the tombstones, rewindable to a {@linkcode SnapshotPosition}. */
export class Snapshot {
  /** Items written so far. */
  items = 0;
  /** Tombstones written so far. */
  tombstones = 0;
  #store: Store;
  #merger: Merger;
  #startUnix: number;
  #cursor = 0;
  #tombs: Iterator<[string, number]> | null = null;
  #key = new Uint8Array(256);

  /** A copy of `store` (and `merger`'s tombstones); expiry is written as unix time. */
  constructor(store: Store, merger: Merger, startUnix: number) {
    this.#store = store;
    this.#merger = merger;
    this.#startUnix = startUnix;
  }

  /** The current position (what {@linkcode fill} wrote so far). */
  position(): SnapshotPosition {
    return { cursor: this.#cursor, items: this.items };
  }

  /**
   * Go back to `pos`: items from there are written again (the receiver
   * merges them idempotently); the tombstones, few, all over again.
   */
  rewind(pos: SnapshotPosition): void {
    this.#cursor = pos.cursor;
    this.items = pos.items;
    this.#tombs = null;
    this.tombstones = 0;
  }

  /** Append about `budget` bytes of frames to `out`; true once everything was written. */
  fill(out: Writer, budget: number): boolean {
    const store = this.#store;
    const limit = out.length + budget;
    const touches = this.#merger.touches;
    while (this.#cursor >= 0 && out.length < limit) {
      this.#cursor = store.scan(this.#cursor, SCAN_BATCH, (h) => {
        let touch = 0;
        if (touches.size > 0) {
          const ko = store.keyOffset(h);
          touch = touches.get(decodeAscii(store.buffer(h), ko, ko + store.keyLength(h))) ?? 0;
        }
        const bits = wireBits(store.userBits(h));
        writeItemFrame(out, VERB.CS, store, h, bits, touch, this.#startUnix);
        this.items++;
      });
    }
    if (this.#cursor >= 0) return false;
    this.#tombs ??= this.#merger.tombstones.entries();
    while (out.length < limit) {
      const next = this.#tombs.next();
      if (next.done) return true;
      const [name, version] = next.value;
      const n = Math.min(name.length, this.#key.length);
      for (let i = 0; i < n; i++) this.#key[i] = name.charCodeAt(i);
      writeDeleteFrame(out, VERB.CD, this.#key, 0, n, version);
      this.tombstones++;
    }
    return false;
  }
}

/** Bytes of full-copy frames per chunk (one MARK each; the live stream goes first). */
export const COPY_CHUNK = 128 * 1024;
/**
 * Chunks of a copy the receiver may have unacknowledged: bounds the bytes in
 * flight (what heartbeats and the stream can queue behind, and what a cut
 * link makes us send again) to COPY_WINDOW * COPY_CHUNK, 4 MiB. 1 MiB was
 * too little to cover a receiver that is descheduled or busy applying: the
 * sender sat idle with a full window and copies ran at ~0.65x the rate of an
 * unbounded window (same-run ratio on a loaded 2-core host); 4 MiB matched it.
 */
export const COPY_WINDOW = 32;

/** MARK numbers grow across copies, so a late CACK of a replaced copy acknowledges nothing. */
let markSeq = 0;

/**
 * In a group: how far a copy's sender had applied another member's stream
 * when the copy began (the KNOWN frame), so the copy holds all of it.
 */
export interface KnownStream {
  /** The member's index in the group's list. */
  member: number;
  /** Its stream id. */
  id: string;
  /** Offset of that stream applied. */
  offset: number;
}

/** KNOWN frames an incoming copy keeps (a group's other members; more is a bad peer). */
const KNOWN_MAX = 256;

/** The sender's side of one full copy, kept across links to the same peer process. */
export class OutgoingCopy {
  /** The receiving node. */
  readonly peerNode: string;
  /** Copy id, new for every copy this process starts. */
  readonly id: number;
  /** Our stream offset the copy began at (changes from there go on the stream). */
  readonly startOffset: number;
  /** Versions up to this: the receiver had (or removed) them before the copy. */
  readonly agreed: number;
  /** The pass over the store. */
  readonly snapshot: Snapshot;
  /** True once every frame was generated (COPIED written). */
  generated = false;
  /** What the sender knew of other members' streams at the start (KNOWN, before COPIED). */
  readonly known: KnownStream[];
  #marks: Array<{ seq: number; pos: SnapshotPosition }> = [];
  #acked: SnapshotPosition = { cursor: 0, items: 0 };

  /** A new copy of `snapshot` for `peerNode`, streamed from `startOffset`. */
  constructor(
    peerNode: string,
    id: number,
    startOffset: number,
    agreed: number,
    snapshot: Snapshot,
    known: KnownStream[] = [],
  ) {
    this.known = known;
    this.peerNode = peerNode;
    this.id = id;
    this.startOffset = startOffset;
    this.agreed = agreed;
    this.snapshot = snapshot;
  }

  /** True while another chunk may be sent (fewer than COPY_WINDOW unacknowledged). */
  get canSend(): boolean {
    return this.#marks.length < COPY_WINDOW;
  }

  /** Number the chunk just written; returns the MARK sequence to send. */
  mark(): number {
    const seq = ++markSeq;
    this.#marks.push({ seq, pos: this.snapshot.position() });
    return seq;
  }

  /** The receiver applied everything up to MARK `seq`. */
  acked(seq: number): void {
    while (this.#marks.length > 0 && this.#marks[0].seq <= seq) {
      this.#acked = this.#marks.shift()!.pos;
    }
  }

  /** A new link: go on from the last acknowledged chunk. */
  resume(): void {
    this.#marks = [];
    this.generated = false;
    this.snapshot.rewind(this.#acked);
  }
}

/**
 * The receiver's side of one full copy: which items it mentioned (a bit
 * per store chunk slot, 4 KiB per MiB page), and the thresholds of the
 * exactness rule.
 */
export class IncomingCopy {
  /** The sender's stream id. */
  readonly stream: string;
  /** The sender's copy id. */
  readonly id: number;
  /** Drop our unmentioned items of a version up to this once the copy is complete. */
  readonly dropUpTo: number;
  /** Refuse copied items we lack of a version up to this (we removed them). */
  readonly rejectUpTo: number;
  /** True once COPIED was applied. */
  complete = false;
  /** Items the sweep dropped. */
  dropped = 0;
  /** The sender's KNOWN frames: other members' streams this copy holds up to an offset. */
  readonly known: KnownStream[] = [];
  #marks: Uint32Array | null = new Uint32Array(1024);

  /** State for copy `id` of `stream` with the two thresholds. */
  constructor(stream: string, id: number, dropUpTo: number, rejectUpTo: number) {
    this.stream = stream;
    this.id = id;
    this.dropUpTo = dropUpTo;
    this.rejectUpTo = rejectUpTo;
  }

  /** A KNOWN frame arrived (a repeated copy tail sends them again: the latest wins). */
  learn(k: KnownStream): void {
    const i = this.known.findIndex((x) => x.member === k.member);
    if (i >= 0) this.known[i] = k;
    else if (this.known.length < KNOWN_MAX) this.known.push(k);
  }

  /** Item handle `h` was mentioned by the copy. */
  mark(h: number): void {
    let marks = this.#marks;
    if (marks === null) return;
    const w = h >>> 5;
    if (w >= marks.length) {
      let n = marks.length;
      while (n <= w) n *= 2;
      const next = new Uint32Array(n);
      next.set(marks);
      this.#marks = marks = next;
    }
    marks[w] |= 1 << (h & 31);
  }

  /** Was item handle `h` mentioned? */
  marked(h: number): boolean {
    const marks = this.#marks, w = h >>> 5;
    return marks !== null && w < marks.length && (marks[w] & (1 << (h & 31))) !== 0;
  }

  /** True once {@linkcode release}d: complete and swept, the receiver is exact. */
  get released(): boolean {
    return this.#marks === null;
  }

  /** The sweep is over (or not needed): free the marks; marking is a no-op from now on. */
  release(): void {
    this.#marks = null;
  }

  /**
   * Drop up to `max` unmentioned items not newer than {@linkcode dropUpTo}
   * from `cursor` on; returns the next cursor (-1: done) and counts in `dropped`.
   */
  sweep(store: Store, cursor: number, max: number): number {
    const limit = this.dropUpTo;
    if (this.#marks === null) return -1;
    return store.scan(cursor, max, (h) => {
      if (store.cas(h) <= limit && !this.marked(h)) {
        store.unlink(h);
        this.dropped++;
      }
    });
  }
}
