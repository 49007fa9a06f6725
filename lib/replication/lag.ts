/**
 * Replication lag: (stream offset, time) samples of recent changes, so an
 * acknowledged offset tells how long the peer took, and the oldest
 * unacknowledged sample how far behind it is now. Bounded: a ring of 4096
 * samples; changes within 0.5 ms share one (timed by the oldest of them).
 * The lags of the last 4096 acknowledged samples are kept for percentiles:
 * each runs from the change (on whichever serve thread made it) to the
 * peer's acknowledgement of having applied it, so it is the one-way lag
 * plus the acknowledgement's way back, never less.
 * @module
 */

/** Lag samples kept: (stream offset, time) of recent changes. */
const LAG_SAMPLES = 4096;
/** Lags kept by a {@linkcode LagWindow}. */
const WINDOW = 4096;

/** The latest 4,096 lags (ms) of something, for percentiles. */
export class LagWindow {
  #ms = new Float64Array(WINDOW);
  #count = 0;
  /** The kept lags in order (sorted when a percentile is asked after a change). */
  #sorted = new Float64Array(WINDOW);
  #sortedCount = -1;

  /** One more lag. */
  add(ms: number): void {
    this.#ms[this.#count++ % WINDOW] = ms;
  }

  /**
   * The `p` quantile (0 to 1) of the lags kept, to the µs (nearest rank); 0
   * before any. One sort (about 0.3 ms) serves every quantile until the next
   * lag comes.
   */
  percentileMs(p: number): number {
    const n = Math.min(this.#count, WINDOW);
    if (n === 0) return 0;
    if (this.#sortedCount !== this.#count) {
      this.#sorted.set(this.#ms.subarray(0, n));
      this.#sorted.subarray(0, n).sort();
      this.#sortedCount = this.#count;
    }
    const ms = this.#sorted[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))];
    return Math.round(ms * 1000) / 1000;
  }
}

/** A ring of (stream offset, time) samples. */
export class LagSamples {
  #offset = new Float64Array(LAG_SAMPLES);
  #time = new Float64Array(LAG_SAMPLES);
  #head = 0;
  #tail = 0;
  /** The latest acknowledged lags. */
  readonly ackedLags: LagWindow = new LagWindow();
  /** Lag (ms) of the last acknowledgement that covered a sample. */
  lastMs = 0;

  /**
   * The stream reached `end` (a change was appended); `at` is when the
   * change was made (performance.now(); earlier than now for a change a
   * worker thread made before this thread drained it).
   */
  appended(end: number, at: number = performance.now()): void {
    const last = (this.#tail - 1 + LAG_SAMPLES) % LAG_SAMPLES;
    if (this.#head === this.#tail || at - this.#time[last] >= 0.5) {
      this.#offset[this.#tail] = end;
      this.#time[this.#tail] = at;
      this.#tail = (this.#tail + 1) % LAG_SAMPLES;
      if (this.#tail === this.#head) this.#head = (this.#head + 1) % LAG_SAMPLES;
    } else {
      // Same moment: extend the sample, timed by the oldest of its changes.
      this.#offset[last] = end;
      if (at < this.#time[last]) this.#time[last] = at;
    }
  }

  /** The peer acknowledged the stream up to `offset`: measure {@linkcode lastMs}. */
  acked(offset: number): void {
    const now = performance.now();
    while (this.#head !== this.#tail && this.#offset[this.#head] <= offset) {
      const ms = now - this.#time[this.#head];
      this.lastMs = ms;
      this.ackedLags.add(ms);
      this.#head = (this.#head + 1) % LAG_SAMPLES;
    }
  }

  /** Age (ms) of the oldest sample past `acked`; 0 when there is none. */
  ageMs(acked: number): number {
    while (this.#head !== this.#tail && this.#offset[this.#head] <= acked) {
      this.#head = (this.#head + 1) % LAG_SAMPLES;
    }
    if (this.#head === this.#tail) return 0;
    return Math.round(performance.now() - this.#time[this.#head]);
  }
}
