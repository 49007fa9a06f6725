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
