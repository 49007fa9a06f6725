/**
 * Command execution for `serve`: a parsed request -> store operations ->
 * reply bytes appended to the connection's output batch. Semantics follow
 * memcached 1.6 (do_store_item, do_add_delta, the meta commands).
 * @module
 */

import {
  base64Encode,
  decodeAscii,
  Op,
  parseU64,
  PROTOCOL_VERSION,
  REPLY,
  type Request,
  Writer,
} from "../protocol/mod.ts";
import { lastBig } from "../protocol/bytes.ts";
import {
  ALLOC_TOO_LARGE,
  MAX_CAS,
  SharedLock,
  Store,
  type StoreMemory,
  type StoreOptions,
  toAbsoluteExptime,
} from "../store/mod.ts";
import process from "node:process";
import { MEMREP_VERSION } from "../version.ts";
import { ServerClock } from "./clock.ts";
import { ServerStats, SharedStats, statLine } from "./stats.ts";
import type { AuthConfig, AuthSession } from "../auth/mod.ts";
import { cachedump, metadumpClasses } from "./admin.ts";
import { ITEM_KEY_BINARY, ITEM_STALE, ITEM_TOKEN_SENT } from "./items.ts";
import { PrefixStats } from "./prefix_stats.ts";
import { ConnTable } from "./conns.ts";
import { Watcher, Watchers, watchFlags } from "./watch.ts";
import { cacheMemlimit, lruCommand, lruCrawlerSettings, slabsCommand, Tunables } from "./tuning.ts";

/** What the connection does after a command. */
export const Action = {
  /** Keep reading. */
  CONTINUE: 0,
  /** Send what is queued, then close (quit). */
  CLOSE: 1,
  /** Close now and stop the server (shutdown). */
  SHUTDOWN: 2,
} as const;

export { ITEM_KEY_BINARY, ITEM_STALE, ITEM_TOKEN_SENT };

/** Receives every mutation, as resulting state (replication subscribes here). */
export interface MutationObserver {
  /** Item h was created or changed (value, exptime, flags or cas). */
  stored(h: number): void;
  /** The key src[start, end) was deleted. */
  deleted(src: Uint8Array, start: number, end: number): void;
  /** flush_all ran with this delay in seconds (0 = now). */
  flushed(delaySeconds: number): void;
}

/** Engine configuration: the store's plus server behaviour. */
export interface EngineOptions extends StoreOptions {
  /** Allow the `shutdown` command (memcached -A). */
  enableShutdown?: boolean;
  /** Max simultaneous connections (reported in stats). */
  maxConnections?: number;
  /** Extra `stats` lines (replication state). */
  extraStats?: (out: Writer) => void;
  /** Named `stats <group>` sections beyond memcached's (e.g. replication). */
  statsGroups?: Record<string, (out: Writer) => void>;
  /** memcached -B: which protocols connections speak (default auto: by the first byte). */
  protocol?: BindingProtocol;
  /** Authentication (-S, -Y), shown in `stats settings`. */
  auth?: AuthConfig;
  /** memcached -F: flush_all is refused. */
  flushDisabled?: boolean;
  /** memcached -s: the unix-domain socket served instead of TCP (shown in `stats settings`). */
  unixSocket?: string;
  /** memcached -a: the socket file's permission bits (default 0o700). */
  unixMask?: number;
  /**
   * `shutdown graceful` raises SIGUSR1 in this process, as memcached's
   * graceful stop is its SIGUSR1 (with -e: save, then exit). Only for a
   * process that handles SIGUSR1 (serve); otherwise it stops like `shutdown`.
   */
  gracefulBySignal?: boolean;
  /** memcached -e: the warm-restart file (shown in `stats settings`). */
  memoryFile?: string;
  /** Lines the cli adds to `stats settings` before memory_file (memcached's ssl_* group). */
  extraSettings?: Array<[string, string | number]>;
  /** -o idle_timeout: close connections silent this many seconds (0: never). */
  idleTimeout?: number;
}

/** memcached -B values. */
export type BindingProtocol = "auto" | "ascii" | "binary";

/** `stats settings` binding_protocol, as memcached's prot_text() names them. */
const BINDING_NAME: Record<BindingProtocol, string> = {
  auto: "auto-negotiate",
  ascii: "ascii",
  binary: "binary",
};

/** What a serve thread shares with the others: the cache, the lock, the counters. */
export interface EngineShared {
  /** The store's shared memory (from `Store.memory()`). */
  memory: StoreMemory;
  /** The lock every thread holds while it touches the store. */
  lock: SharedArrayBuffer;
  /** Counter rows of all threads. */
  stats: SharedArrayBuffer;
  /** This thread's row. */
  thread: number;
  /** The `stats detail` table. */
  prefixes: SharedArrayBuffer;
  /** Number of threads. */
  threads: number;
}

/** Reported version (the one constant lives in lib/protocol). */
export const VERSION: string = PROTOCOL_VERSION;

/** Per-connection state the engine needs. */
export interface Session {
  /**
   * A reply still being produced (metadump): appends its next part and
   * returns true once it is complete. The connection calls it until then.
   */
  more: ((out: Writer) => boolean) | null;
  /**
   * Login state when the server requires authentication (-Y / -S), else
   * null. Until it is authenticated the connection only reads logins.
   */
  auth?: AuthSession | null;
  /** Clock seconds of the last request read (`stats conns`, idle_timeout). */
  lastCmd?: number;
  /** Set by `watch`: the connection then only receives these log lines. */
  watcher?: Watcher | null;
  /** True while a request waits for the rest of its data (`stats conns`: conn_nread). */
  nread?: boolean;
}

const M = {
  b: 98,
  c: 99,
  f: 102,
  h: 104,
  k: 107,
  l: 108,
  O: 79,
  q: 113,
  s: 115,
  t: 116,
  u: 117,
  v: 118,
  N: 78,
  R: 82,
  T: 84,
  I: 73,
  E: 69,
  C: 67,
};

const MAX_U64 = (1n << 64n) - 1n;

