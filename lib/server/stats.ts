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

/** Every counter as a number property (accessors over the row). */
export interface ServerStats extends Record<StatName, number> {}

/** Command and connection counters of one thread (or their sum). */
export class ServerStats {
  /** The counters, in {@linkcode STAT_NAMES} order. */
  readonly row: Float64Array;

  /** Counters in `row` (a view into shared memory), or in a private row. */
  constructor(row: Float64Array = new Float64Array(STAT_NAMES.length)) {
    this.row = row;
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
    this.buffer = buffer ?? new SharedArrayBuffer((threads + 1) * STAT_NAMES.length * 8);
    this.#rows = new Float64Array(this.buffer);
  }

  /** Thread `t`'s counters, counting straight into shared memory. */
  thread(t: number): ServerStats {
    return new ServerStats(this.#rows.subarray(t * STAT_NAMES.length, (t + 1) * STAT_NAMES.length));
  }

  /** The sum over all threads since the last {@linkcode reset}. */
  total(): ServerStats {
    const sum = this.#sum();
    const base = this.#threads * STAT_NAMES.length;
    for (let i = 1; i < STAT_NAMES.length; i++) sum.row[i] -= this.#rows[base + i];
    return sum;
  }

  /** `stats reset` from any thread: zero every counter but the open connections. */
  reset(): void {
    const sum = this.#sum();
    this.#rows.set(sum.row.subarray(1), this.#threads * STAT_NAMES.length + 1);
  }

  #sum(): ServerStats {
    const sum = new ServerStats();
    for (let t = 0; t < this.#threads; t++) {
      for (let i = 0; i < STAT_NAMES.length; i++) {
        sum.row[i] += this.#rows[t * STAT_NAMES.length + i];
      }
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
