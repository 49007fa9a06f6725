/**
 * Replication with several serve threads. The replicator (link, backlog,
 * tombstones) runs on the main thread; each worker thread's engine gets a
 * {@linkcode WorkerReplication} that writes its changes, as stream frames,
 * into one shared ring (under the store lock, so the ring's order is the
 * store's) and wakes the main thread, which drains the ring into the
 * backlog as if the change had been made there. Versions come from one
 * hybrid clock in shared memory; `--repl-sync` acknowledgements and the
 * `stats` lines cross threads through the same shared block.
 * @module
 */

import {
  type Engine,
  type MutationObserver,
  type Server,
  statLine,
  type SyncBarrier,
} from "../server/mod.ts";
import { log } from "../log.ts";
import { errorText } from "../transport/mod.ts";
import { Writer } from "../protocol/mod.ts";
import { flushTime, wireBits } from "./merge.ts";
import { VERB, writeDeleteFrame, writeFlushFrame, writeItemLine } from "./stream.ts";
import { CLOCK_STATE_BYTES, HybridClock } from "./versions.ts";

/** Shared memory of replication across serve threads (post it to workers). */
export interface ReplicationShare {
  /** Control words (Int32 at 0..63) and ring/ack offsets (BigInt64 from byte 64). */
  ctl: SharedArrayBuffer;
  /** The change ring. */
  ring: SharedArrayBuffer;
  /** The hybrid clock's state. */
  clock: SharedArrayBuffer;
  /** The main thread's latest `stats replication` lines. */
  text: SharedArrayBuffer;
}

// Int32 control words.
/** Bumped (and notified) to wake the main thread. */
const C_WAKE = 0;
/** 1 while the main thread waits for a wake. */
const C_SLEEP = 1;
/** Stats requests made / answered; length of the answer. */
const C_STATS_REQ = 2;
const C_STATS_DONE = 3;
const C_STATS_LEN = 4;
/** Bumped (and notified) when the acked offset or the link changed. */
const C_ACK_GEN = 5;
/** 1 while a peer is linked and streaming. */
const C_LINKED = 6;
/** Bumped when a link ends. */
const C_LINK_EPOCH = 7;
/** A writer could not wait for ring space: changes were dropped, a full copy must follow. */
const C_OVERFLOW = 8;
/** Bumped (and notified) when the main thread frees ring space. */
const C_HEAD_GEN = 9;
/** --repl-sync: 0 off, 1 strict, 2 with --repl-sync-degrade. */
const C_SYNC = 10;
/** --repl-sync-timeout (ms). */
const C_SYNC_TIMEOUT = 11;
/** Log note of this down period: 0 none, 1 a worker degraded, 2 a worker refused, 3 logged. */
const C_SYNC_NOTE = 12;
/** 1 once a worker stamped N_SINCE (a cheap test before the BigInt compare-and-swap). */
const C_SINCE_SET = 13;
// BigInt64 offsets (index in the BigInt64Array at byte 64).
/** Ring bytes consumed / produced (logical, ever growing). */
const N_HEAD = 0;
const N_TAIL = 1;
/** Ring offset whose changes the peer has applied. */
const N_ACKED = 2;
/** Workers' sync writes acknowledged locally only (degrade) / answered SERVER_ERROR. */
const N_DEGRADED = 3;
const N_REFUSED = 4;
/**
 * When the oldest change not drained yet was made (µs since the epoch; 0:
 * none stamped): the main thread times the lag of what it drains from it.
 */
const N_SINCE = 5;

/** Minimum ring size. */
const RING_MIN = 8 * 1048576;
/** Bytes for the stats text. */
const TEXT_BYTES = 16384;
/**
 * Longest a set waits for ring space before it is dropped: the item stays in
 * the store, so the full copy that follows carries it. Deletes and flushes
 * leave nothing in the store to copy, so they always wait.
 */
const RING_WAIT_MS = 5000;
/** Longest a worker's `stats` waits for the main thread's answer. */
const STATS_WAIT_MS = 500;

