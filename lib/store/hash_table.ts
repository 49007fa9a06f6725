/**
 * Chained hash index: buckets in a growable SharedArrayBuffer holding
 * handle + 1 (0 = empty, so untouched buckets cost no RSS), the chain link
 * (hnext) in the item header, keys compared as bytes. Grows 2x at load factor
 * 1.5 in place: bucket b is split into b and b + oldSize a few buckets at a
 * time (like memcached's incremental assoc expansion), so no thread ever
 * needs a new buffer object.
 * @module
 */

import { hashBytes } from "./hash.ts";
import {
  Arena,
  HEADER_SIZE,
  I_HASH_EXPAND_BUCKET,
  I_HASH_EXPANDING,
  I_HASH_POWER,
  KEY_SHIFT,
  M_KEYLEN,
  W_HNEXT,
  W_META,
} from "./slabs.ts";

/** Initial buckets = 2**INITIAL_POWER (memcached -o hashpower default). */
export const INITIAL_POWER = 16;
/** Old buckets split per insert while expanding. */
const MIGRATE_STEP = 16;

/** Key bytes -> item handle, over shared buckets. */
export class HashTable {
  #arena: Arena;
  #sab: SharedArrayBuffer;
  #ctl: Int32Array;
  #maxPower: number;
  /** Fixed-length view for `#power` (remapped when the shared power changes). */
  #buckets: Int32Array = new Int32Array(0);
  #power = -1;
  #mask = 0;

  /**
   * A table over shared `buckets` (zeroed when new) whose state is in the
   * I_HASH_* slots of `ctl`; it stops growing at 2**maxPower buckets.
   */
  constructor(arena: Arena, buckets: SharedArrayBuffer, ctl: Int32Array, maxPower: number) {
    this.#arena = arena;
    this.#sab = buckets;
    this.#ctl = ctl;
    this.#maxPower = maxPower;
    this.#sync();
  }

  /** Bytes to reserve for buckets that may grow to 2**maxPower. */
  static maxBytes(maxPower: number): number {
    return 4 * 2 ** maxPower;
  }

  /** log2 of the bucket count. */
  get power(): number {
    return this.#ctl[I_HASH_POWER];
  }

