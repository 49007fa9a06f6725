/**
 * A mutex in a SharedArrayBuffer for Stores shared between workers: a
 * futex-style lock word (0 free, 1 held, 2 held with waiters), a short spin
 * with compareExchange, then Atomics.wait.
 *
 * ```ts
 * const lock = new SharedLock(); // in a worker: new SharedLock(buffer)
 * lock.acquire();
 * try { store.find(key, 0, key.length); } finally { lock.release(); }
 * ```
 * @module
 */

/** compareExchange attempts before sleeping: a held lock is usually released within a few µs. */
const SPINS = 100;

/** A mutual-exclusion lock usable from any thread that holds its buffer. Not reentrant. */
export class SharedLock {
  /** The lock word; post it to other threads and construct a SharedLock over it. */
  readonly buffer: SharedArrayBuffer;
  #word: Int32Array;

  /** A new unlocked lock, or a view of the lock in `sab` (4 bytes at offset 0). */
  constructor(sab?: SharedArrayBuffer) {
    this.buffer = sab ?? new SharedArrayBuffer(4);
    this.#word = new Int32Array(this.buffer, 0, 1);
  }

  /**
   * Blocks until the lock is held by the caller. With `whileWaiting`, a
   * contended wait sleeps 2 ms at a time and calls it in between (the
   * replication thread keeps draining the queue the holder may be filling).
   */
  acquire(whileWaiting?: () => void): void {
    const w = this.#word;
    let c = Atomics.compareExchange(w, 0, 0, 1);
    if (c === 0) return;
    // Spin only while nobody sleeps (2 means waiters: queue behind them).
    for (let i = 0; i < SPINS && c === 1; i++) {
      c = Atomics.compareExchange(w, 0, 0, 1);
      if (c === 0) return;
    }
    // Mark contended (2) so the holder's release wakes us.
    if (c !== 2) c = Atomics.exchange(w, 0, 2);
    while (c !== 0) {
      if (whileWaiting) {
        Atomics.wait(w, 0, 2, 2);
        whileWaiting();
      } else Atomics.wait(w, 0, 2);
      c = Atomics.exchange(w, 0, 2);
    }
  }

  /** Releases the lock held by the caller, waking one waiter if any. */
  release(): void {
    if (Atomics.exchange(this.#word, 0, 0) === 2) Atomics.notify(this.#word, 0, 1);
  }
}
