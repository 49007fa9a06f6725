/**
 * The server clock: memcached-style relative seconds since start, plus the
 * unix time of second 0, for converting absolute exptimes. Worker threads
 * get the main thread's origin, and with it the second it holds, so every
 * thread reads the same clock.
 * @module
 */

import type { Clock } from "../store/mod.ts";

/** Where a clock starts: a monotonic-ish epoch in ms and unix seconds at clock 0. */
export interface ClockOrigin {
  /** `performance.timeOrigin + performance.now()` at start (comparable across threads). */
  startMs: number;
  /** Unix seconds at clock 0. */
  startUnix: number;
  /**
   * The current second, one int32 that every clock made from this origin
   * reads and advances (a clock without it makes its own).
   */
  second?: SharedArrayBuffer;
}

function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** How often the cached second is refreshed (memcached ticks once a second). */
const TICK_MS = 50;

/**
 * Seconds since start (starting at 2, so that 1 can mean "already
 * expired"). Like memcached's current_time the value is cached and
 * refreshed by a timer: reading a monotonic clock is an op call in Deno,
 * too slow for every lookup. The threads of one cache share the cached
 * second, as memcached's threads share current_time: with a second of
 * their own, each refreshed at its own timer's phase, one thread found an
 * item flushed or expired that another then still served, for up to a tick.
 */
export class ServerClock implements Clock {
  /** The origin, to start clocks in other threads at the same point (and second). */
  readonly origin: ClockOrigin;
  #second: Int32Array;

  /** Start the clock now, or at a given origin. */
  constructor(origin?: ClockOrigin) {
    const o = origin ?? { startMs: epochMs(), startUnix: Math.floor(Date.now() / 1000) - 2 };
    const second = o.second ?? new SharedArrayBuffer(4);
    this.origin = { startMs: o.startMs, startUnix: o.startUnix, second };
    this.#second = new Int32Array(second);
    this.#tick();
    const timer = setInterval(() => this.#tick(), TICK_MS);
    Deno.unrefTimer(timer);
  }

  /** Advance the shared second to this thread's reading (never back: a late timer reads less). */
  #tick(): void {
    const s = this.#second;
    const t = 2 + Math.floor((epochMs() - this.origin.startMs) / 1000);
    for (let cur = Atomics.load(s, 0); t > cur;) {
      const seen = Atomics.compareExchange(s, 0, cur, t);
      if (seen === cur) break;
      cur = seen;
    }
  }

  /** Whole seconds since the origin: the same on every thread. */
  uptime(): number {
    return this.now() - 2;
  }

  /** Unix seconds at clock 0. */
  get processStartUnix(): number {
    return this.origin.startUnix;
  }

  /** Current clock seconds (at most TICK_MS old). */
  now(): number {
    // A plain read, as the store's: an atomic one costs several times more on every lookup, and
    // the store lock orders the threads' commands.
    return this.#second[0];
  }

  /** Unix seconds now. */
  unixNow(): number {
    return this.origin.startUnix + this.now();
  }
}