  /** Bytes held by the bucket array. */
  get bytes(): number {
    return 4 * (1 << this.#ctl[I_HASH_POWER]);
  }

  /** True while buckets are being split. */
  get expanding(): boolean {
    return this.#ctl[I_HASH_EXPANDING] !== 0;
  }

  /** Handle of the linked item whose key is `src[start, end)`, or -1. */
  find(src: Uint8Array, start: number, end: number): number {
    // The bucket first: it remaps #buckets when another thread grew the table, and
    // `this.#buckets[...]` would read the old, shorter view (evaluated before its index).
    const b = this.#bucket(hashBytes(src, start, end));
    let h = this.#buckets[b] - 1;
    const len = end - start;
    const arena = this.#arena;
    const i32 = arena.i32;
    const u8 = arena.u8;
    while (h !== -1) {
      const w = arena.word(h);
      if (((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN) === len) {
        const k = w * 4 + HEADER_SIZE - start;
        let b = start;
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
    const i32 = arena.i32;
    const u8 = arena.u8;
    const w = arena.word(h);
    const ks = w * 4 + HEADER_SIZE;
    const len = (i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN;
    const b = this.#bucket(hashBytes(u8, ks, ks + len));
    const table = this.#buckets;
    // Find and cut out an item with the same key.
    let prev = -1;
    let cur = table[b] - 1;
    let replaced = -1;
    while (cur !== -1) {
      const cw = arena.word(cur);
      const next = i32[cw + W_HNEXT];
      if (((i32[cw + W_META] >>> KEY_SHIFT) & M_KEYLEN) === len) {
        const d = (cw - w) * 4;
        let i = ks;
        const end = ks + len;
        while (i < end && u8[i + d] === u8[i]) i++;
        if (i === end) {
          if (prev === -1) table[b] = next + 1;
          else i32[arena.word(prev) + W_HNEXT] = next;
          i32[cw + W_HNEXT] = -1;
          replaced = cur;
          break;
        }
      }
      prev = cur;
      cur = next;
    }
    i32[w + W_HNEXT] = table[b] - 1;
    table[b] = h + 1;
    return replaced;
  }

  /** Takes linked item `h` out of its chain; false if it was not there. */
  remove(h: number): boolean {
    const arena = this.#arena;
    const i32 = arena.i32;
    const w = arena.word(h);
    const ks = w * 4 + HEADER_SIZE;
    const b = this.#bucket(
      hashBytes(arena.u8, ks, ks + ((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN)),
    );
    const table = this.#buckets;
    const next = i32[w + W_HNEXT];
    let cur = table[b] - 1;
    if (cur === h) {
      table[b] = next + 1;
      return true;
    }
    while (cur !== -1) {
      const cw = arena.word(cur) + W_HNEXT;
      const cn = i32[cw];
      if (cn === h) {
        i32[cw] = next;
        return true;
      }
      cur = cn;
    }
    return false;
  }

  /** Called after inserts: starts growing above load 1.5, splits a step while growing. */
  maintain(items: number): void {
    const ctl = this.#ctl;
    if (ctl[I_HASH_EXPANDING] !== 0) this.#migrate(MIGRATE_STEP);
    else if (items > (1 << ctl[I_HASH_POWER]) * 1.5 && ctl[I_HASH_POWER] < this.#maxPower) {
      this.#startExpand();
    }
  }

  /** Completes any expansion in progress at once. */
  finishExpand(): void {
    while (this.#ctl[I_HASH_EXPANDING] !== 0) this.#migrate(1 << 16);
  }

  /** Bucket index for hash `hv`, remapping the view if another thread grew the table. */
  #bucket(hv: number): number {
    const ctl = this.#ctl;
    if (ctl[I_HASH_POWER] !== this.#power) this.#sync();
    const b = hv & this.#mask;
    if (ctl[I_HASH_EXPANDING] === 0) return b;
    // Lower-half buckets not yet split still hold the items of both halves.
    const lo = hv & (this.#mask >>> 1);
    return lo >= ctl[I_HASH_EXPAND_BUCKET] ? lo : b;
  }

  #sync(): void {
    const power = this.#ctl[I_HASH_POWER];
    this.#buckets = new Int32Array(this.#sab, 0, 1 << power);
    this.#power = power;
    this.#mask = (1 << power) - 1;
  }

  #startExpand(): void {
    const ctl = this.#ctl;
    const power = ctl[I_HASH_POWER] + 1;
    // New upper half: fresh zero pages (empty buckets).
    const bytes = 4 * (1 << power);
    if (this.#sab.byteLength < bytes) this.#sab.grow(bytes);
    ctl[I_HASH_EXPAND_BUCKET] = 0;
    ctl[I_HASH_EXPANDING] = 1;
    ctl[I_HASH_POWER] = power;
    this.#sync();
  }

  #migrate(count: number): void {
    const ctl = this.#ctl;
    if (ctl[I_HASH_POWER] !== this.#power) this.#sync();
    const arena = this.#arena;
    const i32 = arena.i32;
    const u8 = arena.u8;
    const buckets = this.#buckets;
    const mask = this.#mask;
    const half = (mask >>> 1) + 1;
    const start = ctl[I_HASH_EXPAND_BUCKET];
    const stop = Math.min(half, start + count);
    for (let b = start; b < stop; b++) {
      let h = buckets[b] - 1;
      let lo = -1;
      let hi = -1;
      while (h !== -1) {
        const w = arena.word(h);
        const next = i32[w + W_HNEXT];
        const ks = w * 4 + HEADER_SIZE;
        if ((hashBytes(u8, ks, ks + ((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN)) & mask) === b) {
          i32[w + W_HNEXT] = lo;
          lo = h;
        } else {
          i32[w + W_HNEXT] = hi;
          hi = h;
        }
        h = next;
      }
      buckets[b] = lo + 1;
      buckets[b + half] = hi + 1;
    }
    ctl[I_HASH_EXPAND_BUCKET] = stop;
    if (stop === half) ctl[I_HASH_EXPANDING] = 0;
  }
}
