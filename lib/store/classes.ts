/**
 * A Store's slab classes: chunk sizes, and per class the free list, the LRU
 * list and memcached's counters, all views of the Store's shared control
 * buffer (so every thread's Store sees the same lists), and the
 * `stats slabs` / `stats items` rows read from them. store.ts decides what
 * to allocate, evict and reclaim; this module only holds and reports.
 * @module
 */

import { F_CLASS_ARRAYS, F_SCALARS, I_CLASS_ARRAYS } from "./memory.ts";
import { type Arena, I_SCALARS, M_TIME, PAGE_SIZE, W_NEXT, W_PREV, W_TIME } from "./slabs.ts";

/** One `stats slabs` / `stats items` row. */
export interface ClassStats {
  /** Slab class id. */
  id: number;
  /** memcached field names and values, in memcached's order. */
  fields: Array<[string, number]>;
}

/** The per-class state of a Store; class ids run from 1 to `large` (whole-page items). */
export class SlabClasses {
  /** Chunk size per class; `large` holds the largest item size (or half a page). */
  readonly sizes: Int32Array;
  /** Chunks per page per class (1 for `large`). */
  readonly perPage: Int32Array;
  /** The class of items larger than half a page (memcached's power_largest). */
  readonly large: number;
  /** Head of each class's free list (-1: empty), linked through W_HNEXT. */
  readonly freeHead: Int32Array;
  /** Most recently used item of each class (-1: none). */
  readonly lruHead: Int32Array;
  /** Least recently used item of each class (-1: none). */
  readonly lruTail: Int32Array;
  /** The page each class is carving chunks from (-1: none). */
  readonly curPage: Int32Array;
  /** Chunks on each class's free list. */
  readonly freeCount: Float64Array;
  /** Pages each class holds. */
  readonly pages: Float64Array;
  /** Chunks allocated (linked or not) per class. */
  readonly used: Float64Array;
  /** Linked items per class. */
  readonly number: Float64Array;
  /** Sum of linked items' sizes per class. */
  readonly memRequested: Float64Array;
  /** memcached's per-class counters of the same names. */
  readonly evicted: Float64Array;
  /** Evictions of items with an exptime. */
  readonly evictedNonzero: Float64Array;
  /** Seconds since the last evicted item's last access. */
  readonly evictedTime: Float64Array;
  /** Evictions of items never fetched. */
  readonly evictedUnfetched: Float64Array;
  /** Allocations that found no memory. */
  readonly outOfMemory: Float64Array;
  /** Expired or flushed items whose chunk an allocation took. */
  readonly reclaimed: Float64Array;
  /** Reclaimed items never fetched. */
  readonly expiredUnfetched: Float64Array;
  /** Evictions of items accessed since they were stored. */
  readonly evictedActive: Float64Array;
  /** Active items an eviction moved to the head instead. */
  readonly movesToWarm: Float64Array;
  /** Items `lru_crawler crawl` reclaimed (expired or flushed), per class. */
  readonly crawlerReclaimed: Float64Array;
  /** Items `lru_crawler crawl` looked at, per class. */
  readonly crawlerChecked: Float64Array;
  /** Class for each 4-byte size step up to half a page. */
  #bySize: Uint8Array;

  /**
   * Views over the control buffer's class arrays: `f` and `i32` are its
   * float64 and int32 parts (from offset 0 of each); `fresh` empties the
   * lists of a new store.
   */
  constructor(
    sizes: readonly number[],
    maxItemSize: number,
    f: Float64Array,
    i32: Int32Array,
    fresh: boolean,
  ) {
    this.large = sizes.length;
    const n = sizes.length + 1;
    this.sizes = new Int32Array(n);
    this.perPage = new Int32Array(n);
    for (let c = 1; c < sizes.length; c++) {
      this.sizes[c] = sizes[c];
      this.perPage[c] = Math.floor(PAGE_SIZE / sizes[c]);
    }
    this.sizes[this.large] = Math.max(maxItemSize, PAGE_SIZE / 2);
    this.perPage[this.large] = 1;
    this.#bySize = new Uint8Array(PAGE_SIZE / 2 / 4 + 1);
    let c = 1;
    for (let s = 0; s < this.#bySize.length; s++) {
      while (sizes[c] < s * 4) c++;
      this.#bySize[s] = c;
    }
    const fa = (i: number) => f.subarray(F_SCALARS + i * n, F_SCALARS + (i + 1) * n);
    this.freeCount = fa(0);
    this.pages = fa(1);
    this.used = fa(2);
    this.number = fa(3);
    this.memRequested = fa(4);
    this.evicted = fa(5);
    this.evictedNonzero = fa(6);
    this.evictedTime = fa(7);
    this.evictedUnfetched = fa(8);
    this.outOfMemory = fa(9);
    this.reclaimed = fa(10);
    this.expiredUnfetched = fa(11);
    this.evictedActive = fa(12);
    this.movesToWarm = fa(13);
    this.crawlerReclaimed = fa(14);
    this.crawlerChecked = fa(15);
    const ia = (i: number) => i32.subarray(I_SCALARS + i * n, I_SCALARS + (i + 1) * n);
    this.freeHead = ia(0);
    this.lruHead = ia(1);
    this.lruTail = ia(2);
    this.curPage = ia(3);
    if (fresh) {
      this.freeHead.fill(-1);
      this.lruHead.fill(-1);
      this.lruTail.fill(-1);
      this.curPage.fill(-1);
    }
  }

