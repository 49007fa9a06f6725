/**
 * `-o read_buf_mem_limit`: memcached gives each worker thread an equal
 * share of the limit in 16 KB read buffers. A connection takes one when
 * bytes arrive and gives it back once every byte it read is parsed; a
 * connection that gets none is closed (counted as `read_buf_oom`). memrep
 * counts the same units per serve thread, so the same clients are refused.
 * @module
 */

/** memcached's READ_BUFFER_SIZE: the unit of the limit. */
export const READ_BUFFER_SIZE = 16384;

/** One serve thread's read buffers in use against its share of the limit. */
export class ReadBudget {
  /** Buffers this thread may hold at once (0: no limit). */
  units = 0;
  /** Buffers held now. */
  used = 0;

  /** The share of `limitBytes` (0: none) for one of `threads` threads, as memcached splits it. */
  constructor(limitBytes = 0, threads = 1) {
    this.split(limitBytes, threads);
  }

  /** (Re)compute this thread's share: the limit divided by the threads, in whole buffers, at least one. */
  split(limitBytes: number, threads: number): void {
    if (limitBytes <= 0) {
      this.units = 0;
      return;
    }
    const share = Math.floor(limitBytes / threads);
    this.units = share < READ_BUFFER_SIZE ? 1 : Math.floor(share / READ_BUFFER_SIZE);
  }

  /** Take a buffer; false when the share is used up. */
  take(): boolean {
    if (this.units > 0 && this.used >= this.units) return false;
    this.used++;
    return true;
  }

  /** Give back a buffer from {@linkcode take}. */
  give(): void {
    this.used--;
  }
}
