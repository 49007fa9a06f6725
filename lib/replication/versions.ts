/**
 * Item versions: a hybrid logical clock whose values are the items' CAS.
 *
 * A version is one integer below 2**53 (the store's CAS width):
 * `(wall ms since 2020) * 4096 + logical steps * 16 + node bits`. It follows
 * wall time, never goes backwards, and after {@linkcode HybridClock.observe}
 * every local tick is newer than anything seen from the peer, so "newer
 * version wins" orders causally related writes and breaks concurrent ones
 * by (roughly) wall time, then by node.
 * @module
 */

/** Wall-clock origin of versions (2020-01-01T00:00:00Z): versions fit 2**53 until 2089. */
export const VERSION_EPOCH_MS = 1577836800000;
/** Version units per wall millisecond. */
const PER_MS = 4096;
/** One logical step; the 4 bits below it name the node. */
const STEP = 16;

/** The version a write made at unix time `unixMs` would have at least. */
export function versionAt(unixMs: number): number {
  return Math.max(0, unixMs - VERSION_EPOCH_MS) * PER_MS;
}

/** Unix milliseconds a version was issued at (for lag and debugging). */
export function versionTime(version: number): number {
  return Math.floor(version / PER_MS) + VERSION_EPOCH_MS;
}

/** A hybrid logical clock issuing item versions. */
export class HybridClock {
  #last = 0;
  #node: number;
  #wall: () => number;

  /** `node` (0..15) goes into the low bits; `wall` returns unix ms (tests pass a fake). */
  constructor(node: number = Math.floor(Math.random() * 16), wall: () => number = Date.now) {
    this.#node = node & 15;
    this.#wall = wall;
  }

  /** Node bits put into every version this clock issues. */
  get node(): number {
    return this.#node;
  }

  set node(bits: number) {
    this.#node = bits & 15;
  }

  /** The newest version issued or observed. */
  get last(): number {
    return this.#last;
  }

  /** A new version, newer than every version issued or observed before. */
  tick(): number {
    const v = Math.max(versionAt(this.#wall()), this.#last + STEP);
    this.#last = v - (v % STEP) + this.#node;
    return this.#last;
  }

  /** Remember a version seen elsewhere so later ticks are newer. */
  observe(version: number): void {
    if (version > this.#last && version < Number.MAX_SAFE_INTEGER) this.#last = version;
  }
}
