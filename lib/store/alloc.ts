/**
 * Where a Store's chunks come from, in memcached's order: an expired or
 * flushed item near the LRU tail (reclaimed), the class's free list, the
 * page the class is carving, a new page while under the memory limit, and
 * last an eviction from the LRU tail. Items larger than half a page take a
 * run of whole pages. The Store unlinks the items taken (TakeItem); the
 * counters of each path are kept here.
 * @module
 */

import type { SlabClasses } from "./classes.ts";
import { itemDead } from "./expiry.ts";
import {
  F_EVICTED_UNFETCHED,
  F_EVICTIONS,
  F_EXPIRED_UNFETCHED,
  F_MEM_LIMIT,
  F_RECLAIMED,
  F_TOTAL_MALLOCED,
} from "./memory.ts";
import {
  type Arena,
  INDEX_BITS,
  M_FETCHED,
  M_TIME,
  PAGE_SIZE,
  W_EXPTIME,
  W_HNEXT,
  W_META,
  W_PREV,
  W_TIME,
} from "./slabs.ts";

/** alloc result: no memory (eviction disabled or nothing evictable). */
export const ALLOC_NO_MEMORY: number = -3;

/** Items checked at an LRU tail for an expired or flushed one before evicting (memcached: 5). */
const TAIL_SEARCH = 5;
/**
 * Active items an eviction moves to the head before it takes one anyway:
 * memcached moves every item fetched twice out of COLD (its bump queue) and
 * retries its 5-item tail pull up to 10 times, so a run of actives at the
 * tail survives; each one rescued lost its bit, so the cost stays amortized.
 */
const RESCUE_MAX = 50;

/**
 * Unlinks and frees an item the allocator takes: reclaimed (`expired` when
 * by exptime, else `flushed`) or `evicted`; the Store reports it and unlinks.
 */
export type TakeItem = (h: number, why: "expired" | "flushed" | "evicted") => void;

/** Chunk and page allocation over a Store's arena and slab classes. */
export class Allocator {
  /** The item the current allocation must not take (-1: none): the one its caller copies from. */
  keep = -1;
  #arena: Arena;
  #c: SlabClasses;
  #f: Float64Array;
  #ctl: Int32Array;
  #evict: boolean;
  #clock: { now(): number };
  #take: TakeItem;

  /**
   * An allocator over shared counters `f` and scalars `ctl` (which items a
   * flush killed); `evict` false: fail instead of evicting (-M).
   */
  constructor(
    arena: Arena,
    classes: SlabClasses,
    f: Float64Array,
    ctl: Int32Array,
    evict: boolean,
    clock: { now(): number },
    take: TakeItem,
  ) {
    this.#arena = arena;
    this.#c = classes;
    this.#f = f;
    this.#ctl = ctl;
    this.#evict = evict;
    this.#clock = clock;
    this.#take = take;
  }

