/**
 * Chained hash index: buckets in an Int32Array, the chain link (hnext) in the
 * item header, keys compared as bytes. Grows 2x at load factor 1.5 and, like
 * memcached's assoc expansion, migrates old buckets a few at a time.
 * @module
 */

import { hashBytes } from "./hash.ts";
import { Arena, HEADER_SIZE, INDEX_BITS, KEY_SHIFT, M_KEYLEN, W_HNEXT, W_META } from "./slabs.ts";

/** Initial buckets = 2**INITIAL_POWER (memcached -o hashpower default). */
const INITIAL_POWER = 16;
/** Old buckets migrated per insert/remove while expanding. */
const MIGRATE_STEP = 16;
const EMPTY = new Int32Array(0);

/** Key bytes -> item handle. */
export class HashTable {
  #arena: Arena;
  #buckets: Int32Array;
  #mask: number;
  #old: Int32Array = EMPTY;
  #oldMask = 0;
  #expanding = false;
  #expandBucket = 0;
  #power: number;

  /** An empty table over the items in `arena`. */
  constructor(arena: Arena, power = INITIAL_POWER) {
    this.#arena = arena;
    this.#power = power;
    this.#buckets = new Int32Array(1 << power).fill(-1);
    this.#mask = (1 << power) - 1;
  }

  /** log2 of the bucket count. */
  get power(): number {
    return this.#power;
  }

  /** Bytes held by bucket arrays. */
  get bytes(): number {
    return this.#buckets.byteLength + this.#old.byteLength;
  }

  /** True while old buckets are being migrated. */
  get expanding(): boolean {
    return this.#expanding;
  }

  /** Handle of the linked item whose key is `src[start, end)`, or -1. */
  find(src: Uint8Array, start: number, end: number): number {
    const hv = hashBytes(src, start, end);
    let b = hv & this.#oldMask;
    let h: number;
    if (this.#expanding && b >= this.#expandBucket) h = this.#old[b];
    else h = this.#buckets[hv & this.#mask];
    const len = end - start;
    const arena = this.#arena;
    while (h !== -1) {
      const p = h >>> INDEX_BITS;
      const o = arena.offset(h);
      const w = o >> 2;
      const i32 = arena.i32[p];
      if (((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN) === len) {
        const u8 = arena.u8[p];
        const k = o + HEADER_SIZE - start;
        b = start;
        while (b < end && u8[b + k] === src[b]) b++;
        if (b === end) return h;
      }
      h = i32[w + W_HNEXT];
    }
    return -1;
  }

  /**
   * Links item `h` at the head of its chain; an item with the same key is
   * taken out of the chain and returned (else -1).
   */
  insertReplacing(h: number): number {
    const arena = this.#arena;
    const p = h >>> INDEX_BITS;
    const o = arena.offset(h);
    const u8 = arena.u8[p];
    const i32 = arena.i32[p];
    const ks = o + HEADER_SIZE;
    const len = (i32[(o >> 2) + W_META] >>> KEY_SHIFT) & M_KEYLEN;
    const hv = hashBytes(u8, ks, ks + len);
    let table: Int32Array;
    let b = hv & this.#oldMask;
    if (this.#expanding && b >= this.#expandBucket) table = this.#old;
    else {
      table = this.#buckets;
      b = hv & this.#mask;
    }
    // Find and cut out an item with the same key.
    let prev = -1;
    let cur = table[b];
    let replaced = -1;
    while (cur !== -1) {
      const cp = cur >>> INDEX_BITS;
      const co = arena.offset(cur);
      const ci32 = arena.i32[cp];
      const next = ci32[(co >> 2) + W_HNEXT];
      if (((ci32[(co >> 2) + W_META] >>> KEY_SHIFT) & M_KEYLEN) === len) {
        const cu8 = arena.u8[cp];
        const d = co - o;
        let i = ks;
        const end = ks + len;
        while (i < end && cu8[i + d] === u8[i]) i++;
        if (i === end) {
          if (prev === -1) table[b] = next;
          else arena.i32[prev >>> INDEX_BITS][(arena.offset(prev) >> 2) + W_HNEXT] = next;
          ci32[(co >> 2) + W_HNEXT] = -1;
          replaced = cur;
          break;
        }
      }
      prev = cur;
      cur = next;
    }
    i32[(o >> 2) + W_HNEXT] = table[b];
    table[b] = h;
    return replaced;
  }

  /** Takes linked item `h` out of its chain; false if it was not there. */
  remove(h: number): boolean {
    const arena = this.#arena;
    const p = h >>> INDEX_BITS;
    const o = arena.offset(h);
    const u8 = arena.u8[p];
    const ks = o + HEADER_SIZE;
    const hv = hashBytes(u8, ks, ks + ((arena.i32[p][(o >> 2) + W_META] >>> KEY_SHIFT) & M_KEYLEN));
    let table: Int32Array;
    let b = hv & this.#oldMask;
    if (this.#expanding && b >= this.#expandBucket) table = this.#old;
    else {
      table = this.#buckets;
      b = hv & this.#mask;
    }
    const next = arena.i32[p][(o >> 2) + W_HNEXT];
    let cur = table[b];
    if (cur === h) {
      table[b] = next;
      return true;
    }
    while (cur !== -1) {
      const ci32 = arena.i32[cur >>> INDEX_BITS];
      const cw = (arena.offset(cur) >> 2) + W_HNEXT;
      const cn = ci32[cw];
      if (cn === h) {
        ci32[cw] = next;
        return true;
      }
      cur = cn;
    }
    return false;
  }

  /** Called after inserts: starts growing above load 1.5, migrates a step while growing. */
  maintain(items: number): void {
    if (this.#expanding) this.#migrate(MIGRATE_STEP);
    else if (items > this.#buckets.length * 1.5 && this.#power < 30) this.#startExpand();
  }

  /** Completes any expansion in progress at once. */
  finishExpand(): void {
    while (this.#expanding) this.#migrate(1 << 16);
  }

  #startExpand(): void {
    this.#old = this.#buckets;
    this.#oldMask = this.#mask;
    this.#power++;
    this.#buckets = new Int32Array(1 << this.#power).fill(-1);
    this.#mask = (1 << this.#power) - 1;
    this.#expandBucket = 0;
    this.#expanding = true;
  }

  #migrate(count: number): void {
    const arena = this.#arena;
    const old = this.#old;
    const buckets = this.#buckets;
    const mask = this.#mask;
    const stop = Math.min(old.length, this.#expandBucket + count);
    for (let b = this.#expandBucket; b < stop; b++) {
      let h = old[b];
      while (h !== -1) {
        const p = h >>> INDEX_BITS;
        const o = arena.offset(h);
        const i32 = arena.i32[p];
        const w = o >> 2;
        const next = i32[w + W_HNEXT];
        const ks = o + HEADER_SIZE;
        const nb = hashBytes(arena.u8[p], ks, ks + ((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN)) &
          mask;
        i32[w + W_HNEXT] = buckets[nb];
        buckets[nb] = h;
        h = next;
      }
      old[b] = -1;
    }
    this.#expandBucket = stop;
    if (stop === old.length) {
      this.#old = EMPTY;
      this.#oldMask = 0;
      this.#expanding = false;
    }
  }
}