/**
 * The cache engine: owns the store, the clock and the counters, and runs
 * requests. One per serve thread; all connections of the thread share it,
 * and with {@linkcode EngineShared} several threads share one cache.
 */
export class Engine {
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
  /** Extra `stats` lines; replication registers here after construction. */
  extraStats: ((out: Writer) => void) | undefined;
  /** Named `stats <group>` sections; replication adds `replication` after construction. */
  statsGroups: Record<string, (out: Writer) => void>;
  #options: EngineOptions;
  #lock: SharedLock | null = null;
  #shared: SharedStats | null = null;
  #threads = 1;

  /**
   * A new engine with an empty store, or, with `shared`, one thread's view
   * of a cache that other threads serve too.
   */
  constructor(options: EngineOptions, clock = new ServerClock(), shared?: EngineShared) {
    this.#options = options;
    this.tunables = new Tunables(options.minChunk, options.growthFactor);
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
    this.store = new Store(options, clock, shared?.memory);
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
    this.prefixStats = new PrefixStats(shared?.prefixes);
    if (shared) {
      this.#lock = new SharedLock(shared.lock);
      this.#shared = new SharedStats(shared.threads, shared.stats);
      this.stats = this.#shared.thread(shared.thread);
      this.#threads = shared.threads;
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
    return {
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
    const hooks = this.lockHooks;
    if (hooks === null) lock.acquire();
    else {
      lock.acquire(hooks.waiting);
      hooks.acquired();
    }
  }

  /** After a batch: let other threads in. */
  endBatch(): void {
    this.#lock?.release();
  }

  /** memcached -B: the protocol connections speak (auto: chosen by their first byte). */
  get protocol(): BindingProtocol {
    return this.#options.protocol ?? "auto";
  }

  /** Client connections open now, over all threads. */
  connections(): number {
    return this.#shared ? this.#shared.total().currConnections : this.stats.currConnections;
  }

  /** Convert a client exptime (relative, absolute or negative) to clock seconds. */
  absoluteExptime(exptime: number): number {
    return toAbsoluteExptime(exptime, this.clock.now(), this.clock.processStartUnix);
  }

  /**
   * Run one parsed request, appending its reply to `out`. The request's
   * buffer must stay untouched until this returns.
   */
  execute(req: Request, out: Writer, session: Session): number {
    const mark = out.length;
    const action = this.#run(req, out, session);
    if (req.noreply && req.op < Op.MG) out.length = mark; // text noreply drops everything
    return action;
  }

  #run(req: Request, out: Writer, session: Session): number {
    switch (req.op) {
      case Op.ERROR:
        if (req.close) return Action.CLOSE;
        // memcached -F refuses before it parses the delay.
        if (this.#options.flushDisabled && req.tokenIs(0, "flush_all")) {
          if (req.error === REPLY.BAD_EXPTIME) return this.#flush(req, out);
        }
        if (req.error) out.bytes(req.error);
        return Action.CONTINUE;
      case Op.GET:
      case Op.GETS:
      case Op.GAT:
      case Op.GATS:
        this.#get(req, out);
        return Action.CONTINUE;
      case Op.SET:
      case Op.ADD:
      case Op.REPLACE:
      case Op.APPEND:
      case Op.PREPEND:
      case Op.CAS:
        this.#update(req, out);
        return Action.CONTINUE;
      case Op.DELETE:
        this.#delete(req, out);
        return Action.CONTINUE;
      case Op.INCR:
      case Op.DECR:
        this.#arith(req, out);
        return Action.CONTINUE;
      case Op.TOUCH:
        this.#touch(req, out);
        return Action.CONTINUE;
      case Op.FLUSH_ALL:
        return this.#flush(req, out);
      case Op.VERSION:
        out.text("VERSION " + VERSION + "\r\n");
        return Action.CONTINUE;
      case Op.VERBOSITY:
        this.verbosity = Math.min(
          Number(decodeAscii(req.buf, req.tokStart[1], req.tokEnd[1])) || 0,
          2,
        );
        out.bytes(REPLY.OK);
        return Action.CONTINUE;
      case Op.QUIT:
        return Action.CLOSE;
      case Op.SHUTDOWN:
        return this.#shutdown(req, out);
      case Op.STATS:
        this.#statsCommand(req, out, session);
        return Action.CONTINUE;
      case Op.MN:
        out.bytes(REPLY.MN);
        return Action.CONTINUE;
      case Op.ME:
        this.#metaDebug(req, out);
        return Action.CONTINUE;
      case Op.MG:
        this.stats.cmdMeta++;
        this.#metaGet(req, out);
        return Action.CONTINUE;
      case Op.MS:
        this.stats.cmdMeta++;
        this.#metaSet(req, out);
        return Action.CONTINUE;
      case Op.MD:
        this.stats.cmdMeta++;
        this.#metaDelete(req, out);
        return Action.CONTINUE;
      case Op.MA:
        this.stats.cmdMeta++;
        this.#metaArith(req, out);
        return Action.CONTINUE;
      case Op.LRU_CRAWLER:
        this.#lruCrawler(req, out, session);
        return Action.CONTINUE;
      case Op.CACHE_MEMLIMIT:
        cacheMemlimit(req, out, this.store);
        return Action.CONTINUE;
      case Op.SLABS:
        slabsCommand(req, out, this.tunables, this.store);
        return Action.CONTINUE;
      case Op.LRU:
        lruCommand(req, out, this.tunables);
        return Action.CONTINUE;
      case Op.WATCH:
        this.#watch(req, out, session);
        return Action.CONTINUE;
      default:
        out.bytes(REPLY.ERROR);
        return Action.CONTINUE;
    }
  }

  // --- text protocol ---

  #get(req: Request, out: Writer): void {
    const withCas = req.op === Op.GETS || req.op === Op.GATS;
    const touch = req.op === Op.GAT || req.op === Op.GATS;
    const exptime = touch ? this.absoluteExptime(req.exptime) : 0;
    const buf = req.buf;
    for (let i = req.firstKey; i < req.ntokens; i++) {
      const h = this.fetch(buf, req.tokStart[i], req.tokEnd[i], touch, exptime);
      if (h >= 0) this.#valueLine(out, h, withCas);
    }
    out.bytes(REPLY.END);
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
      store.setExptime(h, exptime);
    } else this.stats.getHits++;
    store.bump(h);
    if (touch) this.observer?.stored(h);
    return h;
  }

  /** "VALUE key flags bytes [cas]\r\n" + data "\r\n". */
  #valueLine(out: Writer, h: number, withCas: boolean): void {
    const store = this.store;
    const page = store.buffer(h);
    const ko = store.keyOffset(h), vo = store.valueOffset(h), vlen = store.valueLength(h);
    out.text("VALUE ");
    out.bytes(page, ko, ko + store.keyLength(h));
    out.byte(32);
    out.uint(store.flags(h));
    out.byte(32);
    out.uint(vlen);
    if (withCas) {
      out.byte(32);
      out.uint(store.cas(h));
    }
    out.crlf();
    out.bytes(page, vo, vo + vlen + 2);
  }

  #update(req: Request, out: Writer): void {
    const cas = req.op === Op.CAS;
    out.bytes(this.storeValue(req, cas ? "cas" : req.op, cas ? req.cas : 0, req.op === Op.SET));
  }

  /**
   * A storage command of any protocol: the request's key, flags, exptime
   * (as the client sent it) and value, stored as memcached's do_store_item
   * in `mode` (an Op or "cas") with compare value `reqCas` (0 = none).
   * Returns the text reply naming the result (STORED, NOT_STORED, EXISTS,
   * NOT_FOUND, TOO_LARGE, NO_MEMORY, BAD_CHUNK); {@linkcode lastCas} holds
   * the new CAS. `dropOld`: a failed allocation also unlinks the key (set).
   */
  storeValue(req: Request, mode: number | "cas", reqCas: number, dropOld: boolean): Uint8Array {
    if (!this.watchers.active) return this.#storeValue(req, mode, reqCas, dropOld);
    // memcached's do_store_item looks the key up first: that fetch is logged too.
    const store = this.store;
    const old = store.find(req.keyBuf, req.keyStart, req.keyEnd);
    const oldClass = old >= 0 ? store.slabClass(old) : 0;
    const oldSize = old >= 0 ? store.valueLength(old) : 0;
    const reply = this.#storeValue(req, mode, reqCas, dropOld);
    if (reply !== REPLY.TOO_LARGE && reply !== REPLY.NO_MEMORY && reply !== REPLY.BAD_CHUNK) {
      const k = req.keyBuf;
      this.watchers.fetched(k, req.keyStart, req.keyEnd, old >= 0, oldClass, oldSize);
    }
    this.#logStore(req, mode, reply, oldClass);
    return reply;
  }

  /** A `mutations` log line for a store and its result. */
  #logStore(req: Request, mode: number | "cas", reply: Uint8Array, oldClass: number): void {
    const status = reply === REPLY.STORED
      ? 1
      : reply === REPLY.EXISTS
      ? 2
      : reply === REPLY.NOT_FOUND
      ? 3
      : reply === REPLY.TOO_LARGE
      ? 4
      : reply === REPLY.NO_MEMORY
      ? 5
      : 0;
    const cmd = mode === "cas" ? "cas" : STORE_CMD[mode] ?? "na";
    const h = status === 1 ? this.store.find(req.keyBuf, req.keyStart, req.keyEnd) : -1;
    this.watchers.stored(
      req.keyBuf,
      req.keyStart,
      req.keyEnd,
      status,
      cmd,
      req.exptime < 0 ? 0 : req.exptime >>> 0,
      h >= 0 ? this.store.slabClass(h) : oldClass,
      req.dataEnd - req.dataStart,
    );
  }

  #storeValue(req: Request, mode: number | "cas", reqCas: number, dropOld: boolean): Uint8Array {
    this.stats.cmdSet++;
    if (this.prefixStats.enabled) this.prefixStats.recordSet(req.keyBuf, req.keyStart, req.keyEnd);
    if (req.tooLarge) return this.#storeFailed(req, ALLOC_TOO_LARGE, dropOld);
    if (req.badChunk) return REPLY.BAD_CHUNK;
    const h = this.#allocValue(req, req.flags, this.absoluteExptime(req.exptime));
    if (h < 0) return this.#storeFailed(req, h, dropOld);
    return this.#storeItem(h, mode, reqCas, false, -1);
  }

  /** Allocate an item for the request's key and copy its value in. */
  #allocValue(req: Request, flags: number, exptime: number): number {
    const store = this.store;
    const vlen = req.dataEnd - req.dataStart;
    const h = store.alloc(req.keyBuf, req.keyStart, req.keyEnd, flags, exptime, vlen);
    if (h < 0) return h;
    const vo = store.valueOffset(h);
    store.buffer(h).set(req.buf.subarray(req.dataStart, req.dataEnd), vo);
    return h;
  }

  /** A storage command could not get memory: the reply; for set, drop the stale item. */
  #storeFailed(req: Request, code: number, dropOld: boolean): Uint8Array {
    const reply = code === ALLOC_TOO_LARGE ? REPLY.TOO_LARGE : REPLY.NO_MEMORY;
    if (code === ALLOC_TOO_LARGE) this.stats.storeTooLarge++;
    else this.stats.storeNoMemory++;
    if (dropOld) {
      const old = this.store.find(req.keyBuf, req.keyStart, req.keyEnd);
      if (old >= 0) {
        this.store.unlink(old);
        this.observer?.deleted(req.keyBuf, req.keyStart, req.keyEnd);
      }
    }
    return reply;
  }

  /**
   * memcached's do_store_item: link the new unlinked item h according to
   * the mode. Returns the text reply (STORED, NOT_STORED, EXISTS,
   * NOT_FOUND). `reqCas` is the client's compare value (0 = none).
   * `newCas` >= 0 assigns an explicit CAS (meta E).
   */
  #storeItem(
    h: number,
    mode: number | "cas",
    reqCas: number,
    setStale: boolean,
    newCas: number,
  ): Uint8Array {
    const store = this.store;
    const buf = store.buffer(h);
    const ko = store.keyOffset(h);
    const old = store.find(buf, ko, ko + store.keyLength(h));
    this.lastCas = 0;
    if (old >= 0) {
      const oldCas = store.cas(old);
      const casRes = reqCas === 0
        ? "none"
        : reqCas === oldCas
        ? "match"
        : setStale && reqCas < oldCas
        ? "stale"
        : "bad";
      switch (mode) {
        case Op.ADD:
          store.bump(old);
          store.free(h);
          return REPLY.NOT_STORED;
        case "cas":
          if (casRes === "match") {
            this.stats.casHits++;
            return this.#commit(h, newCas);
          }
          if (casRes === "stale") {
            this.stats.casHits++;
            store.setExptime(h, store.exptime(old));
            store.setUserBits(
              h,
              ITEM_STALE | (store.userBits(old) & ITEM_TOKEN_SENT) | store.userBits(h),
            );
            return this.#commit(h, newCas);
          }
          this.stats.casBadval++;
          store.free(h);
          return REPLY.EXISTS;
        case Op.APPEND:
        case Op.PREPEND: {
          if (casRes !== "none" && casRes !== "match") {
            store.free(h);
            return REPLY.EXISTS;
          }
          const joined = this.#concat(old, h, mode === Op.APPEND);
          store.free(h);
          if (joined < 0) return REPLY.NOT_STORED;
          return this.#commit(joined, newCas);
        }
        default: // set, replace
          return this.#commit(h, newCas);
      }
    }
    switch (mode) {
      case Op.ADD:
      case Op.SET:
        return this.#commit(h, newCas);
      case "cas":
        this.stats.casMisses++;
        store.free(h);
        return REPLY.NOT_FOUND;
      default:
        store.free(h);
        return REPLY.NOT_STORED;
    }
  }

  /** Link a stored item (explicit CAS when newCas >= 0) and tell the observer. */
  #commit(item: number, newCas: number): Uint8Array {
    this.lastCas = this.store.link(item, newCas >= 0 ? newCas : undefined);
    this.observer?.stored(item);
    return REPLY.STORED;
  }

  /** Last CAS assigned by a store (meta `c` return flag). */
  lastCas = 0;

  /** New item = old value + the value of h (or h + old), with old's flags and exptime. */
  #concat(old: number, h: number, append: boolean): number {
    const store = this.store;
    const oldLen = store.valueLength(old), addLen = store.valueLength(h);
    const ob = store.buffer(old), ok = store.keyOffset(old);
    const n = store.alloc(
      ob,
      ok,
      ok + store.keyLength(old),
      store.flags(old),
      store.exptime(old),
      oldLen + addLen,
      old,
    );
    if (n < 0) return n;
    const nb = store.buffer(n), no = store.valueOffset(n);
    // alloc kept old (never evicted), but may have remapped the buffers: re-read them.
    const oldBuf = store.buffer(old), oldVo = store.valueOffset(old);
    const addBuf = store.buffer(h), addVo = store.valueOffset(h);
    const first = append
      ? oldBuf.subarray(oldVo, oldVo + oldLen)
      : addBuf.subarray(addVo, addVo + addLen);
    const second = append
      ? addBuf.subarray(addVo, addVo + addLen)
      : oldBuf.subarray(oldVo, oldVo + oldLen);
    nb.set(first, no);
    nb.set(second, no + first.length);
    store.setUserBits(n, store.userBits(old) & ITEM_KEY_BINARY);
    return n;
  }

  #delete(req: Request, out: Writer): void {
    out.bytes(this.remove(req.keyBuf, req.keyStart, req.keyEnd, 0));
  }

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
    if (cas !== 0 && store.cas(h) !== cas) return REPLY.EXISTS;
    this.stats.deleteHits++;
    store.unlink(h);
    this.observer?.deleted(buf, start, end);
    return REPLY.DELETED;
  }

  #touch(req: Request, out: Writer): void {
    const store = this.store;
    this.stats.cmdTouch++;
    const h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
    if (h < 0) {
      this.stats.touchMisses++;
      out.bytes(REPLY.NOT_FOUND);
      return;
    }
    this.stats.touchHits++;
    store.setExptime(h, this.absoluteExptime(req.exptime));
    store.bump(h);
    this.observer?.stored(h);
    out.bytes(REPLY.TOUCHED);
  }

  #arith(req: Request, out: Writer): void {
    const r = this.delta(req, 0, true);
    if (r === REPLY.STORED) {
      out.text(this.#deltaText);
      out.crlf();
    } else out.bytes(r);
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
    if (cas !== 0 && store.cas(h) !== cas) return REPLY.EXISTS;
    const r = this.#addDelta(h, incr, req.delta, req.deltaBig);
    if (r === null) return REPLY.NON_NUMERIC;
    if (r < 0) return REPLY.OUT_OF_MEMORY;
    if (incr) this.stats.incrHits++;
    else this.stats.decrHits++;
    this.lastCas = store.cas(r);
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
    if (req.keyBinary) store.setUserBits(h, ITEM_KEY_BINARY);
    this.lastCas = store.link(h, explicitCas >= 0 ? explicitCas : undefined);
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
  #addDelta(h: number, incr: boolean, delta: number, deltaBig: bigint): number | null {
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
    if (res <= vlen) {
      for (let i = 0; i < res; i++) buf[vo + i] = text.charCodeAt(i);
      buf.fill(32, vo + res, vo + vlen);
      store.setCas(h, store.nextCas());
      store.bump(h);
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
    store.setUserBits(n, store.userBits(h) & ITEM_KEY_BINARY);
    store.link(n);
    this.observer?.stored(n);
    return n;
  }

  #flush(req: Request, out: Writer): number {
    if (this.#options.flushDisabled) {
      this.stats.cmdFlush++; // memcached counts the refused ones too
      out.bytes(REPLY.FLUSH_DISABLED);
      return Action.CONTINUE;
    }
    this.flushAll(req.exptime);
    out.bytes(REPLY.OK);
    return Action.CONTINUE;
  }

  /** False under memcached -F (flush_all refused). */
  get flushEnabled(): boolean {
    return !this.#options.flushDisabled;
  }

  /** flush_all (any protocol) with the client's delay (0 = now). */
  flushAll(exptime: number): void {
    this.stats.cmdFlush++;
    // memcached: items stored at or before now + delay - 1 die once that second comes.
    const delay = exptime > 0
      ? Math.max(0, this.absoluteExptime(exptime) - this.clock.now() - 1)
      : 0;
    this.store.flush(delay);
    this.observer?.flushed(delay);
  }

  #shutdown(req: Request, out: Writer): number {
    if (!this.#options.enableShutdown) {
      out.bytes(REPLY.SHUTDOWN_DISABLED);
      return Action.CONTINUE;
    }
    const graceful = req.ntokens === 2 && req.tokenIs(1, "graceful");
    if (graceful && this.#options.gracefulBySignal) {
      Deno.kill(Deno.pid, "SIGUSR1"); // any thread: the main one stops (and saves) on it
      return Action.CLOSE;
    }
    if (req.ntokens === 1 || graceful) return Action.SHUTDOWN;
    out.bytes(REPLY.SHUTDOWN_BAD_MODE);
    return Action.CONTINUE;
  }

  // --- meta protocol ---

  /** Append " k<key>" (base64 + " b" for binary keys). */
  #metaKey(out: Writer, src: Uint8Array, start: number, end: number, binary: boolean): void {
    out.text(" k");
    if (binary) {
      out.reserve(((end - start + 2) / 3) * 4 + 8);
      out.length = base64Encode(src, start, end, out.buf, out.length);
      out.text(" b");
    } else out.bytes(src, start, end);
  }

  /** Append " O<opaque>" for token i. */
  #opaque(out: Writer, req: Request, i: number): void {
    out.byte(32);
    out.bytes(req.buf, req.tokStart[i], req.tokEnd[i]);
  }

  /** Flags echoed on misses and failures: O and k, in request order. */
  #missFlags(req: Request, out: Writer, from: number): void {
    for (let i = from; i < req.ntokens; i++) {
      const c = req.buf[req.tokStart[i]];
      if (c === M.O) this.#opaque(out, req, i);
      else if (c === M.k) this.#metaKey(out, req.keyBuf, req.keyStart, req.keyEnd, req.keyBinary);
    }
  }

  #metaGet(req: Request, out: Writer): void {
    const store = this.store;
    const now = this.clock.now();
    const locked = req.has(M.l) || req.has(M.h) || req.has(M.T) || req.has(M.N) || req.has(M.R);
    let h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
    let created = false;
    if (h < 0 && req.has(M.N)) {
      h = store.alloc(req.keyBuf, req.keyStart, req.keyEnd, 0, 0, 0);
      if (h >= 0) {
        if (req.keyBinary) store.setUserBits(h, ITEM_KEY_BINARY);
        store.link(h, req.explicitCas >= 0 ? req.explicitCas : undefined);
        created = true;
      }
    }
    const ttlSet = req.has(M.T);
    if (ttlSet) this.stats.cmdTouch++;
    else this.stats.cmdGet++;
    if (h < 0) {
      if (ttlSet) this.stats.touchMisses++;
      else this.stats.getMisses++;
      if (req.noreply) return;
      out.bytes(REPLY.EN, 0, 2);
      this.#missFlags(req, out, 2);
      out.crlf();
      return;
    }
    if (ttlSet) this.stats.touchHits++;
    else this.stats.getHits++;
    if (!locked && !req.has(M.u)) store.bump(h);
    const vlen = store.valueLength(h);
    if (req.has(M.v)) {
      out.text("VA ");
      out.uint(vlen);
    } else out.text("HD");
    let won = false;
    let changed = created;
    let bits = store.userBits(h);
    const buf = req.buf;
    for (let i = 2; i < req.ntokens; i++) {
      switch (buf[req.tokStart[i]]) {
        case M.T:
          store.setExptime(h, this.absoluteExptime(req.exptime));
          changed = true;
          break;
        case M.N:
          if (created) {
            store.setExptime(h, this.absoluteExptime(req.vivify));
            won = true;
          }
          break;
        case M.R: {
          const exp = store.exptime(h);
          if (
            (bits & ITEM_TOKEN_SENT) === 0 && !created && exp !== 0 &&
            exp < this.absoluteExptime(req.recache)
          ) {
            won = true;
          }
          break;
        }
        case M.s:
          out.text(" s");
          out.uint(vlen);
          break;
        case M.t: {
          out.text(" t");
          const exp = store.exptime(h);
          if (exp === 0) out.text("-1");
          else out.uint(toU32(exp - now));
          break;
        }
        case M.c:
          out.text(" c");
          out.uint(store.cas(h));
          break;
        case M.f:
          out.text(" f");
          out.uint(store.flags(h));
          break;
        case M.l:
          out.text(" l");
          out.uint(Math.max(0, now - store.lastAccess(h)));
          break;
        case M.h:
          out.text(store.fetched(h) ? " h1" : " h0");
          break;
        case M.O:
          this.#opaque(out, req, i);
          break;
        case M.k: {
          const ko = store.keyOffset(h);
          this.#metaKey(
            out,
            store.buffer(h),
            ko,
            ko + store.keyLength(h),
            (bits & ITEM_KEY_BINARY) !== 0,
          );
          break;
        }
      }
    }
    if (bits & ITEM_TOKEN_SENT) out.text(" Z");
    if (bits & ITEM_STALE) {
      out.text(" X");
      if ((bits & ITEM_TOKEN_SENT) === 0) won = true;
    }
    if (won) {
      out.text(" W");
      bits |= ITEM_TOKEN_SENT;
      store.setUserBits(h, bits);
    }
    out.crlf();
    if (req.has(M.v)) {
      const vo = store.valueOffset(h);
      out.bytes(store.buffer(h), vo, vo + vlen + 2);
    }
    if (locked && !req.has(M.u)) store.bump(h);
    if (changed) this.observer?.stored(h);
  }

  #metaSet(req: Request, out: Writer): void {
    this.stats.cmdSet++;
    const store = this.store;
    let mode: number | "cas" = Op.SET;
    switch (req.mode) {
      case 69: /* E */
        mode = Op.ADD;
        break;
      case 65: /* A */
        mode = Op.APPEND;
        break;
      case 80: /* P */
        mode = Op.PREPEND;
        break;
      case 82: /* R */
        mode = Op.REPLACE;
        break;
    }
    const hasCas = req.cas >= 0;
    if (hasCas && (mode === Op.SET || mode === Op.REPLACE)) mode = "cas";
    if (req.tooLarge) {
      out.bytes(this.#storeFailed(req, ALLOC_TOO_LARGE, true));
      return;
    }
    const exptime = req.has(M.T) ? this.absoluteExptime(req.exptime) : 0;
    const h = req.badChunk ? -1 : this.#allocValue(req, req.flags, exptime);
    if (req.badChunk) {
      out.bytes(REPLY.BAD_CHUNK);
      return;
    }
    if (h < 0) {
      out.bytes(this.#storeFailed(req, h, true));
      return;
    }
    if (req.keyBinary) store.setUserBits(h, ITEM_KEY_BINARY);
    const result = this.#storeItem(
      h,
      mode,
      hasCas ? req.cas : 0,
      req.has(M.I) && mode === "cas",
      req.explicitCas,
    );
    let code: string;
    if (result === REPLY.STORED) {
      if (req.noreply) return;
      code = "HD";
    } else if (result === REPLY.EXISTS) code = "EX";
    else if (result === REPLY.NOT_FOUND) code = "NF";
    else code = "NS";
    out.text(code);
    for (let i = 3; i < req.ntokens; i++) {
      const c = req.buf[req.tokStart[i]];
      if (c === M.O) this.#opaque(out, req, i);
      else if (c === M.k) this.#metaKey(out, req.keyBuf, req.keyStart, req.keyEnd, req.keyBinary);
      else if (c === M.c) {
        out.text(" c");
        out.uint(this.lastCas);
      }
    }
    out.crlf();
  }

  #metaDelete(req: Request, out: Writer): void {
    const store = this.store;
    const h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
    let code: string;
    if (h < 0) {
      this.stats.deleteMisses++;
      code = "NF";
    } else if (req.cas >= 0 && store.cas(h) !== req.cas) {
      this.stats.deleteMisses++;
      code = "EX";
    } else if (req.has(M.I)) {
      if (req.has(M.T)) store.setExptime(h, this.absoluteExptime(req.exptime));
      store.setUserBits(h, (store.userBits(h) | ITEM_STALE) & ~ITEM_TOKEN_SENT);
      store.setCas(h, req.explicitCas >= 0 ? req.explicitCas : store.nextCas());
      this.observer?.stored(h);
      if (req.noreply) return;
      code = "HD";
    } else {
      this.stats.deleteHits++;
      store.unlink(h);
      this.observer?.deleted(req.keyBuf, req.keyStart, req.keyEnd);
      if (req.noreply) return;
      code = "HD";
    }
    out.text(code);
    this.#missFlags(req, out, 2);
    out.crlf();
  }

  #metaArith(req: Request, out: Writer): void {
    const store = this.store;
    const incr = req.mode !== 68 && req.mode !== 45; // D or -
    let h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
    let created = false;
    let code = "";
    if (h >= 0) {
      if (req.cas > 0 && store.cas(h) !== req.cas) {
        code = "EX";
        h = -1;
      } else {
        const r = this.#addDelta(h, incr, req.delta, req.deltaBig);
        if (r === null) {
          out.bytes(REPLY.NON_NUMERIC);
          return;
        }
        if (r < 0) {
          out.bytes(REPLY.OUT_OF_MEMORY);
          return;
        }
        h = r;
        if (req.explicitCas >= 0) store.setCas(h, req.explicitCas);
        if (incr) this.stats.incrHits++;
        else this.stats.decrHits++;
      }
    } else if (req.has(M.N)) {
      h = this.createCounter(req, req.initialBig, 0, req.explicitCas);
      if (h < 0) {
        out.bytes(REPLY.VIVIFY_NO_MEMORY);
        return;
      }
      created = true;
    } else {
      if (incr) this.stats.incrMisses++;
      else this.stats.decrMisses++;
      code = "NF";
    }
    if (h < 0) {
      out.text(code);
      this.#missFlags(req, out, 2);
      out.crlf();
      return;
    }
    const mark = out.length;
    const text = this.#deltaText;
    if (req.has(M.v)) {
      out.text("VA ");
      out.uint(text.length);
    } else out.text("HD");
    let changed = false;
    for (let i = 2; i < req.ntokens; i++) {
      switch (req.buf[req.tokStart[i]]) {
        case M.c:
          out.text(" c");
          out.uint(store.cas(h));
          break;
        case M.t: {
          out.text(" t");
          const exp = store.exptime(h);
          if (exp === 0) out.text("-1");
          else out.uint(toU32(exp - this.clock.now()));
          break;
        }
        case M.T:
          store.setExptime(h, this.absoluteExptime(req.exptime));
          changed = true;
          break;
        case M.N:
          if (created) {
            store.setExptime(h, this.absoluteExptime(req.vivify));
            changed = true;
          }
          break;
        case M.O:
          this.#opaque(out, req, i);
          break;
        case M.k:
          this.#metaKey(out, req.keyBuf, req.keyStart, req.keyEnd, req.keyBinary);
          break;
      }
    }
    if (req.has(M.v)) {
      out.crlf();
      out.text(text);
    }
    out.crlf();
    if (created || changed) this.observer?.stored(h);
    if (req.noreply && !created) out.length = mark;
  }

  #metaDebug(req: Request, out: Writer): void {
    const store = this.store;
    const h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
    if (h < 0) {
      out.bytes(REPLY.EN);
      return;
    }
    const now = this.clock.now();
    out.text("ME ");
    const ko = store.keyOffset(h), kl = store.keyLength(h);
    if (store.userBits(h) & ITEM_KEY_BINARY) {
      out.reserve(((kl + 2) / 3) * 4 + 4);
      out.length = base64Encode(store.buffer(h), ko, ko + kl, out.buf, out.length);
    } else out.bytes(store.buffer(h), ko, ko + kl);
    const exp = store.exptime(h);
    out.text(
      ` exp=${exp === 0 ? -1 : now - exp} la=${now - store.lastAccess(h)} cas=${
        store.cas(h)
      } fetch=${store.fetched(h) ? "yes" : "no"} cls=${store.slabClass(h)} size=${
        store.itemSize(h)
      }\r\n`,
    );
  }

  // --- admin ---

  /** `watch [names...]` (process_watch_command): this connection becomes a log stream. */
  #watch(req: Request, out: Writer, session: Session): void {
    if (out.length > 0) {
      out.text("ERROR cannot pipeline other commands before watch\r\n");
      return;
    }
    const args: string[] = [];
    for (let i = 1; i < req.ntokens; i++) {
      args.push(decodeAscii(req.buf, req.tokStart[i], req.tokEnd[i]));
    }
    const flags = watchFlags(args);
    if (flags < 0) {
      out.bytes(REPLY.ERROR);
      return;
    }
    const w = new Watcher(flags);
    if (!this.watchers.add(w)) {
      out.text("WATCHER_TOO_MANY log watcher limit reached\r\n");
      return;
    }
    session.watcher = w;
    out.bytes(REPLY.OK);
  }

  #lruCrawler(req: Request, out: Writer, session: Session): void {
    if (req.ntokens === 3 && req.tokenIs(1, "metadump")) {
      const classes = metadumpClasses(req, 2);
      if (!this.tunables.lruCrawler) out.text("CLIENT_ERROR lru crawler disabled\r\n");
      else if (classes === null) out.bytes(REPLY.BAD_CLASS);
      else if (!classes.includes(1)) out.bytes(REPLY.NOT_STARTED);
      else {
        session.more = this.#metadump(classes);
        if (session.more(out)) session.more = null;
      }
      return;
    }
    lruCrawlerSettings(req, out, this.tunables, () => {
      const classes = metadumpClasses(req, 2);
      return classes === null ? "bad" : classes.includes(1) ? "ok" : "none";
    });
  }

  /**
   * `lru_crawler metadump`: one line per live item, keys URI-encoded, then
   * END; produced a few thousand items per call (store.scan resumes).
   */
  #metadump(classes: Uint8Array): (out: Writer) => boolean {
    const store = this.store;
    const start = this.clock.processStartUnix;
    let cursor = 0;
    return (out) => {
      cursor = store.scan(cursor, 4096, (h) => {
        if (classes[store.slabClass(h)] !== 1) return;
        const buf = store.buffer(h), ko = store.keyOffset(h), kl = store.keyLength(h);
        out.text("key=");
        uriEncode(out, buf, ko, ko + kl);
        const exp = store.exptime(h);
        out.text(
          ` exp=${exp === 0 ? -1 : exp + start} la=${store.lastAccess(h) + start} cas=${
            store.cas(h)
          } fetch=${store.fetched(h) ? "yes" : "no"} cls=${store.slabClass(h)} size=${
            store.itemSize(h)
          }\n`,
        );
      });
      if (cursor >= 0) return false;
      out.bytes(REPLY.END);
      return true;
    };
  }

  #statsCommand(req: Request, out: Writer, session: Session): void {
    if (req.ntokens === 1) {
      this.statsGroup("", out);
    } else if (req.tokenIs(1, "reset")) {
      this.resetStats();
      out.bytes(REPLY.RESET);
      return;
    } else if (req.tokenIs(1, "conns")) {
      this.conns.write(out, session);
    } else if (req.tokenIs(1, "detail")) {
      this.#statsDetail(req, out);
      return;
    } else if (req.tokenIs(1, "cachedump")) {
      cachedump(req, out, this.store, this.clock.processStartUnix);
      return;
    } else if (!this.statsGroup(decodeAscii(req.buf, req.tokStart[1], req.tokEnd[1]), out)) {
      out.bytes(REPLY.ERROR);
      return;
    }
    out.bytes(REPLY.END);
  }

  /** `stats reset` (any protocol). */
  resetStats(): void {
    if (this.#shared) this.#shared.reset();
    else this.stats.reset();
    this.prefixStats.clear();
  }

  /**
   * The `STAT name value` lines of a stats group ("" = general, settings,
   * items, slabs, sizes, then memrep's own groups), without END. False
   * for an unknown group. The binary protocol re-frames these lines.
   */
  statsGroup(name: string, out: Writer): boolean {
    switch (name) {
      case "":
        this.#generalStats(out);
        return true;
      case "settings":
        this.#settingsStats(out);
        return true;
      case "items":
        for (const row of this.store.itemStats()) {
          for (const [field, value] of row.fields) {
            statLine(out, `items:${row.id}:${field}`, value);
          }
        }
        return true;
      case "slabs": {
        let total = 0;
        for (const row of this.store.slabStats()) {
          total++;
          for (const [field, value] of row.fields) statLine(out, `${row.id}:${field}`, value);
        }
        statLine(out, "active_slabs", total);
        statLine(out, "total_malloced", this.store.stats.totalMalloced);
        return true;
      }
      case "sizes":
        statLine(out, "sizes_status", "disabled");
        return true;
    }
    const group = this.statsGroups[name];
    if (!group) return false;
    group(out);
    return true;
  }

  /** `stats detail on|off|dump` (memcached's process_stats_detail). */
  #statsDetail(req: Request, out: Writer): void {
    const prefixes = this.prefixStats;
    if (req.ntokens >= 3 && req.tokenIs(2, "on")) {
      prefixes.enabled = true;
      out.bytes(REPLY.OK);
    } else if (req.ntokens >= 3 && req.tokenIs(2, "off")) {
      prefixes.enabled = false;
      out.bytes(REPLY.OK);
    } else if (req.ntokens >= 3 && req.tokenIs(2, "dump")) prefixes.dump(out);
    else out.bytes(REPLY.DETAIL_USAGE);
  }

  #generalStats(out: Writer): void {
    const s = this.#shared ? this.#shared.total() : this.stats, st = this.store.stats;
    const usage = Deno.memoryUsage();
    const cpu = cpuUsage();
    const lines: Array<[string, string | number]> = [
      ["pid", Deno.pid],
      ["uptime", this.clock.uptime()],
      ["time", this.clock.unixNow()],
      ["version", VERSION],
      ["memrep_version", MEMREP_VERSION],
      ["libevent", "deno"],
      ["pointer_size", 64],
      ["rusage_user", cpu.user],
      ["rusage_system", cpu.system],
      ["max_connections", this.#options.maxConnections ?? 1024],
      ["curr_connections", s.currConnections],
      ["total_connections", s.totalConnections],
      ["rejected_connections", s.rejectedConnections],
      ["connection_structures", s.currConnections],
      ["cmd_get", s.cmdGet],
      ["cmd_set", s.cmdSet],
      ["cmd_flush", s.cmdFlush],
      ["cmd_touch", s.cmdTouch],
      ["cmd_meta", s.cmdMeta],
      ["get_hits", s.getHits],
      ["get_misses", s.getMisses],
      ["get_expired", st.getExpired],
      ["get_flushed", st.getFlushed],
      ["delete_misses", s.deleteMisses],
      ["delete_hits", s.deleteHits],
      ["incr_misses", s.incrMisses],
      ["incr_hits", s.incrHits],
      ["decr_misses", s.decrMisses],
      ["decr_hits", s.decrHits],
      ["cas_misses", s.casMisses],
      ["cas_hits", s.casHits],
      ["cas_badval", s.casBadval],
      ["touch_hits", s.touchHits],
      ["touch_misses", s.touchMisses],
      ["store_too_large", s.storeTooLarge],
      ["store_no_memory", s.storeNoMemory],
      ["auth_cmds", s.authCmds],
      ["auth_errors", s.authErrors],
      ["idle_kicks", s.idleKicks],
      ["bytes_read", s.bytesRead],
      ["bytes_written", s.bytesWritten],
      ["limit_maxbytes", st.limitMaxbytes],
      ["accepting_conns", 1],
      ["threads", this.#threads],
      ["hash_power_level", st.hashPowerLevel],
      ["hash_bytes", st.hashBytes],
      ["hash_is_expanding", st.hashIsExpanding ? 1 : 0],
      ["rss_bytes", usage.rss],
      ["heap_used_bytes", usage.heapUsed],
      ["heap_total_bytes", usage.heapTotal],
      ["heap_trims", s.heapTrims],
      ["bytes", st.bytes],
      ["curr_items", st.currItems],
      ["total_items", st.totalItems],
      ["expired_unfetched", st.expiredUnfetched],
      ["evicted_unfetched", st.evictedUnfetched],
      ["evictions", st.evictions],
      ["reclaimed", st.reclaimed],
    ];
    for (const [name, value] of lines) statLine(out, name, value);
    this.extraStats?.(out);
  }

  #settingsStats(out: Writer): void {
    const o = this.#options;
    const lines: Array<[string, string | number]> = [
      ["maxbytes", this.store.stats.limitMaxbytes],
      ["maxconns", o.maxConnections ?? 1024],
      ["tcpport", 0],
      ["udpport", 0],
      ["verbosity", this.verbosity],
      ["evictions", o.evict ? "on" : "off"],
      ["domain_socket", o.unixSocket ?? "NULL"],
      ["umask", (o.unixMask ?? 0o700).toString(8)],
      ["growth_factor", (o.growthFactor ?? 1.25).toFixed(2)],
      ["chunk_size", o.minChunk ?? 48],
      ["num_threads", this.#threads],
      ["cas_enabled", "yes"],
      ["item_size_max", o.maxItemSize],
      ["flush_enabled", o.flushDisabled ? "no" : "yes"],
      ["shutdown_command", o.enableShutdown ? "yes" : "no"],
      ["binding_protocol", BINDING_NAME[o.protocol ?? "auto"]],
      ["auth_enabled_sasl", o.auth?.sasl ? "yes" : "no"],
      ["auth_enabled_ascii", o.auth?.authFile ?? "no"],
      ...(o.extraSettings ?? []),
      ["memory_file", o.memoryFile ?? "(null)"],
      ...this.tunables.settingsLines(),
      ["idle_timeout", this.conns.idleTimeout],
    ];
    for (const [name, value] of lines) statLine(out, name, value);
  }
}

