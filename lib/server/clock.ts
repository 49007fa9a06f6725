/**
 * The server clock: memcached-style relative seconds since start, plus the
 * unix time of second 0, for converting absolute exptimes. Worker threads
 * get the main thread's origin so every thread reads the same clock.
 * @module
 */

import type { Clock } from "../store/mod.ts";

/** Where a clock starts: a monotonic-ish epoch in ms and unix seconds at clock 0. */
export interface ClockOrigin {
  /** `performance.timeOrigin + performance.now()` at start (comparable across threads). */
  startMs: number;
  /** Unix seconds at clock 0. */
  startUnix: number;
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
 * too slow for every lookup.
 */
export class ServerClock implements Clock {
  /** The origin, to start clocks in other threads at the same point. */
  readonly origin: ClockOrigin;
  #now: number;

  /** Start the clock now, or at a given origin. */
  constructor(origin?: ClockOrigin) {
    this.origin = origin ?? { startMs: epochMs(), startUnix: Math.floor(Date.now() / 1000) - 2 };
    this.#now = this.#read();
    const timer = setInterval(() => this.#now = this.#read(), TICK_MS);
    Deno.unrefTimer(timer);
  }

  #read(): number {
    return 2 + Math.floor((epochMs() - this.origin.startMs) / 1000);
  }

  /** Whole seconds since the origin: the same on every thread. */
  uptime(): number {
    return this.#now - 2;
  }

  /** Unix seconds at clock 0. */
  get processStartUnix(): number {
    return this.origin.startUnix;
  }

  /** Current clock seconds (at most TICK_MS old). */
  now(): number {
    return this.#now;
  }

  /** Unix seconds now. */
  unixNow(): number {
    return this.origin.startUnix + this.now();
  }
}
