/**
 * The cache engine's state and its protocol-neutral operations: the store,
 * clock and counters of one serve thread (shared between threads through
 * {@linkcode EngineShared}), and memcached's semantics of a lookup
 * (fetch), a delete, an incr/decr (do_add_delta) and flush_all, which the
 * text, meta and binary commands all reply from; a store (do_store_item)
 * is storage.ts's.
 * @module
 */

import {
  Op,
  parseU64,
  PROTOCOL_VERSION,
  REPLY,
  type Request,
  type Writer,
} from "../protocol/mod.ts";
import { lastBig } from "../protocol/bytes.ts";
import { MAX_CAS, SharedLock, Store, toAbsoluteExptime } from "../store/mod.ts";
import { ServerClock } from "./clock.ts";
import { ServerStats, SharedStats, SlabStat } from "./stats.ts";
import { PrefixStats } from "./prefix_stats.ts";
import { ConnTable } from "./conns.ts";
import { ReadBudget } from "./read_budget.ts";
import { OutputBudget } from "./output_budget.ts";
import { type PeerBody, Peers } from "./peers.ts";
import { Watchers } from "./watch.ts";
import { Tunables } from "./tuning.ts";
import type {
  BindingProtocol,
  EngineOptions,
  EngineShared,
  MutationObserver,
} from "./engine_options.ts";

/** Most items one connection's unwritten replies are tracked as holding (EngineBase.pin). */
const PIN_LIMIT = 1024;

/** Reported version (the one constant lives in lib/protocol). */
export const VERSION: string = PROTOCOL_VERSION;

const MAX_U64 = (1n << 64n) - 1n;

/**
 * The cache engine's state: the store, the clock and the counters, and
 * the operations every protocol's commands share; commands.ts's `Engine`
 * adds the running of requests. One per serve thread; all connections of
 * the thread share it, and with {@linkcode EngineShared} several threads
 * share one cache.
 */
export class EngineBase {
  /** The item store. */
  readonly store: Store;
  /** memcached-style clock. */
  readonly clock: ServerClock;
  /** Counters for `stats`. */
  stats: ServerStats = new ServerStats();
  /** Mutation listener (replication), or null. */
  observer: MutationObserver | null = null;
  /**
   * Largest CAS a client may set with meta `E`: the store's CAS width.
   * Replication sets -1 (versions are CAS values, and only its clock may
   * choose them): `E` is then an unknown flag, as in memcached 1.6.18.
   */
  explicitCasMax: number = MAX_CAS;
  /**
   * memcached -C clears this: clients then see and compare every CAS as 0
   * (the items keep theirs: replication orders versions by them).
   */
  readonly casEnabled: boolean;
  /** Current `verbosity` level. */
  verbosity = 0;
  /** Settings of `slabs automove`, `lru`, `lru_crawler` (this thread's). */
  readonly tunables: Tunables;
  /** This thread's connections (`stats conns`, -o idle_timeout). */
  readonly conns: ConnTable;
  /** `watch` connections of this thread (log lines of fetches, stores, connections). */
  readonly watchers: Watchers = new Watchers();
  /** `stats detail` counters (shared by the serve threads). */
  readonly prefixStats: PrefixStats;
  /** memcached -R, as given (connections run at least one request per read). */
  readonly reqsPerEvent: number;
  /** This thread's share of -o read_buf_mem_limit. */
  readonly readBudget: ReadBudget;
  /** This thread's share of the bound on output held by connections' writes (output_budget.ts). */
  readonly outputBudget: OutputBudget;
  /** The options it was made with. */
  readonly options: EngineOptions;
  /** Extra `stats` lines; replication registers here after construction. */
  extraStats: ((out: Writer) => void) | undefined;
  /** Named `stats <group>` sections; replication adds `replication` after construction. */
  statsGroups: Record<string, (out: Writer) => void>;
  #lock: SharedLock | null = null;
  #shared: SharedStats | null = null;
  #threads = 1;

