/**
 * The server clock: memcached-style relative seconds since start, plus the
 * unix time of second 0, for converting absolute exptimes.
 * @module
 */

import type { Clock } from "../store/mod.ts";

/** Seconds since start (starting at 2, so that 1 can mean "already expired"). */
export class ServerClock implements Clock {
  /** Unix seconds at clock 0. */
  readonly processStartUnix: number;
  #origin = performance.now();

  /** Start the clock now. */
  constructor() {
    this.processStartUnix = Math.floor(Date.now() / 1000) - 2;
  }

  /** Current clock seconds. */
  now(): number {
    return 2 + Math.floor((performance.now() - this.#origin) / 1000);
  }

  /** Unix seconds now. */
  unixNow(): number {
    return this.processStartUnix + this.now();
  }
}
