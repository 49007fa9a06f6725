/**
 * Reading a Store's items: one item's fields by handle (key, value, flags,
 * exptime, CAS, access state and class, in the header layout of slabs.ts,
 * read and set in place), and the walks that visit the live ones (in page
 * order, or one class's LRU order). store.ts's Store extends
 * {@linkcode Items}; the caller holds the store's lock, and the field
 * accessors rely on the views synced by the Store call that gave the handle.
 * @module
 */

import type { SlabClasses } from "./classes.ts";
import { itemDead } from "./expiry.ts";
import {
  type Arena,
  HEADER_SIZE,
  INDEX_BITS,
  INDEX_MASK,
  KEY_SHIFT,
  M_CASHI,
  M_FETCHED,
  M_KEYLEN,
  M_LINKED,
  M_TIME,
  M_USER,
  M_VLEN,
  USER_SHIFT,
  W_CASLO,
  W_EXPTIME,
  W_META,
  W_NEXT,
  W_TIME,
  W_VLEN,
} from "./slabs.ts";

/** Header + key + value + "\r\n" (+ flags) of the item at word `w`. */
export function itemBytes(i32: Int32Array, w: number): number {
  const v = i32[w + W_VLEN];
  return HEADER_SIZE + ((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN) + (v & M_VLEN) +
    (v < 0 ? 6 : 2);
}

/** The items in one Store's pages: their fields by handle, and walks over the live ones. */
export class Items {
  #arena: Arena;
  /** The Store's shared int32 scalars (which items a flush killed). */
  #ctl: Int32Array;
  #c: SlabClasses;
  #clock: { now(): number };

  /** The items in `arena`'s pages, with the Store's scalars, slab classes and clock. */
  constructor(arena: Arena, ctl: Int32Array, classes: SlabClasses, clock: { now(): number }) {
    this.#arena = arena;
    this.#ctl = ctl;
    this.#c = classes;
    this.#clock = clock;
  }

  /** Bytes of all pages (shared); keyOffset/valueOffset are absolute offsets in it. */
  buffer(_h: number): Uint8Array {
    return this.#arena.u8;
  }

  /** Offset of the key in buffer(h). */
  keyOffset(h: number): number {
    return this.#arena.word(h) * 4 + HEADER_SIZE;
  }

  /** Key length in bytes. */
  keyLength(h: number): number {
    return (this.#word(h, W_META) >>> KEY_SHIFT) & M_KEYLEN;
  }

  /** Offset of the value in buffer(h); "\r\n" follows the value. */
  valueOffset(h: number): number {
    const w = this.#arena.word(h);
    return w * 4 + HEADER_SIZE + ((this.#arena.i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN);
  }

  /** Value length in bytes. */
  valueLength(h: number): number {
    return this.#word(h, W_VLEN) & M_VLEN;
  }

  /** Three bits of item state owned by the server (meta stale/token/binary-key). */
  userBits(h: number): number {
    return (this.#word(h, W_VLEN) & M_USER) >>> USER_SHIFT;
  }

  /** Set the server-owned item bits (0..7). */
  setUserBits(h: number, bits: number): void {
    const i32 = this.#arena.i32;
    const w = this.#arena.word(h) + W_VLEN;
    i32[w] = (i32[w] & ~M_USER) | ((bits & 7) << USER_SHIFT);
  }

  /** Client flags (uint32). */
  flags(h: number): number {
    const i32 = this.#arena.i32;
    const w = this.#arena.word(h);
    const v = i32[w + W_VLEN];
    if (v >= 0) return 0;
    const u8 = this.#arena.u8;
    const at = w * 4 + HEADER_SIZE + ((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN) +
      (v & M_VLEN) + 2;
    return (u8[at] | (u8[at + 1] << 8) | (u8[at + 2] << 16) | (u8[at + 3] << 24)) >>> 0;
  }

  /** Absolute exptime in clock seconds, 0 = never. */
  exptime(h: number): number {
    return this.#word(h, W_EXPTIME);
  }

  /** Sets the absolute exptime. */
  setExptime(h: number, exptime: number): void {
    this.#arena.i32[this.#arena.word(h) + W_EXPTIME] = exptime;
  }

  /** CAS value (< 2**53, exact). */
  cas(h: number): number {
    const i32 = this.#arena.i32;
    const w = this.#arena.word(h);
    return (i32[w + W_META] & M_CASHI) * 4294967296 + (i32[w + W_CASLO] >>> 0);
  }

  /** Clock seconds of the last access or update. */
  lastAccess(h: number): number {
    return this.#word(h, W_TIME) & M_TIME;
  }

  /** True once fetched since stored. */
  fetched(h: number): boolean {
    return (this.#word(h, W_META) & M_FETCHED) !== 0;
  }

  /** Slab class id. */
  slabClass(h: number): number {
    return this.#arena.pageClass[h >>> INDEX_BITS];
  }

  /** Bytes the item accounts for: header + key + value + 2 (+ 4 for non-zero flags). */
  itemSize(h: number): number {
    return itemBytes(this.#arena.i32, this.#arena.word(h));
  }

  /**
   * Visits up to `max` live items from `cursor` (start 0) in page/chunk order;
   * returns the next cursor or -1 when done. Items do not move, so one present
   * for the whole scan is visited exactly once. `dead`: also items expired or
   * killed by a delayed flush in effect that nothing unlinked yet.
   */
  scan(cursor: number, max: number, fn: (h: number) => void, dead = false): number {
    if (cursor < 0) return -1;
    const arena = this.#arena;
    arena.sync();
    let p = cursor >>> INDEX_BITS;
    let idx = cursor & INDEX_MASK;
    let seen = 0;
    const now = this.#clock.now();
    while (p < arena.top) {
      while (idx < arena.carved[p]) {
        const h = (p << INDEX_BITS) | idx;
        idx++;
        const i32 = arena.i32;
        const w = arena.word(h);
        if ((i32[w + W_META] & M_LINKED) === 0 || (!dead && itemDead(this.#ctl, i32, w, now))) {
          continue;
        }
        if (seen >= max) return h;
        fn(h);
        seen++;
      }
      p++;
      idx = 0;
    }
    return -1;
  }

  /**
   * Visits the live items of slab class `cls`, most recently used first,
   * until `fn` returns false (`stats cachedump`). Nothing moves meanwhile.
   */
  lruItems(cls: number, fn: (h: number) => boolean): void {
    if (cls < 1 || cls >= this.#c.lruHead.length) return;
    const arena = this.#arena;
    arena.sync();
    const now = this.#clock.now();
    for (let h = this.#c.lruHead[cls]; h !== -1;) {
      const i32 = arena.i32;
      const w = arena.word(h);
      const next = i32[w + W_NEXT];
      if (!itemDead(this.#ctl, i32, w, now) && !fn(h)) return;
      h = next;
    }
  }

  #word(h: number, word: number): number {
    return this.#arena.i32[this.#arena.word(h) + word];
  }
}
