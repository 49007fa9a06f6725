/**
 * Replication lag: (stream offset, time) samples of recent changes, so an
 * acknowledged offset tells how long the peer took, and the oldest
 * unacknowledged sample how far behind it is now. Bounded: a ring of 4096
 * samples; changes within 0.5 ms share one.
 * @module
 */

/** Lag samples kept: (stream offset, time) of recent changes. */
const LAG_SAMPLES = 4096;

/** A ring of (stream offset, time) samples. */
export class LagSamples {
  #offset = new Float64Array(LAG_SAMPLES);
  #time = new Float64Array(LAG_SAMPLES);
  #head = 0;
  #tail = 0;
  /** Lag (ms) of the last acknowledgement that covered a sample. */
  lastMs = 0;

  /** The stream reached `end` (a change was appended). */
  appended(end: number): void {
    const now = performance.now();
    const last = (this.#tail - 1 + LAG_SAMPLES) % LAG_SAMPLES;
    if (this.#head === this.#tail || now - this.#time[last] >= 0.5) {
      this.#offset[this.#tail] = end;
      this.#time[this.#tail] = now;
      this.#tail = (this.#tail + 1) % LAG_SAMPLES;
      if (this.#tail === this.#head) this.#head = (this.#head + 1) % LAG_SAMPLES;
    } else {
      this.#offset[last] = end; // same moment: extend the sample
    }
  }

  /** The peer acknowledged the stream up to `offset`: measure {@linkcode lastMs}. */
  acked(offset: number): void {
    const now = performance.now();
    while (this.#head !== this.#tail && this.#offset[this.#head] <= offset) {
      this.lastMs = now - this.#time[this.#head];
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
