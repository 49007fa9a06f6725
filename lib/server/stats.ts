/**
 * Server-wide counters with memcached's names, and the `stats` reply
 * builders that print them. Counters live in a Float64Array row, so with
 * serve threads each thread counts straight into its row of one
 * SharedArrayBuffer and `stats` sums the rows: nothing to publish.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";

/** Counter names, in row order (memcached's thread stats, camelCased). */
export const STAT_NAMES = [
  "currConnections",
  "totalConnections",
  "rejectedConnections",
  "cmdGet",
  "cmdSet",
  "cmdFlush",
  "cmdTouch",
  "cmdMeta",
  "getHits",
  "getMisses",
  "deleteMisses",
  "deleteHits",
  "incrMisses",
  "incrHits",
  "decrMisses",
  "decrHits",
  "casMisses",
  "casHits",
  "casBadval",
  "touchHits",
  "touchMisses",
  "storeTooLarge",
  "storeNoMemory",
  "authCmds",
  "authErrors",
  "bytesRead",
  "bytesWritten",
  "idleKicks",
  "connYields",
  "readBufOom",
  "heapTrims",
] as const;

/** One counter's name. */
export type StatName = typeof STAT_NAMES[number];

/**
 * Per slab class counters (`stats slabs`, memcached's slab_stats), in
 * memcached's line order; their index is the first argument of
 * {@linkcode ServerStats.slab}.
 */
export const SLAB_STAT_NAMES = [
  "get_hits",
  "cmd_set",
  "delete_hits",
  "incr_hits",
  "decr_hits",
  "cas_hits",
  "cas_badval",
  "touch_hits",
] as const;

/** Indexes into {@linkcode SLAB_STAT_NAMES}. */
export const SlabStat = {
  GET_HITS: 0,
  CMD_SET: 1,
  DELETE_HITS: 2,
  INCR_HITS: 3,
  DECR_HITS: 4,
  CAS_HITS: 5,
  CAS_BADVAL: 6,
  TOUCH_HITS: 7,
} as const;

/** Slab class ids counted (memcached's MAX_NUMBER_OF_SLAB_CLASSES). */
const SLAB_CLASSES = 64;
/** Counters per row: the named ones, then the per-class ones. */
const ROW = STAT_NAMES.length + SLAB_STAT_NAMES.length * SLAB_CLASSES;

/** Every counter as a number property (accessors over the row). */
export interface ServerStats extends Record<StatName, number> {}

/** Command and connection counters of one thread (or their sum). */
export class ServerStats {
  /** The counters, in {@linkcode STAT_NAMES} order. */
  readonly row: Float64Array;

  /** Counters in `row` (a view into shared memory), or in a private row. */
  constructor(row: Float64Array = new Float64Array(ROW)) {
    this.row = row;
  }

  /** Count one `SlabStat` event of an item of slab class `cls`. */
  slab(stat: number, cls: number): void {
    this.row[STAT_NAMES.length + stat * SLAB_CLASSES + cls]++;
  }

  /** A per-class counter (see {@linkcode SLAB_STAT_NAMES}). */
  slabCount(stat: number, cls: number): number {
    return this.row[STAT_NAMES.length + stat * SLAB_CLASSES + cls];
  }

  /** Zero everything but the open connections (`stats reset`). */
  reset(): void {
    this.row.fill(0, 1);
  }
}

for (const [i, name] of STAT_NAMES.entries()) {
  Object.defineProperty(ServerStats.prototype, name, {
    get(this: ServerStats): number {
      return this.row[i];
    },
    set(this: ServerStats, value: number) {
      this.row[i] = value;
    },
  });
}

/**
 * The counter rows of every serve thread, in one SharedArrayBuffer, plus a
 * baseline row that `stats reset` sets: each thread only ever writes its own
 * row, and the reported totals are the sums minus the baseline.
 */
export class SharedStats {
  /** Backing memory (send it to workers). */
  readonly buffer: SharedArrayBuffer;
  #rows: Float64Array;
  #threads: number;

  /** Rows for `threads` threads, or attach to an existing buffer. */
  constructor(threads: number, buffer?: SharedArrayBuffer) {
    this.#threads = threads;
    this.buffer = buffer ?? new SharedArrayBuffer((threads + 1) * ROW * 8);
    this.#rows = new Float64Array(this.buffer);
  }

  /** Thread `t`'s counters, counting straight into shared memory. */
  thread(t: number): ServerStats {
    return new ServerStats(this.#rows.subarray(t * ROW, (t + 1) * ROW));
  }

  /** The sum over all threads since the last {@linkcode reset}. */
  total(): ServerStats {
    const sum = this.#sum();
    const base = this.#threads * ROW;
    for (let i = 1; i < ROW; i++) sum.row[i] -= this.#rows[base + i];
    return sum;
  }

  /** Connections open now over all threads (per accept: no sum of the other counters). */
  connections(): number {
    let n = 0;
    for (let t = 0; t < this.#threads; t++) n += this.#rows[t * ROW];
    return n;
  }

  /** `stats reset` from any thread: zero every counter but the open connections. */
  reset(): void {
    const sum = this.#sum();
    this.#rows.set(sum.row.subarray(1), this.#threads * ROW + 1);
  }

  #sum(): ServerStats {
    const sum = new ServerStats();
    for (let t = 0; t < this.#threads; t++) {
      for (let i = 0; i < ROW; i++) sum.row[i] += this.#rows[t * ROW + i];
    }
    return sum;
  }
}

/** Append one `STAT name value` line. */
export function statLine(out: Writer, name: string, value: string | number | bigint): void {
  out.text("STAT ");
  out.text(name);
  out.byte(32);
  out.text(String(value));
  out.crlf();
}
