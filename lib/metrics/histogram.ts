/**
 * A fixed-bucket histogram for request latencies (Prometheus semantics:
 * buckets are upper bounds, reported cumulatively).
 * @module
 */

/** Latency bucket bounds in seconds: 50 µs to 5 s. */
export const LATENCY_BOUNDS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

/** Counts per bucket (not cumulative), their sum and count. */
export class Histogram {
  /** Upper bounds, ascending (+Inf implied). */
  readonly bounds: readonly number[];
  /** Observations per bucket; index bounds.length is the +Inf overflow. */
  readonly counts: Float64Array;
  /** Sum of observed values. */
  sum = 0;
  /** Number of observations. */
  count = 0;

  /** An empty histogram over `bounds` (ascending). */
  constructor(bounds: readonly number[] = LATENCY_BOUNDS) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Record one value. */
  observe(v: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}