/**
 * Shared replication memory for serve threads; the ring holds two of the
 * largest items. `sync`: --repl-sync, with `degrade` and `syncTimeoutMs`.
 */
export function createReplicationShare(
  maxItemSize: number,
  sync: boolean,
  degrade = false,
  syncTimeoutMs = 2000,
): ReplicationShare {
  const share: ReplicationShare = {
    ctl: new SharedArrayBuffer(64 + 8 * 8),
    ring: new SharedArrayBuffer(Math.max(RING_MIN, 2 * (maxItemSize + 2048))),
    clock: new SharedArrayBuffer(CLOCK_STATE_BYTES),
    text: new SharedArrayBuffer(TEXT_BYTES),
  };
  new HybridClock(undefined, undefined, share.clock); // random node bits
  const ctl = new Int32Array(share.ctl, 0, 16);
  if (sync) Atomics.store(ctl, C_SYNC, degrade ? 2 : 1);
  Atomics.store(ctl, C_SYNC_TIMEOUT, syncTimeoutMs);
  return share;
}

/** Typed views of a {@linkcode ReplicationShare}. */
class Views {
  readonly ctl: Int32Array;
  readonly nums: BigInt64Array;
  readonly ring: Uint8Array;
  readonly text: Uint8Array;

  constructor(share: ReplicationShare) {
    this.ctl = new Int32Array(share.ctl, 0, 16);
    this.nums = new BigInt64Array(share.ctl, 64, 8);
    this.ring = new Uint8Array(share.ring);
    this.text = new Uint8Array(share.text);
  }

  num(i: number): number {
    return Number(Atomics.load(this.nums, i));
  }

  setNum(i: number, v: number): void {
    Atomics.store(this.nums, i, BigInt(v));
  }

  bump(word: number): void {
    Atomics.add(this.ctl, word, 1);
    Atomics.notify(this.ctl, word);
  }

  /** A worker's change enters the ring: stamp it unless an older one is stamped already. */
  stampSince(): void {
    if (Atomics.load(this.ctl, C_SINCE_SET) === 1) return;
    const us = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
    if (Atomics.compareExchange(this.nums, N_SINCE, 0n, us) === 0n) {
      Atomics.store(this.ctl, C_SINCE_SET, 1);
    }
  }

  /**
   * The main thread drains: when the oldest change was made, in this
   * thread's performance.now() time (now when no worker stamped one).
   */
  takeSince(): number {
    const us = Atomics.exchange(this.nums, N_SINCE, 0n);
    Atomics.store(this.ctl, C_SINCE_SET, 0);
    const now = performance.now();
    return us === 0n ? now : Math.min(now, Number(us) / 1000 - performance.timeOrigin);
  }

  /** Wake the main thread if it sleeps. */
  wakeMain(force = false): void {
    if (force || Atomics.load(this.ctl, C_SLEEP) === 1) {
      Atomics.store(this.ctl, C_SLEEP, 0);
      this.bump(C_WAKE);
    }
  }
}

/**
 * A worker thread's side: versions from the shared clock, changes into
 * the ring, `--repl-sync` waits and `stats` lines from the main thread.
 */
export class WorkerReplication implements MutationObserver, SyncBarrier {
  #v: Views;
  #engine: Engine;
  #hlc: HybridClock;
  #scratch = new Writer(1024);
  #fresh = -1;
  /** Ring offset after this thread's last change. */
  #written = 0;
  #ringWaitMs: number;

