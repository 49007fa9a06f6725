/**
 * Item versions: a hybrid logical clock whose values are the items' CAS.
 *
 * A version is one integer below 2**53 (the store's CAS width):
 * `(wall ms since 2020) * 4096 + logical steps * 16 + node bits`. It follows
 * wall time, never goes backwards, and after {@linkcode HybridClock.observe}
 * every local tick is newer than anything seen from the peer, so "newer
 * version wins" orders causally related writes and breaks concurrent ones
 * by (roughly) wall time, then by node.
 *
 * Versions are never chosen by clients (a replicated node refuses meta `E`)
 * and a version from elsewhere is only trusted within bounds
 * ({@linkcode HybridClock.accepts}): below 2**53 and at most
 * {@linkcode MAX_DRIFT_MS} ahead of this node's wall clock. Anything else is
 * corrupt or from a clock that is badly off: it must neither pin an item
 * past every later write nor drag this clock away from wall time.
 * @module
 */

/** Wall-clock origin of versions (2020-01-01T00:00:00Z): versions fit 2**53 until 2089. */
const VERSION_EPOCH_MS = 1577836800000;
/** Largest version (the store's CAS width: 53 bits). */
export const MAX_VERSION: number = Number.MAX_SAFE_INTEGER;
/**
 * How far ahead of the local wall clock a version seen from elsewhere may be
 * (the HLC's bound on clock skew): generous for hosts without NTP, far below
 * what a corrupt or client-chosen value (years ahead) amounts to.
 */
export const MAX_DRIFT_MS = 3_600_000;
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

/** Bytes of a clock's state (see {@linkcode HybridClock.attach}). */
export const CLOCK_STATE_BYTES = 16;

/**
 * A hybrid logical clock issuing item versions. Its state (last version,
 * node bits) lives in a buffer that may be shared: serve threads attach to
 * one clock, and compare-exchange keeps every version unique and ordered.
 */
export class HybridClock {
  /** [0]: the newest version issued or observed. */
  #last: BigInt64Array;
  /** [0]: node bits. */
  #nodeWord: Int32Array;
  #wall: () => number;

  /** `node` (0..15) goes into the low bits; `wall` returns unix ms (tests pass a fake). */
  constructor(
    node: number = Math.floor(Math.random() * 16),
    wall: () => number = Date.now,
    state?: SharedArrayBuffer,
  ) {
    const buf = state ?? new ArrayBuffer(CLOCK_STATE_BYTES);
    this.#last = new BigInt64Array(buf, 0, 1);
    this.#nodeWord = new Int32Array(buf, 8, 1);
    this.#wall = wall;
    if (node >= 0) Atomics.store(this.#nodeWord, 0, node & 15);
  }

  /** A clock over shared `state` made by another thread (node bits kept). */
  static attach(state: SharedArrayBuffer, wall: () => number = Date.now): HybridClock {
    return new HybridClock(-1, wall, state);
  }

  /** Node bits put into every version this clock issues. */
  get node(): number {
    return Atomics.load(this.#nodeWord, 0);
  }

  set node(bits: number) {
    Atomics.store(this.#nodeWord, 0, bits & 15);
  }

  /** The newest version issued or observed. */
  get last(): number {
    return Number(Atomics.load(this.#last, 0));
  }

  /** A new version, newer than every version issued or observed before (on any thread). */
  tick(): number {
    const node = Atomics.load(this.#nodeWord, 0);
    for (;;) {
      const old = Atomics.load(this.#last, 0);
      const v = Math.max(versionAt(this.#wall()), Number(old) + STEP);
      const next = v - (v % STEP) + node;
      if (Atomics.compareExchange(this.#last, 0, old, BigInt(next)) === old) return next;
    }
  }

  /** The largest version {@linkcode accepts} takes now. */
  bound(): number {
    return Math.min(MAX_VERSION, versionAt(this.#wall() + MAX_DRIFT_MS));
  }

  /**
   * Is `version` one this node may store or follow: an integer in
   * [0, {@linkcode bound}]? (NaN, negatives, 2**53 and beyond, and values
   * more than MAX_DRIFT_MS ahead of the wall clock are not.)
   */
  accepts(version: number): boolean {
    return Number.isSafeInteger(version) && version >= 0 && version <= this.bound();
  }

  /**
   * Remember a version seen elsewhere so later ticks are newer. A version
   * {@linkcode accepts} refuses is not followed: returns false.
   */
  observe(version: number): boolean {
    if (!this.accepts(version)) return false;
    for (;;) {
      const old = Atomics.load(this.#last, 0);
      if (version <= Number(old)) return true;
      if (Atomics.compareExchange(this.#last, 0, old, BigInt(version)) === old) return true;
    }
  }
}