  /**
   * A new engine with an empty store, or, with `shared`, one thread's view
   * of a cache that other threads serve too.
   */
  constructor(options: EngineOptions, clock = new ServerClock(), shared?: EngineShared) {
    this.options = options;
    this.tunables = new Tunables(options.minChunk, options.growthFactor, options.startup);
    this.casEnabled = options.startup?.casEnabled ?? true;
    this.extraStats = options.extraStats;
    // No prototype: `stats toString` must not find Object's methods.
    this.statsGroups = Object.assign(Object.create(null), options.statsGroups);
    this.clock = clock;
    this.conns = new ConnTable(
      () => clock.now(),
      () => this.stats.idleKicks++,
      this.watchers,
    );
    this.conns.idleTimeout = options.idleTimeout ?? 0;
    this.reqsPerEvent = options.reqsPerEvent ?? 20;
    this.readBudget = new ReadBudget(options.readBufMemLimit ?? 0, shared?.threads ?? 1);
    this.outputBudget = new OutputBudget(options.outputMemLimit ?? 0, shared?.threads ?? 1);
    this.store = new Store(
      { ...options, useCas: options.startup?.casEnabled ?? true },
      clock,
      shared?.memory,
    );
    this.store.onEvict = (h) => {
      if (!this.watchers.active) return;
      const st = this.store, now = this.clock.now(), exp = st.exptime(h);
      const ko = st.keyOffset(h);
      this.watchers.evicted(
        st.buffer(h),
        ko,
        ko + st.keyLength(h),
        st.fetched(h),
        exp === 0 ? -1 : exp - now,
        now - st.lastAccess(h),
        st.slabClass(h),
        st.valueLength(h),
      );
    };
    const st = options.startup;
    this.prefixStats = new PrefixStats(shared?.prefixes, st?.prefixDelimiter.charCodeAt(0));
    // memcached -D turns the counting on from the start.
    if (!shared && st?.detailEnabled) this.prefixStats.enabled = true;
    if (shared) {
      this.#lock = new SharedLock(shared.lock);
      this.#shared = new SharedStats(shared.threads, shared.stats);
      this.stats = this.#shared.thread(shared.thread);
      this.#threads = shared.threads;
      this.#joinThreads(new Int32Array(shared.registry));
    }
  }

  /** The CAS clients see for item h: 0 under -C, as memcached's items then have none. */
  clientCas(h: number): number {
    return this.casEnabled ? this.store.cas(h) : 0;
  }

  /**
   * Items that replies not yet written out still reference, as memcached's
   * `resp->item` (mg and binary get hits, until its next write-out), as
   * handle, CAS pairs (a handle may be reused): an incr or decr of one
   * makes a new item (exact length, unfetched) instead of changing it in
   * place. At most PIN_LIMIT, past which later hits are not tracked.
   */
  #pinned: number[] = [];

  /** A reply not yet written out holds item `h` (see #pinned). */
  pin(h: number): void {
    if (this.#pinned.length < PIN_LIMIT * 2) this.#pinned.push(h, this.store.cas(h));
  }

  /** The replies so far are written out: they hold no items any more. */
  unpinAll(): void {
    this.#pinned.length = 0;
  }

  #isPinned(h: number): boolean {
    const p = this.#pinned;
    for (let i = 0; i < p.length; i += 2) {
      if (p[i] === h && p[i + 1] === this.store.cas(h)) return true;
    }
    return false;
  }

  /** Other serve threads' messages reach this engine through here (see peers.ts). */
  peers: Peers | null = null;

