/**
 * Server-wide counters with memcached's names, and the `stats` reply
 * builders that print them.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";

/** Command and connection counters (memcached's thread stats, summed). */
export class ServerStats {
  /** Connections open now. */
  currConnections = 0;
  /** Connections accepted since start. */
  totalConnections = 0;
  /** Connections refused for -c. */
  rejectedConnections = 0;
  /** get/gets keys looked up. */
  cmdGet = 0;
  /** Storage commands. */
  cmdSet = 0;
  /** flush_all commands. */
  cmdFlush = 0;
  /** touch and gat keys. */
  cmdTouch = 0;
  /** Meta commands. */
  cmdMeta = 0;
  /** get hits. */
  getHits = 0;
  /** get misses. */
  getMisses = 0;
  /** delete misses. */
  deleteMisses = 0;
  /** delete hits. */
  deleteHits = 0;
  /** incr misses. */
  incrMisses = 0;
  /** incr hits. */
  incrHits = 0;
  /** decr misses. */
  decrMisses = 0;
  /** decr hits. */
  decrHits = 0;
  /** cas on missing keys. */
  casMisses = 0;
  /** cas stored. */
  casHits = 0;
  /** cas with a stale value. */
  casBadval = 0;
  /** touch hits. */
  touchHits = 0;
  /** touch misses. */
  touchMisses = 0;
  /** Storage refused: too large. */
  storeTooLarge = 0;
  /** Storage refused: no memory. */
  storeNoMemory = 0;
  /** Bytes read from clients. */
  bytesRead = 0;
  /** Bytes written to clients. */
  bytesWritten = 0;

  /** Zero the resettable counters (`stats reset`). */
  reset(): void {
    for (const key of Object.keys(this) as (keyof ServerStats)[]) {
      if (key !== "currConnections" && typeof this[key] === "number") {
        (this as Record<string, unknown>)[key] = 0;
      }
    }
  }
}

/**
 * Counters of every serve thread in one SharedArrayBuffer: each thread
 * publishes its own row after a batch; `stats` sums the rows.
 */
export class SharedStats {
  /** Backing memory (send it to workers). */
  readonly buffer: SharedArrayBuffer;
  #rows: Float64Array;
  #width: number;
  #threads: number;

  /** Rows for `threads` threads, or attach to an existing buffer. */
  constructor(threads: number, buffer?: SharedArrayBuffer) {
    this.#width = statNames().length;
    this.#threads = threads;
    this.buffer = buffer ?? new SharedArrayBuffer(threads * this.#width * 8);
    this.#rows = new Float64Array(this.buffer);
  }

  /** Copy one thread's counters into its row. */
  publish(thread: number, stats: ServerStats): void {
    const names = statNames();
    const base = thread * this.#width;
    for (let i = 0; i < names.length; i++) this.#rows[base + i] = stats[names[i]] as number;
  }

  /** The sum over all threads. */
  total(): ServerStats {
    const names = statNames();
    const sum = new ServerStats();
    for (let i = 0; i < names.length; i++) {
      let v = 0;
      for (let t = 0; t < this.#threads; t++) v += this.#rows[t * this.#width + i];
      (sum as unknown as Record<string, number>)[names[i]] = v;
    }
    return sum;
  }

  /** Connections open now across threads. */
  connections(): number {
    const i = statNames().indexOf("currConnections");
    let v = 0;
    for (let t = 0; t < this.#threads; t++) v += this.#rows[t * this.#width + i];
    return v;
  }
}

let names: (keyof ServerStats)[] | undefined;

function statNames(): (keyof ServerStats)[] {
  names ??= (Object.keys(new ServerStats()) as (keyof ServerStats)[]).filter((k) =>
    typeof new ServerStats()[k] === "number"
  );
  return names;
}

/** Append one `STAT name value` line. */
export function statLine(out: Writer, name: string, value: string | number | bigint): void {
  out.text("STAT ");
  out.text(name);
  out.byte(32);
  out.text(String(value));
  out.crlf();
}