/** memcached's command names in item_store log lines. */
const STORE_CMD: Record<number, string> = {
  [Op.ADD]: "add",
  [Op.SET]: "set",
  [Op.REPLACE]: "replace",
  [Op.APPEND]: "append",
  [Op.PREPEND]: "prepend",
};

/** Re-parse an item's value with full 64-bit precision. */
function lastBigOf(buf: Uint8Array, start: number, end: number): bigint {
  parseU64(buf, start, end);
  return lastBig;
}

/** C's unsigned 32-bit wrap of a (possibly negative) difference. */
function toU32(n: number): number {
  return n >>> 0;
}

/** memcached's uriencode: keep [A-Za-z0-9-._~], %XX the rest. */
function uriEncode(out: Writer, buf: Uint8Array, start: number, end: number): void {
  const hex = "0123456789ABCDEF";
  for (let i = start; i < end; i++) {
    const c = buf[i];
    const plain = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ||
      c === 45 ||
      c === 46 || c === 95 || c === 126;
    if (plain) out.byte(c);
    else {
      out.byte(37);
      out.byte(hex.charCodeAt(c >> 4));
      out.byte(hex.charCodeAt(c & 15));
    }
  }
}

/** Process CPU time in seconds "s.micros", like memcached's rusage stats. */
function cpuUsage(): { user: string; system: string } {
  const fmt = (us: number) =>
    `${Math.floor(us / 1e6)}.${String(Math.floor(us % 1e6)).padStart(6, "0")}`;
  const u = process.cpuUsage();
  return { user: fmt(u.user), system: fmt(u.system) };
}