  #joinThreads(registry: Int32Array): void {
    this.conns.share(registry);
    this.watchers.share(registry);
    this.watchers.forward = (lines, flags) => this.peers?.send(-1, { kind: "log", lines, flags });
  }

  /** A message from serve thread `from`. */
  receive(from: number, body: PeerBody): void {
    switch (body.kind) {
      case "conns?":
        this.peers?.send(from, { kind: "conns", ask: body.ask, rows: this.conns.rows(null) });
        return;
      case "conns":
        this.peers?.answered(body.ask, body.rows);
        return;
      case "log":
        this.watchers.deliver(body.lines, body.flags);
        return;
      case "auth": // (the listener's: threads.ts)
        return;
    }
  }

  /** Shared memory for `threads` threads serving this engine's cache (thread 0 is this one). */
  share(threads: number): EngineShared {
    if (this.#shared) throw new Error("engine is already shared");
    const lock = new SharedLock();
    const stats = new SharedStats(threads);
    this.#lock = lock;
    this.#shared = stats;
    stats.thread(0).row.set(this.stats.row);
    this.stats = stats.thread(0);
    this.#threads = threads;
    this.readBudget.split(this.options.readBufMemLimit ?? 0, threads);
    this.outputBudget.split(this.options.outputMemLimit ?? 0, threads);
    const registry = new SharedArrayBuffer(16);
    this.#joinThreads(new Int32Array(registry));
    return {
      registry,
      memory: this.store.memory(),
      lock: lock.buffer,
      stats: stats.buffer,
      prefixes: this.prefixStats.buffer,
      thread: 0,
      threads,
    };
  }

  /**
   * Replication's part in taking the shared lock: `waiting` runs while
   * another thread holds it, `acquired` once it is held.
   */
  lockHooks: { waiting: () => void; acquired: () => void } | null = null;

  /** Before a batch of requests: take the cache (other threads wait). */
  beginBatch(): void {
    const lock = this.#lock;
    if (lock === null) return;
    this.watchers.refresh(); // a watcher on another thread makes this one emit
    const hooks = this.lockHooks;
    if (hooks === null) lock.acquire();
    else {
      lock.acquire(hooks.waiting);
      hooks.acquired();
    }
  }

  /** After a batch: let other threads in. */
  endBatch(): void {
    this.unpinAll(); // memcached transmits at the end of a read event
    this.#lock?.release();
    if (this.watchers.active) this.watchers.sendForwarded();
  }

  /** memcached -B: the protocol connections speak (auto: chosen by their first byte). */
  get protocol(): BindingProtocol {
    return this.options.protocol ?? "auto";
  }

  /** Serve threads sharing the cache (1 when not shared). */
  get threads(): number {
    return this.#threads;
  }

  /** The counters summed over all threads (this thread's when not shared). */
  totals(): ServerStats {
    return this.#shared ? this.#shared.total() : this.stats;
  }

  /** Client connections open now, over all threads. */
  connections(): number {
    return this.#shared ? this.#shared.connections() : this.stats.currConnections;
  }

  /** Convert a client exptime (relative, absolute or negative) to clock seconds. */
  absoluteExptime(exptime: number): number {
    return toAbsoluteExptime(exptime, this.clock.now(), this.clock.processStartUnix);
  }

  /**
   * One key of get/gat/touch (any protocol): counts it, and on a hit bumps
   * it and, with `touch`, sets its absolute `exptime`. Returns the item's
   * handle, or -1 on a miss.
   */
  fetch(buf: Uint8Array, start: number, end: number, touch: boolean, exptime: number): number {
    const store = this.store;
    const h = store.find(buf, start, end);
    if (this.prefixStats.enabled) this.prefixStats.recordGet(buf, start, end, h >= 0);
    if (touch) this.stats.cmdTouch++;
    else this.stats.cmdGet++;
    if (this.watchers.active) {
      const found = h >= 0;
      this.watchers.fetched(
        buf,
        start,
        end,
        found,
        found ? store.slabClass(h) : 0,
        found ? store.valueLength(h) : 0,
      );
    }
    if (h < 0) {
      if (touch) this.stats.touchMisses++;
      else this.stats.getMisses++;
      return -1;
    }
    if (touch) {
      this.stats.touchHits++;
      this.stats.slab(SlabStat.TOUCH_HITS, store.slabClass(h));
      store.setExptime(h, exptime);
    } else {
      this.stats.getHits++;
      this.stats.slab(SlabStat.GET_HITS, store.slabClass(h));
    }
    store.bump(h);
    if (touch) this.observer?.stored(h);
    return h;
  }

  /** Last CAS assigned by a store (meta `c` return flag). */
  lastCas = 0;

  /**
   * Delete a key (any protocol) unless `cas` (0 = any) differs from the
   * item's: DELETED, NOT_FOUND or EXISTS.
   */
  remove(buf: Uint8Array, start: number, end: number, cas: number): Uint8Array {
    const store = this.store;
    if (this.prefixStats.enabled) this.prefixStats.recordDelete(buf, start, end);
    const h = store.find(buf, start, end);
    if (h < 0) {
      this.stats.deleteMisses++;
      return REPLY.NOT_FOUND;
    }
    if (cas !== 0 && this.clientCas(h) !== cas) return REPLY.EXISTS;
    this.stats.deleteHits++;
    this.stats.slab(SlabStat.DELETE_HITS, store.slabClass(h));
    store.unlink(h);
    this.observer?.deleted(buf, start, end);
    return REPLY.DELETED;
  }

  /**
   * incr/decr (any protocol) of the request's key by its delta, as
   * memcached's do_add_delta: STORED (the result is in
   * {@linkcode deltaResult}, the new CAS in {@linkcode lastCas}),
   * NOT_FOUND (counted as a miss when `countMiss`), NON_NUMERIC,
   * OUT_OF_MEMORY, or EXISTS when `cas` (0 = any) differs from the item's.
   */
  delta(req: Request, cas: number, countMiss: boolean): Uint8Array {
    const incr = req.op === Op.INCR;
    const store = this.store;
    const h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
    if (h < 0) {
      if (countMiss) {
        if (incr) this.stats.incrMisses++;
        else this.stats.decrMisses++;
      }
      return REPLY.NOT_FOUND;
    }
    if (store.valueLength(h) === 0) return REPLY.NON_NUMERIC;
    if (cas !== 0 && this.clientCas(h) !== cas) return REPLY.EXISTS;
    const cls = store.slabClass(h);
    const r = this.addDelta(h, incr, req.delta, req.deltaBig);
    if (r === null) return REPLY.NON_NUMERIC;
    if (r < 0) return REPLY.OUT_OF_MEMORY;
    if (incr) this.stats.incrHits++;
    else this.stats.decrHits++;
    this.stats.slab(incr ? SlabStat.INCR_HITS : SlabStat.DECR_HITS, cls);
    this.lastCas = this.clientCas(r);
    return REPLY.STORED;
  }

  /** The decimal result of the last successful {@linkcode delta}. */
  get deltaResult(): string {
    return this.#deltaText;
  }

  /**
   * Create a counter holding `initial` in decimal (flags 0, absolute
   * `exptime`) for the request's key, as a missing key's incr with an
   * initial value does. Returns the linked handle, or -1 without memory.
   */
  createCounter(req: Request, initial: bigint, exptime: number, explicitCas = -1): number {
    const store = this.store;
    const text = String(initial);
    const h = store.alloc(req.keyBuf, req.keyStart, req.keyEnd, 0, exptime, text.length);
    if (h < 0) return -1;
    const b = store.buffer(h), vo = store.valueOffset(h);
    for (let i = 0; i < text.length; i++) b[vo + i] = text.charCodeAt(i);
    // No binary-key mark, as memcached's `ma` N: a later `mg ... k` shows the key's bytes.
    const cas = store.link(h, explicitCas >= 0 ? explicitCas : undefined);
    this.lastCas = this.casEnabled ? cas : 0;
    this.#deltaText = text;
    return h;
  }

  #deltaText = "";

  /**
   * memcached's do_add_delta on a live item: 64-bit wrap on incr, floor 0
   * on decr, in place (space padded) when the result is not longer.
   * Returns the resulting handle, null for a non-numeric value, or an alloc
   * error (< 0). The decimal result is left in #deltaText.
   */
  addDelta(h: number, incr: boolean, delta: number, deltaBig: bigint): number | null {
    const store = this.store;
    const vlen = store.valueLength(h);
    if (vlen === 0) return null;
    const buf = store.buffer(h), vo = store.valueOffset(h);
    const value = parseU64(buf, vo, vo + vlen + 2);
    if (value < 0) return null;
    let text: string;
    if (value + delta <= Number.MAX_SAFE_INTEGER && delta <= Number.MAX_SAFE_INTEGER) {
      text = String(incr ? value + delta : delta > value ? 0 : value - delta);
    } else {
      const v = lastBigOf(buf, vo, vo + vlen + 2);
      text = String(incr ? (v + deltaBig) & MAX_U64 : deltaBig > v ? 0n : v - deltaBig);
    }
    this.#deltaText = text;
    const res = text.length;
    if (res <= vlen && !this.#isPinned(h)) {
      for (let i = 0; i < res; i++) buf[vo + i] = text.charCodeAt(i);
      buf.fill(32, vo + res, vo + vlen);
      store.setCas(h, store.nextCas());
      store.update(h);
      this.observer?.stored(h);
      return h;
    }
    const ko = store.keyOffset(h);
    const n = store.alloc(
      buf,
      ko,
      ko + store.keyLength(h),
      store.flags(h),
      store.exptime(h),
      res,
      h,
    );
    if (n < 0) return n;
    const nb = store.buffer(n), no = store.valueOffset(n);
    for (let i = 0; i < res; i++) nb[no + i] = text.charCodeAt(i);
    // memcached's new item (do_add_delta) has no binary-key mark: `mg ... k` shows the raw key.
    store.link(n);
    this.observer?.stored(n);
    return n;
  }

  /** False under memcached -F (flush_all refused). */
  get flushEnabled(): boolean {
    return !this.options.flushDisabled;
  }

  /** flush_all (any protocol) with the client's delay (0 = now). */
  flushAll(exptime: number): void {
    this.stats.cmdFlush++;
    // memcached: items stored at or before now + delay - 1 die once that second comes; under
    // -C (no CAS to tell apart the items of one second) up to now + delay, this second included.
    const cutoff = this.casEnabled ? 1 : 0;
    const delay = exptime > 0
      ? Math.max(0, this.absoluteExptime(exptime) - this.clock.now() - cutoff)
      : 0;
    if (this.observer === null) {
      // memcached: the flushed items stay until read (get_flushed) or reclaimed, which its LRU
      // maintainer does within a second or so; -C has no CAS to tell them apart: freed now.
      if (delay === 0 && this.casEnabled) this.store.flushLazily();
      else this.store.flush(delay, !this.casEnabled);
      if (delay > 0 || this.casEnabled) this.#reclaimAfter(delay + 1);
    } else if (delay === 0) this.store.unlinkAll();
    // Replicated, the store's delayed-flush slot holds the flushes by version, and only the
    // merge (on the main thread, later for a worker's flush) sets it. Set here by this node's
    // time it dropped what a worker stored meanwhile in an immediate flush's second under -C
    // (the peer keeps those), and a delayed one brought back what a flush that had come killed.
    this.observer?.flushed(delay);
  }

  /** The last sweep a flush_all asked for (ms, 0: none). */
  #sweepAt = 0;
  /** When the one sweep timer fires (ms, 0: none armed). */
  #timerAt = 0;
  #sweepTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * In `seconds`, sweep what a flush_all left dead, under the store's lock.
   * One timer at most, so a client sending flush_all after flush_all gets
   * at most one walk of the store per second, not one per flush; a sweep
   * asked for before the armed one moves it earlier.
   */
  #reclaimAfter(seconds: number): void {
    const at = Date.now() + seconds * 1000;
    this.#sweepAt = Math.max(this.#sweepAt, at);
    if (this.#timerAt !== 0 && this.#timerAt <= at) return; // a sweep comes first anyway
    clearTimeout(this.#sweepTimer);
    this.#armSweep(at);
  }

  #armSweep(at: number): void {
    this.#timerAt = at;
    const timer = setTimeout(() => {
      this.#timerAt = 0;
      this.beginBatch();
      try {
        this.store.reclaimFlushed();
      } finally {
        this.endBatch();
      }
      // A later flush's items (a second apart at least).
      if (this.#sweepAt > Date.now()) this.#armSweep(Math.max(this.#sweepAt, Date.now() + 1000));
      else this.#sweepAt = 0;
    }, Math.max(0, at - Date.now()));
    Deno.unrefTimer(timer); // a stopping server does not wait for it
    this.#sweepTimer = timer;
  }

  /** `stats reset` (any protocol). */
  resetStats(): void {
    if (this.#shared) this.#shared.reset();
    else this.stats.reset();
    this.store.resetStats(); // shared by the threads: once is enough
    this.prefixStats.clear();
  }
}

/** Re-parse an item's value with full 64-bit precision. */
function lastBigOf(buf: Uint8Array, start: number, end: number): bigint {
  parseU64(buf, start, end);
  return lastBig;
}
