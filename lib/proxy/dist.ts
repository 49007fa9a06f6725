/**
 * nutcracker's `distribution:` kinds over any of its key hashes, and its
 * `hash_tag`: the same server for the same key and the same config file.
 * @module
 */

import { type Distribution, Ketama, type RingServer } from "./ketama.ts";
import { HASHES, type HashFunction } from "./hash.ts";

/** Where a `hash_tag` narrows the hashed part of a key. */
export interface HashTag {
  /** Opening byte. */
  open: number;
  /** Closing byte. */
  close: number;
}

/**
 * The part of `buf[start, end)` that is hashed under `tag`: what lies
 * between the first `open` and the first `close` after it, when that is not
 * empty; otherwise the whole key (nutcracker's rule).
 */
export function tagged(
  buf: Uint8Array,
  start: number,
  end: number,
  tag: HashTag,
): [number, number] {
  const a = buf.indexOf(tag.open, start);
  if (a < 0 || a >= end) return [start, end];
  const b = buf.indexOf(tag.close, a + 1);
  if (b < 0 || b >= end || b - a <= 1) return [start, end];
  return [a + 1, b];
}

/** A key hash with nutcracker's special cases around it (an empty key hashes to 0). */
function keyHash(hash: HashFunction, buf: Uint8Array, start: number, end: number): number {
  return end === start ? 0 : hash(buf, start, end);
}

/** `distribution: ketama`: twemproxy's md5 ring of server names, looked up by the pool's key hash. */
export class KetamaDistribution implements Distribution {
  readonly #values: Uint32Array;
  readonly #owners: Uint16Array;
  readonly #hash: HashFunction;
  readonly #tag: HashTag | undefined;
  /** With `hash: md5` and no tag the ring is twemproxy's plain ketama: its batch form applies. */
  readonly #ring: Ketama | undefined;

  /** The ring for `servers` (names and weights) with key hash `hash`. */
  constructor(servers: readonly RingServer[], hash: HashFunction, tag?: HashTag) {
    const ring = new Ketama(servers);
    if (hash === HASHES.md5 && tag === undefined) this.#ring = ring;
    this.#values = ring.values;
    this.#owners = ring.owners;
    this.#hash = hash;
    this.#tag = tag;
  }

  /** Server index for the key `buf[start, end)`. */
  pick(buf: Uint8Array, start: number, end: number): number {
    if (this.#tag !== undefined) [start, end] = tagged(buf, start, end, this.#tag);
    const h = keyHash(this.#hash, buf, start, end);
    const values = this.#values;
    let lo = 0, hi = values.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (values[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return this.#owners[hi === values.length ? 0 : hi];
  }

  /** {@linkcode pick} for many keys (batched md5 when the hash is md5 without a tag). */
  pickMany(
    buf: Uint8Array,
    starts: Int32Array,
    ends: Int32Array,
    from: number,
    n: number,
    out: Int32Array,
  ): void {
    const ring = this.#ring;
    if (ring !== undefined) ring.pickMany(buf, starts, ends, from, n, out);
    for (let i = 0; i < n; i++) {
      const s = starts[from + i], e = ends[from + i];
      // An empty key hashes to 0 here (nutcracker), not to md5("").
      if (ring === undefined || s === e) out[i] = this.pick(buf, s, e);
    }
  }
}

/** `distribution: modula`: hash modulo the total weight, each server taking `weight` slots in order. */
export class ModulaDistribution implements Distribution {
  readonly #slots: Uint16Array;
  readonly #hash: HashFunction;
  readonly #tag: HashTag | undefined;

  /** Slots for servers of the given weights. */
  constructor(weights: readonly number[], hash: HashFunction, tag?: HashTag) {
    const slots: number[] = [];
    weights.forEach((w, i) => {
      for (let k = 0; k < w; k++) slots.push(i);
    });
    if (slots.length === 0) throw new RangeError("modula needs at least one server");
    this.#slots = Uint16Array.from(slots);
    this.#hash = hash;
    this.#tag = tag;
  }

  /** Server index for the key `buf[start, end)`. */
  pick(buf: Uint8Array, start: number, end: number): number {
    if (this.#tag !== undefined) [start, end] = tagged(buf, start, end, this.#tag);
    return this.#slots[keyHash(this.#hash, buf, start, end) % this.#slots.length];
  }
}

/** `distribution: random`: any server, whatever the key (weights are ignored, as in nutcracker). */
export class RandomDistribution implements Distribution {
  readonly #n: number;

  /** Picks among `n` servers. */
  constructor(n: number) {
    if (n < 1) throw new RangeError("random needs at least one server");
    this.#n = n;
  }

  /** A random server index. */
  pick(): number {
    return Math.floor(Math.random() * this.#n);
  }
}
