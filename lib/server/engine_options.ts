/**
 * How an engine is configured: memcached's options that reach command
 * execution, what serve threads share, and the mutation hook replication
 * subscribes to.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";
import type { StoreMemory, StoreOptions } from "../store/mod.ts";
import type { AuthConfig } from "../auth/mod.ts";

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
  /** TCP port (-p), for `stats settings` tcpport. */
  port?: number;
  /** memcached -U as given, for `stats settings` udpport (0: off, -1: a port the system picks). */
  udpPort?: number;
  /** memcached -l as given (`stats settings` inter; absent: NULL). */
  listenArg?: string;
  /** -o slab_chunk_max (`stats settings`; memrep's store has its own page carving). */
  slabChunkMax?: number;
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
  /** memcached -W: `watch` is refused. */
  watchDisabled?: boolean;
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
  /** memcached -R: requests one read event runs before the connection yields (default 20). */
  reqsPerEvent?: number;
  /** -o read_buf_mem_limit in bytes, split between the threads (0: none). */
  readBufMemLimit?: number;
  /** Reply bytes connections may hold in writes under way, split between the threads (0: no bound). */
  outputMemLimit?: number;
  /** memcached's settings fixed by -C, -b and the -o suboptions (default: memcached's defaults). */
  startup?: StartupSettings;
}

/**
 * memcached settings chosen at startup that `stats settings` shows: -C, -b
 * and the -o suboptions memrep accepts without running their machinery
 * (no LRU maintainer or crawler thread, one hash), as memcached 1.6.18 sets
 * them. `casEnabled` alone changes behaviour (memcached -C: every CAS is 0).
 */
export interface StartupSettings {
  /** -C turns CAS off. */
  casEnabled: boolean;
  /** -b listen backlog. */
  tcpBacklog: number;
  /** maxconns_fast / no_maxconns_fast. */
  maxconnsFast: boolean;
  /** hashpower. */
  hashpowerInit: number;
  /** slab_reassign / no_slab_reassign. */
  slabReassign: boolean;
  /** slab_automove (0, 1, 2). */
  slabAutomove: number;
  /** slab_automove_ratio. */
  slabAutomoveRatio: number;
  /** slab_automove_window. */
  slabAutomoveWindow: number;
  /** The crawler runs (lru_crawler / no_lru_crawler / no_modern). */
  lruCrawler: boolean;
  /** lru_crawler_sleep (microseconds). */
  lruCrawlerSleep: number;
  /** lru_crawler_tocrawl. */
  lruCrawlerTocrawl: number;
  /** tail_repair_time. */
  tailRepairTime: number;
  /** hash_algorithm (no_modern: jenkins). */
  hashAlgorithm: string;
  /** The LRU maintainer runs (lru_maintainer / no_lru_maintainer / no_modern). */
  lruMaintainer: boolean;
  /** lru_segmented. */
  lruSegmented: boolean;
  /** hot_lru_pct. */
  hotLruPct: number;
  /** warm_lru_pct. */
  warmLruPct: number;
  /** hot_max_factor. */
  hotMaxFactor: number;
  /** warm_max_factor. */
  warmMaxFactor: number;
  /** temp_lru (set by temporary_ttl). */
  tempLru: boolean;
  /** temporary_ttl. */
  temporaryTtl: number;
  /** watcher_logbuf_size in bytes. */
  watcherLogbufSize: number;
  /** worker_logbuf_size in bytes. */
  workerLogbufSize: number;
  /** -D: the character that ends a key's prefix for `stats detail`. */
  prefixDelimiter: string;
  /** -D given: `stats detail` counts from the start. */
  detailEnabled: boolean;
  /** Not -X (memrep: --disable-dumping): `stats cachedump` and `lru_crawler metadump` work. */
  dumpEnabled: boolean;
  /** -N: NAPI ids (0: none; only shown in `stats settings`). */
  napiIds: number;
}

/** memcached 1.6.18's defaults for {@linkcode StartupSettings}. */
export function defaultStartupSettings(): StartupSettings {
  return {
    casEnabled: true,
    tcpBacklog: 1024,
    maxconnsFast: true,
    hashpowerInit: 0,
    slabReassign: true,
    slabAutomove: 1,
    slabAutomoveRatio: 0.8,
    slabAutomoveWindow: 30,
    lruCrawler: true,
    lruCrawlerSleep: 100,
    lruCrawlerTocrawl: 0,
    tailRepairTime: 0,
    hashAlgorithm: "murmur3",
    lruMaintainer: true,
    lruSegmented: true,
    hotLruPct: 20,
    warmLruPct: 40,
    hotMaxFactor: 0.2,
    warmMaxFactor: 2.0,
    tempLru: false,
    temporaryTtl: 61,
    watcherLogbufSize: 262144,
    workerLogbufSize: 65536,
    prefixDelimiter: ":",
    detailEnabled: false,
    dumpEnabled: true,
    napiIds: 0,
  };
}

/** memcached -B values. */
export type BindingProtocol = "auto" | "ascii" | "binary";

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
  /** Connection ids and watchers over all threads (Int32 slots, see conns.ts and watch.ts). */
  registry: SharedArrayBuffer;
}