  /** float64 slots the class arrays of `classCount` classes take after the scalars. */
  static f64Length(classCount: number): number {
    return F_SCALARS + F_CLASS_ARRAYS * (classCount + 1);
  }

  /** int32 slots the class arrays of `classCount` classes take after the scalars. */
  static i32Length(classCount: number): number {
    return I_SCALARS + I_CLASS_ARRAYS * (classCount + 1);
  }

  /** The chunk class of an item of `total` bytes (at most half a page). */
  classOf(total: number): number {
    return this.#bySize[(total + 3) >>> 2];
  }

  /** Puts item `h` of class `cls` at the head of its LRU. */
  lruPush(arena: Arena, h: number, cls: number): void {
    const i32 = arena.i32;
    const w = arena.word(h);
    const head = this.lruHead[cls];
    i32[w + W_PREV] = -1;
    i32[w + W_NEXT] = head;
    if (head !== -1) i32[arena.word(head) + W_PREV] = h;
    else this.lruTail[cls] = h;
    this.lruHead[cls] = h;
  }

  /** Takes item `h` of class `cls` off its LRU. */
  lruRemove(arena: Arena, h: number, cls: number): void {
    const i32 = arena.i32;
    const w = arena.word(h);
    const prev = i32[w + W_PREV];
    const next = i32[w + W_NEXT];
    if (prev !== -1) i32[arena.word(prev) + W_NEXT] = next;
    else this.lruHead[cls] = next;
    if (next !== -1) i32[arena.word(next) + W_PREV] = prev;
    else this.lruTail[cls] = prev;
    i32[w + W_PREV] = -1;
    i32[w + W_NEXT] = -1;
  }

  /** `stats reset`'s part of the class counters: the event counters, not what is held. */
  resetCounters(): void {
    for (
      const a of [
        this.evicted,
        this.evictedNonzero,
        this.evictedTime,
        this.evictedUnfetched,
        this.outOfMemory,
        this.reclaimed,
        this.expiredUnfetched,
        this.evictedActive,
        this.movesToWarm,
        this.crawlerReclaimed,
        this.crawlerChecked,
      ]
    ) a.fill(0);
  }

  /** Totals of the crawler's counters over every class: [reclaimed, items checked]. */
  crawlerTotals(): [number, number] {
    let reclaimed = 0, checked = 0;
    for (let cls = 1; cls <= this.large; cls++) {
      reclaimed += this.crawlerReclaimed[cls];
      checked += this.crawlerChecked[cls];
    }
    return [reclaimed, checked];
  }

  /** `stats slabs` rows: one per class with pages, in class order. */
  slabRows(arena: Arena): ClassStats[] {
    const rows: ClassStats[] = [];
    for (let cls = 1; cls <= this.large; cls++) {
      const pages = this.pages[cls];
      if (pages === 0) continue;
      const perPage = this.perPage[cls];
      const total = pages * perPage;
      const used = this.used[cls];
      const cur = this.curPage[cls];
      const end = cls === this.large || cur === -1 ? 0 : perPage - arena.carved[cur];
      rows.push({
        id: cls,
        fields: [
          ["chunk_size", this.sizes[cls]],
          ["chunks_per_page", perPage],
          ["total_pages", pages],
          ["total_chunks", total],
          ["used_chunks", used],
          ["free_chunks", total - used],
          ["free_chunks_end", end],
        ],
      });
    }
    return rows;
  }

  /** `stats items` rows for classes holding items; `now` in clock seconds. */
  itemRows(arena: Arena, now: number): ClassStats[] {
    const rows: ClassStats[] = [];
    for (let cls = 1; cls <= this.large; cls++) {
      const number = this.number[cls];
      if (number === 0) continue;
      const tail = this.lruTail[cls];
      const age = tail === -1 ? 0 : now - (arena.i32[arena.word(tail) + W_TIME] & M_TIME);
      rows.push({
        id: cls,
        fields: [
          ["number", number],
          ["number_hot", 0],
          ["number_warm", 0],
          ["number_cold", number],
          ["age_hot", 0],
          ["age_warm", 0],
          ["age", age],
          ["mem_requested", this.memRequested[cls]],
          ["evicted", this.evicted[cls]],
          ["evicted_nonzero", this.evictedNonzero[cls]],
          ["evicted_time", this.evictedTime[cls]],
          ["outofmemory", this.outOfMemory[cls]],
          ["tailrepairs", 0],
          ["reclaimed", this.reclaimed[cls]],
          ["expired_unfetched", this.expiredUnfetched[cls]],
          ["evicted_unfetched", this.evictedUnfetched[cls]],
          ["evicted_active", this.evictedActive[cls]],
          ["crawler_reclaimed", this.crawlerReclaimed[cls]],
          ["crawler_items_checked", this.crawlerChecked[cls]],
          ["lrutail_reflocked", 0],
          ["moves_to_cold", 0],
          ["moves_to_warm", this.movesToWarm[cls]],
          ["moves_within_lru", 0],
          ["direct_reclaims", 0],
          ["hits_to_hot", 0],
          ["hits_to_warm", 0],
          ["hits_to_cold", 0],
          ["hits_to_temp", 0],
        ],
      });
    }
    return rows;
  }
}