  /** A chunk of class `cls`, or ALLOC_NO_MEMORY. */
  chunk(cls: number): number {
    // As memcached's allocation pulls the LRU tail first: an expired or flushed item near
    // the tail gives its chunk (counted as reclaimed) before free or new memory is used.
    const c = this.#c;
    if (c.lruTail[cls] !== -1 && this.#reclaimTail(cls)) return this.#popFree(cls);
    let h = this.#popFree(cls);
    if (h !== -1) return h;
    const arena = this.#arena;
    let p = c.curPage[cls];
    if (p !== -1 && arena.carved[p] < c.perPage[cls]) {
      return (p << INDEX_BITS) | arena.carved[p]++;
    }
    const f = this.#f;
    if (f[F_TOTAL_MALLOCED] + PAGE_SIZE <= f[F_MEM_LIMIT] || c.pages[cls] === 0) {
      p = arena.allocRun(1, cls, c.sizes[cls]);
      if (p !== -1) {
        c.curPage[cls] = p;
        c.pages[cls]++;
        f[F_TOTAL_MALLOCED] += PAGE_SIZE;
        arena.carved[p] = 1;
        return p << INDEX_BITS;
      }
    }
    if (this.#evict && this.#evictTail(cls)) {
      h = this.#popFree(cls);
      if (h !== -1) return h;
    }
    c.outOfMemory[cls]++;
    return ALLOC_NO_MEMORY;
  }

  /** A run of whole pages for an item of `total` bytes (> half a page), or ALLOC_NO_MEMORY. */
  large(total: number): number {
    const c = this.#c;
    const cls = c.large;
    const f = this.#f;
    const count = Math.ceil(total / PAGE_SIZE);
    const bytes = count * PAGE_SIZE;
    // Make room among large items; with none linked, one may exceed the limit (like a first page).
    while (f[F_TOTAL_MALLOCED] + bytes > f[F_MEM_LIMIT] && c.number[cls] > 0) {
      if (this.#reclaimTail(cls)) continue;
      if (!this.#evict || !this.#evictTail(cls)) {
        c.outOfMemory[cls]++;
        return ALLOC_NO_MEMORY;
      }
    }
    for (;;) {
      const p = this.#arena.allocRun(count, cls, bytes);
      if (p !== -1) {
        this.#arena.carved[p] = 1;
        c.pages[cls]++;
        f[F_TOTAL_MALLOCED] += bytes;
        return p << INDEX_BITS;
      }
      // No run of free page ids (fragmented by runs of other lengths): drop older large items.
      if (
        c.number[cls] === 0 || !(this.#reclaimTail(cls) || (this.#evict && this.#evictTail(cls)))
      ) {
        c.outOfMemory[cls]++;
        return ALLOC_NO_MEMORY;
      }
    }
  }

  #popFree(cls: number): number {
    const c = this.#c;
    const h = c.freeHead[cls];
    if (h !== -1) {
      c.freeHead[cls] = this.#arena.i32[this.#arena.word(h) + W_HNEXT];
      c.freeCount[cls]--;
    }
    return h;
  }

  /** Frees the first expired/flushed item among the last TAIL_SEARCH of the LRU; true if one was. */
  #reclaimTail(cls: number): boolean {
    const c = this.#c;
    const now = this.#clock.now();
    const arena = this.#arena;
    let h = c.lruTail[cls];
    for (let i = 0; i < TAIL_SEARCH && h !== -1; i++) {
      const i32 = arena.i32;
      const w = arena.word(h);
      if (h !== this.keep && itemDead(this.#ctl, i32, w, now)) {
        c.reclaimed[cls]++;
        this.#f[F_RECLAIMED]++;
        if ((i32[w + W_META] & M_FETCHED) === 0) {
          c.expiredUnfetched[cls]++;
          this.#f[F_EXPIRED_UNFETCHED]++;
        }
        const exp = i32[w + W_EXPTIME];
        this.#take(h, exp !== 0 && exp <= now ? "expired" : "flushed");
        return true;
      }
      h = i32[w + W_PREV];
    }
    return false;
  }

  /**
   * Evicts the LRU tail of `cls` (passing over `keep`); false if there is
   * nothing to evict. Up to RESCUE_MAX active items met first lose the bit
   * and go to the head (memcached: an active COLD item moves to WARM), so a
   * list of active items still evicts.
   */
  #evictTail(cls: number): boolean {
    const c = this.#c;
    const arena = this.#arena;
    const i32 = arena.i32;
    let h = c.lruTail[cls];
    for (let tries = 0;;) {
      if (h === this.keep) h = i32[arena.word(h) + W_PREV];
      if (h === -1) return false;
      const w = arena.word(h);
      if (i32[w + W_TIME] >= 0 || tries === RESCUE_MAX) break;
      tries++;
      i32[w + W_TIME] &= M_TIME;
      c.movesToWarm[cls]++;
      const prev = i32[w + W_PREV];
      c.lruRemove(arena, h, cls);
      c.lruPush(arena, h, cls);
      // The newer neighbour is next; an item that was the head comes round again, now inactive.
      if (prev !== -1) h = prev;
    }
    const w = arena.word(h);
    c.evicted[cls]++;
    this.#f[F_EVICTIONS]++;
    if (i32[w + W_EXPTIME] !== 0) c.evictedNonzero[cls]++;
    if (i32[w + W_TIME] < 0) c.evictedActive[cls]++;
    c.evictedTime[cls] = this.#clock.now() - (i32[w + W_TIME] & M_TIME);
    if ((i32[w + W_META] & M_FETCHED) === 0) {
      c.evictedUnfetched[cls]++;
      this.#f[F_EVICTED_UNFETCHED]++;
    }
    this.#take(h, "evicted");
    return true;
  }
}