  /**
   * Hook `server`'s engine (a worker's) into the shared replication state.
   * `ringWaitMs` bounds how long a set waits for ring space (tests shorten it).
   */
  constructor(
    server: Pick<Server, "engine" | "barrier">,
    share: ReplicationShare,
    ringWaitMs = RING_WAIT_MS,
  ) {
    this.#ringWaitMs = ringWaitMs;
    this.#v = new Views(share);
    this.#engine = server.engine;
    this.#hlc = HybridClock.attach(share.clock);
    const engine = this.#engine;
    engine.store.nextCas = () => (this.#fresh = this.#hlc.tick());
    engine.explicitCasMax = -1; // versions come from the clock only (see Replicator)
    engine.observer = this;
    engine.store.onExpire = (h) => this.#expired(h);
    if (Atomics.load(this.#v.ctl, C_SYNC) !== 0) server.barrier = this;
    engine.extraStats = (out) => this.writeStats(out);
    engine.statsGroups.replication = (out) => this.writeStats(out);
  }

  /** Item h was created or changed. */
  stored(h: number): void {
    const store = this.#engine.store;
    const cas = store.cas(h);
    let touch = 0;
    if (cas === this.#fresh) this.#fresh = -1;
    else {
      // Expiry-only change (the CAS stays): it needs a version of its own (see Replicator).
      this.#hlc.observe(cas);
      touch = this.#hlc.tick();
    }
    const w = this.#scratch;
    w.length = 0;
    const bits = wireBits(store.userBits(h));
    writeItemLine(w, VERB.S, store, h, bits, touch, this.#engine.clock.processStartUnix);
    const vo = store.valueOffset(h);
    this.#write(w.buf, 0, w.length, store.buffer(h), vo, vo + store.valueLength(h) + 2, false);
  }

  /** The key src[start, end) was deleted. */
  deleted(src: Uint8Array, start: number, end: number): void {
    const w = this.#scratch;
    w.length = 0;
    writeDeleteFrame(w, VERB.D, src, start, end, this.#hlc.tick());
    this.#write(w.buf, 0, w.length, w.buf, 0, 0, true);
  }

  /**
   * Item h expired on this thread: the main thread's merge must remember its
   * version (see Merger.expired). Told through the ring as a `CD` frame,
   * which the main thread keeps off the stream; skipped when the ring is full.
   */
  #expired(h: number): void {
    const store = this.#engine.store;
    const w = this.#scratch;
    w.length = 0;
    const ko = store.keyOffset(h);
    writeDeleteFrame(w, VERB.CD, store.buffer(h), ko, ko + store.keyLength(h), store.cas(h));
    const v = this.#v;
    const tail = v.num(N_TAIL);
    if (tail + w.length - v.num(N_HEAD) > v.ring.length) return;
    const at = put(v.ring, tail, w.buf, 0, w.length);
    v.setNum(N_TAIL, at);
    this.#written = at;
    v.wakeMain();
  }

  /** flush_all ran with this delay (seconds). */
  flushed(delaySeconds: number): void {
    const w = this.#scratch;
    w.length = 0;
    writeFlushFrame(w, this.#hlc.tick(), flushTime(this.#engine.clock.unixNow(), delaySeconds));
    this.#write(w.buf, 0, w.length, w.buf, 0, 0, true);
  }

  /**
   * Append a[as, ae) + b[bs, be) as one frame; waits for room. Only a frame
   * the store can reproduce (`keep` false) is ever dropped, and then a full
   * copy is flagged: never a silent loss.
   */
  #write(
    a: Uint8Array,
    as: number,
    ae: number,
    b: Uint8Array,
    bs: number,
    be: number,
    keep: boolean,
  ): void {
    const v = this.#v;
    const n = ae - as + be - bs;
    const cap = v.ring.length;
    const tail = v.num(N_TAIL);
    if (n > cap || !this.#room(tail, n, cap, keep ? Infinity : this.#ringWaitMs)) {
      // The main thread did not drain for RING_WAIT_MS: a full copy will cover this change.
      Atomics.store(v.ctl, C_OVERFLOW, 1);
      v.wakeMain(true);
      return;
    }
    v.stampSince();
    let at = tail;
    at = put(v.ring, at, a, as, ae);
    at = put(v.ring, at, b, bs, be);
    v.setNum(N_TAIL, at);
    this.#written = at;
    v.wakeMain();
  }

  /** Wait (at most `waitMs`) until n bytes are free after `tail`. */
  #room(tail: number, n: number, cap: number, waitMs: number): boolean {
    const v = this.#v;
    if (tail + n - v.num(N_HEAD) <= cap) return true;
    const deadline = performance.now() + waitMs;
    while (tail + n - v.num(N_HEAD) > cap) {
      const gen = Atomics.load(v.ctl, C_HEAD_GEN);
      v.wakeMain(true);
      if (tail + n - v.num(N_HEAD) <= cap) break;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(v.ctl, C_HEAD_GEN, gen, Math.min(left, 10));
    }
    return true;
  }

  /** Ring offset after this thread's last change ({@linkcode SyncBarrier}). */
  position(): number {
    return this.#written;
  }

  /** Wait (bounded) until the peer applied this thread's changes up to `target`. */
  wait(target: number, writes: number): Promise<number> | number {
    const v = this.#v;
    const acked = v.num(N_ACKED);
    if (acked >= target) return acked;
    if (this.#degrade() && Atomics.load(v.ctl, C_LINKED) !== 1) {
      return this.#degraded(target, writes);
    }
    return this.#waitAcked(target, writes);
  }

  /** `writes` replies became SERVER_ERROR. */
  refused(writes: number): void {
    const v = this.#v;
    Atomics.add(v.nums, N_REFUSED, BigInt(writes));
    if (Atomics.compareExchange(v.ctl, C_SYNC_NOTE, 0, 2) === 0) v.wakeMain(true);
  }

  #degrade(): boolean {
    return Atomics.load(this.#v.ctl, C_SYNC) === 2;
  }

  /** Acknowledge locally (--repl-sync-degrade): counted, and logged once by the main thread. */
  #degraded(target: number, writes: number): number {
    const v = this.#v;
    Atomics.add(v.nums, N_DEGRADED, BigInt(writes));
    if (Atomics.compareExchange(v.ctl, C_SYNC_NOTE, 0, 1) === 0) v.wakeMain(true);
    return target;
  }

  async #waitAcked(target: number, writes: number): Promise<number> {
    const v = this.#v;
    const deadline = performance.now() + Atomics.load(v.ctl, C_SYNC_TIMEOUT);
    for (;;) {
      const gen = Atomics.load(v.ctl, C_ACK_GEN);
      const acked = v.num(N_ACKED);
      if (acked >= target) return acked;
      const alone = Atomics.load(v.ctl, C_LINKED) !== 1;
      const left = deadline - performance.now();
      if (this.#degrade() && (alone || left <= 0)) return this.#degraded(target, writes);
      if (left <= 0) return acked;
      const r = Atomics.waitAsync(v.ctl, C_ACK_GEN, gen, left);
      if (r.async) await r.value;
    }
  }

  /** The main thread's replication lines (asked for now; the last known ones if it is slow). */
  writeStats(out: Writer): void {
    const v = this.#v;
    const req = Atomics.add(v.ctl, C_STATS_REQ, 1) + 1;
    v.wakeMain(true);
    const deadline = performance.now() + STATS_WAIT_MS;
    for (;;) {
      const done = Atomics.load(v.ctl, C_STATS_DONE);
      if (done >= req) break;
      const left = deadline - performance.now();
      if (left <= 0) break;
      Atomics.wait(v.ctl, C_STATS_DONE, done, Math.min(left, 20));
    }
    const len = Atomics.load(v.ctl, C_STATS_LEN);
    if (len > 0) out.bytes(v.text.slice(0, len));
    else statLine(out, "repl_link", "unknown");
  }
}

function put(ring: Uint8Array, at: number, src: Uint8Array, s: number, e: number): number {
  const n = e - s;
  if (n <= 0) return at;
  const cap = ring.length;
  const pos = at % cap;
  const first = Math.min(n, cap - pos);
  ring.set(src.subarray(s, s + first), pos);
  if (first < n) ring.set(src.subarray(s + first, e), 0);
  return at + n;
}

/** What the main thread does with drained frames. */
export interface RingSink {
  /**
   * One frame (complete) of a worker's change, made at `at` at the latest
   * (this thread's performance.now() time).
   */
  frame(buf: Uint8Array, start: number, end: number, at: number): void;
  /**
   * Changes were lost, to a full ring or to ring bytes that did not parse
   * (`corrupt`, a bug: never to happen): the peer needs a full copy.
   */
  overflowed(corrupt: boolean): void;
  /** The ring was drained up to this offset (its frames are in the backlog now). */
  drained(ringEnd: number): void;
  /** A worker degraded or refused the first --repl-sync write of a down period: log it. */
  syncNote?(degraded: boolean): void;
}

/** Ring/backlog offset pairs kept while the peer lags (beyond this, confirmations coarsen). */
const MAX_MARKS = 65536;

/**
 * The main thread's side: drains the ring, answers `stats` requests,
 * publishes acknowledgements, and takes the store lock without ever
 * blocking a worker that waits for ring space.
 */
export class MainReplicationShare {
  #v: Views;
  #scratch = new Uint8Array(1 << 16);
  #ringMarks: number[] = [];
  #backlogMarks: number[] = [];
  #stopped = false;
  /** Renders the stats lines. */
  renderStats: ((out: Writer) => void) | null = null;
  #statsOut = new Writer(4096);
  #sink: RingSink;
  #parse: (buf: Uint8Array, start: number, end: number) => number;

  /** `parse` returns one frame's length in buf[start, end) (0 or less: none). */
  constructor(
    share: ReplicationShare,
    sink: RingSink,
    parse: (buf: Uint8Array, start: number, end: number) => number,
  ) {
    this.#v = new Views(share);
    this.#sink = sink;
    this.#parse = parse;
  }

  /** Drain the ring and answer a pending stats request. */
  service(): void {
    this.drain();
    const v = this.#v;
    const note = Atomics.load(v.ctl, C_SYNC_NOTE);
    if (
      (note === 1 || note === 2) && Atomics.compareExchange(v.ctl, C_SYNC_NOTE, note, 3) === note
    ) {
      this.#sink.syncNote?.(note === 1);
    }
    const req = Atomics.load(v.ctl, C_STATS_REQ);
    if (req !== Atomics.load(v.ctl, C_STATS_DONE) && this.renderStats) {
      const out = this.#statsOut;
      out.length = 0;
      this.renderStats(out);
      const n = Math.min(out.length, v.text.length);
      v.text.set(out.buf.subarray(0, n), 0);
      Atomics.store(v.ctl, C_STATS_LEN, n);
      Atomics.store(v.ctl, C_STATS_DONE, req);
      Atomics.notify(v.ctl, C_STATS_DONE);
    }
  }

  /** Hand every change in the ring to the sink, oldest first. */
  drain(): void {
    const v = this.#v;
    const head = v.num(N_HEAD);
    if (head !== v.num(N_TAIL)) {
      // Taken before the tail is read: no change up to it was made before the stamp (but one
      // that enters the ring in the instant between this and the tail's read).
      const since = v.takeSince();
      const tail = v.num(N_TAIL);
      const n = tail - head;
      if (this.#scratch.length < n) {
        let size = this.#scratch.length;
        while (size < n) size *= 2;
        this.#scratch = new Uint8Array(size);
      }
      const buf = this.#scratch, cap = v.ring.length, pos = head % cap;
      const first = Math.min(n, cap - pos);
      buf.set(v.ring.subarray(pos, pos + first), 0);
      if (first < n) buf.set(v.ring.subarray(0, n - first), first);
      v.setNum(N_HEAD, tail);
      v.bump(C_HEAD_GEN);
      let corrupt = false;
      for (let at = 0; at < n && !corrupt;) {
        // Bytes that are no frame cannot be resynchronised: the rest is dropped, a full copy
        // covers it (the store has every change), and the process goes on.
        try {
          const used = this.#parse(buf, at, n);
          if (used <= 0 || at + used > n) corrupt = true;
          else this.#sink.frame(buf, at, at + used, since);
          at += used;
        } catch {
          corrupt = true;
        }
      }
      this.#sink.drained(tail);
      if (corrupt) this.#sink.overflowed(true);
    }
    if (Atomics.load(v.ctl, C_OVERFLOW) === 1) {
      Atomics.store(v.ctl, C_OVERFLOW, 0);
      this.#sink.overflowed(false);
    }
  }

  /** The backlog reached `backlogEnd` with the ring drained to `ringEnd`. */
  mark(ringEnd: number, backlogEnd: number): void {
    const n = this.#ringMarks.length;
    if (n > 0 && this.#ringMarks[n - 1] === ringEnd) return;
    if (n >= MAX_MARKS) {
      // Move the last mark later instead: changes before it are confirmed later, never early.
      this.#ringMarks[n - 1] = ringEnd;
      this.#backlogMarks[n - 1] = backlogEnd;
      return;
    }
    this.#ringMarks.push(ringEnd);
    this.#backlogMarks.push(backlogEnd);
  }

  /** A new down period: the next degraded or refused write is logged again. */
  resetNote(): void {
    Atomics.store(this.#v.ctl, C_SYNC_NOTE, 0);
  }

  /** Workers' sync writes acknowledged locally only, and refused. */
  syncCounts(): { degraded: number; refused: number } {
    return { degraded: this.#v.num(N_DEGRADED), refused: this.#v.num(N_REFUSED) };
  }

  /**
   * Publish the link state and how far the peer confirmed our stream
   * (`confirmed`, a backlog offset). Waiting workers see it; a write is
   * released only once confirmed (or when its wait times out).
   */
  publish(linked: boolean, confirmed: number, ended = false): void {
    const v = this.#v;
    let ring = v.num(N_ACKED);
    let i = 0;
    while (i < this.#ringMarks.length && this.#backlogMarks[i] <= confirmed) {
      ring = Math.max(ring, this.#ringMarks[i]);
      i++;
    }
    if (i > 0) {
      this.#ringMarks.splice(0, i);
      this.#backlogMarks.splice(0, i);
    }
    const changed = ring !== v.num(N_ACKED) ||
      Atomics.load(v.ctl, C_LINKED) !== (linked ? 1 : 0) || ended;
    if (!changed) return;
    v.setNum(N_ACKED, ring);
    Atomics.store(v.ctl, C_LINKED, linked ? 1 : 0);
    if (ended) Atomics.add(v.ctl, C_LINK_EPOCH, 1);
    v.bump(C_ACK_GEN);
  }

  /** Serve wakes from workers until {@linkcode stop}: drain the ring, answer stats. */
  async run(): Promise<void> {
    const v = this.#v;
    while (!this.#stopped) {
      const seen = Atomics.load(v.ctl, C_WAKE);
      Atomics.store(v.ctl, C_SLEEP, 1);
      if (
        v.num(N_HEAD) === v.num(N_TAIL) &&
        Atomics.load(v.ctl, C_STATS_REQ) === Atomics.load(v.ctl, C_STATS_DONE) &&
        Atomics.load(v.ctl, C_OVERFLOW) === 0
      ) {
        const r = Atomics.waitAsync(v.ctl, C_WAKE, seen, 1000);
        if (r.async) await r.value;
      }
      Atomics.store(v.ctl, C_SLEEP, 0);
      if (this.#stopped) break;
      try {
        this.service();
      } catch (err) {
        // A bug here must not end the drain loop (workers would wait on it forever).
        log.warn(`replication: change ring service failed: ${errorText(err)}`);
      }
    }
  }

  /** End {@linkcode run}. */
  stop(): void {
    this.#stopped = true;
    this.#v.wakeMain(true);
  }
}
