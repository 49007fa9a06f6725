/**
 * The cache: slab-allocated items, a byte-keyed hash index, per-class LRU,
 * lazy expiry and flush, memcached 1.6 counters. Pure: no I/O, the clock is
 * passed in. Every piece of mutable state lives in SharedArrayBuffers
 * (`memory()`), so Stores in several threads can share one cache; callers
 * serialize all calls with one lock (SharedLock). This module looks items
 * up, allocates, links and frees them; an item's fields are read in
 * items.ts, flush_all and the bulk sweeps are reclaim.ts's, the per-class
 * lists and counters are in classes.ts, chunk allocation and eviction in
 * alloc.ts.
 * @module
 */

import { Allocator } from "./alloc.ts";
import { type ClassStats, SlabClasses } from "./classes.ts";
import { flushedBefore } from "./expiry.ts";
import { HashTable, INITIAL_POWER } from "./hash_table.ts";
import { itemBytes, Items } from "./items.ts";
import {
  createMemory,
  F_BYTES,
  F_CAS,
  F_CURR_ITEMS,
  F_GET_EXPIRED,
  F_GET_FLUSHED,
  F_MEM_LIMIT,
  F_TOTAL_ITEMS,
  F_TOTAL_MALLOCED,
  resetEventCounters,
  SharedStats,
  type StoreMemory,
  type StoreOptions,
  type StoreStats,
} from "./memory.ts";
import { Reclaimer } from "./reclaim.ts";
import {
  Arena,
  F_FLAGS,
  HEADER_SIZE,
  I_COMMITTED,
  I_EXPLICIT_CAS_HI,
  I_EXPLICIT_CAS_LO,
  I_FLUSH_CAS_HI,
  I_FLUSH_CAS_LO,
  I_HASH_POWER,
  I_LAZY_FLUSH,
  I_OLDEST_LIVE,
  I_SCALARS,
  INDEX_BITS,
  KEY_SHIFT,
  M_ALLOCATED,
  M_CASHI,
  M_FETCHED,
  M_KEYLEN,
  M_LINKED,
  PAGE_SIZE,
  slabClassSizes,
  T_ACTIVE,
  W_CASLO,
  W_EXPTIME,
  W_HNEXT,
  W_META,
  W_NEXT,
  W_PREV,
  W_TIME,
  W_VLEN,
} from "./slabs.ts";

/** Source of the current time in integer seconds (like memcached current_time). */
export interface Clock {
  /** Current clock seconds; monotonic. */
  now(): number;
}

/**
 * memcached's item header on 64-bit builds plus the key's NUL byte: its
 * item_size_ok counts them (and 4 flag bytes, 8 CAS bytes) against -I, so
 * the largest value is the same here though memrep's header is smaller.
 */
const MC_ITEM_OVERHEAD = 48 + 1;
/** alloc result: item larger than maxItemSize. */
export const ALLOC_TOO_LARGE: number = -2;

/**
 * The item store. Handles are small non-negative integers, reused after
 * free; an item's fields are read and set through {@linkcode Items}.
 */
export class Store extends Items {
  /** CAS generator, default a shared counter from 1; replication may replace it (per thread). */
  nextCas: () => number;
  /** Counters, read from shared memory. */
  readonly stats: StoreStats;
  /** Called with an item about to be evicted (memcached's eviction log), or null. */
  onEvict: ((h: number) => void) | null = null;
  /**
   * Called with an item found expired (a lookup, or reclaimed by an alloc),
   * just before it is unlinked, or null. Replication remembers its version
   * there, so an older write of the key arriving late is not stored.
   */
  onExpire: ((h: number) => void) | null = null;

  #clock: Clock;
  #memory: StoreMemory;
  #arena: Arena;
  #table: HashTable;
  #maxItemSize: number;
  /** What memcached's item size check adds to the key and value (see MC_ITEM_OVERHEAD). */
  #sizeOverhead: number;
  #alloc: Allocator;
  #reclaim: Reclaimer;
  /** Shared float64 counters (F_*). */
  #f: Float64Array;
  /** Shared int32 scalars (I_*). */
  #ctl: Int32Array;

  /** Sizes, free lists, LRU lists and counters per slab class. */
  #c: SlabClasses;

  /**
   * An empty store in new shared memory, or, given `memory` (from another
   * Store's `memory()`), a view of that store: its settings then come from
   * `memory` and `options` are ignored.
   */
  constructor(options: StoreOptions, clock: Clock, memory?: StoreMemory) {
    const fresh = memory === undefined;
    const sizes = slabClassSizes(
      memory?.minChunk ?? options.minChunk ?? 48,
      memory?.growthFactor ?? options.growthFactor ?? 1.25,
    );
    const mem = memory ?? createMemory(options, sizes.length - 1);
    const classes = sizes.length;
    const f = new Float64Array(mem.control, 0, SlabClasses.f64Length(classes));
    const cap = mem.capacity;
    const i32 = new Int32Array(mem.control, f.byteLength, SlabClasses.i32Length(classes) + 3 * cap);
    const ctl = i32.subarray(0, I_SCALARS);
    const c = new SlabClasses(sizes, mem.maxItemSize, f, i32, fresh);
    const pt = (i: number) => {
      const at = SlabClasses.i32Length(classes) + i * cap;
      return i32.subarray(at, at + cap);
    };
    if (fresh) {
      ctl[I_HASH_POWER] = INITIAL_POWER;
      ctl[I_COMMITTED] = 0;
      f[F_MEM_LIMIT] = mem.memoryLimit;
    }
    const arena = new Arena(mem.pages, ctl, pt(0), pt(1), pt(2));
    super(arena, ctl, c, clock);
    this.#clock = clock;
    this.#memory = mem;
    this.#maxItemSize = mem.maxItemSize;
    this.#sizeOverhead = MC_ITEM_OVERHEAD + 2 + (options.useCas === false ? 0 : 8);
    this.#f = f;
    this.#ctl = ctl;
    this.#c = c;
    this.#arena = arena;
    this.#table = new HashTable(arena, mem.buckets, ctl, mem.maxHashPower);
    this.#alloc = new Allocator(
      arena,
      c,
      f,
      ctl,
      mem.evict !== 0,
      clock,
      (h, why) => {
        if (why === "expired") this.onExpire?.(h);
        else if (why === "evicted") this.onEvict?.(h);
        this.unlink(h);
      },
    );
    this.#reclaim = new Reclaimer(this, arena, c, f, ctl, clock);
    this.stats = new SharedStats(f, this.#table);
    this.nextCas = () => ++f[F_CAS];
  }

  /**
   * `cache_memlimit`: a new memory limit for every thread's view. Raising it
   * lets classes take more pages; lowering it makes allocations evict instead
   * of growing (pages already taken stay until their items go, as memcached
   * keeps them until its rebalancer moves them). False when the page table
   * has no room for `bytes` (the limit is then unchanged).
   */
  setMemoryLimit(bytes: number): boolean {
    const run = Math.ceil(this.#c.sizes[this.#c.large] / PAGE_SIZE);
    if (Math.ceil(bytes / PAGE_SIZE) + this.#c.large + 2 * run + 1 > this.#memory.capacity) {
      return false;
    }
    this.#f[F_MEM_LIMIT] = bytes;
    return true;
  }

  /** The shared state, to pass (postMessage) to Stores in other threads. */
  memory(): StoreMemory {
    return { ...this.#memory };
  }

  /** Byte offset of the int32 scalars (slabs.ts I_*) in `memory().control` (warm restart). */
  get scalarsOffset(): number {
    return this.#f.byteLength;
  }

  /** Chunk sizes of the slab classes by id (index 0 unused; last = large items). */
  get classSizes(): readonly number[] {
    return Array.from(this.#c.sizes);
  }

  /** Live item for key bytes `src[keyStart, keyEnd)` or -1; expired/flushed items are freed. */
  find(src: Uint8Array, keyStart: number, keyEnd: number): number {
    const arena = this.#arena;
    arena.sync();
    const h = this.#table.find(src, keyStart, keyEnd);
    if (h === -1) return -1;
    const i32 = arena.i32;
    const w = arena.word(h);
    const now = this.#clock.now();
    const exp = i32[w + W_EXPTIME];
    if (exp !== 0 && exp <= now) {
      this.#f[F_GET_EXPIRED]++;
      this.onExpire?.(h);
      this.unlink(h);
      return -1;
    }
    const ol = this.#ctl[I_OLDEST_LIVE];
    if (ol !== 0 && now >= ol && flushedBefore(this.#ctl, i32, w, ol)) {
      this.#f[F_GET_FLUSHED]++;
      this.unlink(h);
      return -1;
    }
    return h;
  }

  /**
   * A change that is not a read (an incr in place, an `add` that found the
   * key) makes the item recent without marking it fetched, as memcached's
   * do_item_update: `me` keeps saying fetch=no.
   */
  update(h: number): void {
    const arena = this.#arena;
    arena.sync();
    const i32 = arena.i32;
    const w = arena.word(h);
    i32[w + W_TIME] = this.#clock.now() | (i32[w + W_TIME] & T_ACTIVE);
  }

  /**
   * Records an access as memcached's do_item_bump: the first one only marks
   * the item fetched (its last-access time stays), later ones make it active
   * and recent. The item stays where it is in the LRU: a hit writes only its
   * own header, and an eviction moves an active item to the head instead of
   * taking it (#evictTail).
   */
  bump(h: number): void {
    const arena = this.#arena;
    arena.sync();
    const i32 = arena.i32;
    const w = arena.word(h);
    const meta = i32[w + W_META];
    if ((meta & M_FETCHED) === 0) i32[w + W_META] = meta | M_FETCHED;
    else i32[w + W_TIME] = this.#clock.now() | T_ACTIVE;
  }

  /**
   * Reserves an unlinked item holding the key, flags, exptime and a value
   * area of `valueLength` bytes followed by "\r\n". May evict linked items,
   * but never `keep`: the item the caller copies from (append, incr), as
   * memcached's reference count protects it.
   * Returns a handle, ALLOC_TOO_LARGE or ALLOC_NO_MEMORY.
   */
  alloc(
    src: Uint8Array,
    keyStart: number,
    keyEnd: number,
    flags: number,
    exptime: number,
    valueLength: number,
    keep = -1,
  ): number {
    const klen = keyEnd - keyStart;
    const total = HEADER_SIZE + klen + valueLength + (flags !== 0 ? 6 : 2);
    // memcached's rule for -I (its header is larger than memrep's, so this bounds `total` too).
    const checked = this.#sizeOverhead + klen + valueLength + (flags !== 0 ? 4 : 0);
    if (checked > this.#maxItemSize || klen > M_KEYLEN || valueLength < 0) return ALLOC_TOO_LARGE;
    const arena = this.#arena;
    arena.sync();
    let cls: number;
    let h: number;
    this.#alloc.keep = keep;
    if (total <= PAGE_SIZE / 2) {
      cls = this.#c.classOf(total);
      h = this.#alloc.chunk(cls);
    } else {
      cls = this.#c.large;
      h = this.#alloc.large(total);
    }
    this.#alloc.keep = -1;
    if (h < 0) return h;
    // Views may have been remapped by a page allocation.
    const i32 = arena.i32;
    const u8 = arena.u8;
    const w = arena.word(h);
    const o = w * 4;
    i32[w + W_HNEXT] = -1;
    i32[w + W_PREV] = -1;
    i32[w + W_NEXT] = -1;
    i32[w + W_EXPTIME] = exptime;
    i32[w + W_TIME] = this.#clock.now();
    i32[w + W_CASLO] = 0;
    i32[w + W_VLEN] = flags !== 0 ? valueLength | F_FLAGS : valueLength;
    i32[w + W_META] = (klen << KEY_SHIFT) | M_ALLOCATED;
    const k = o + HEADER_SIZE - keyStart;
    for (let i = keyStart; i < keyEnd; i++) u8[i + k] = src[i];
    const crlf = o + HEADER_SIZE + klen + valueLength;
    u8[crlf] = 13;
    u8[crlf + 1] = 10;
    if (flags !== 0) {
      u8[crlf + 2] = flags;
      u8[crlf + 3] = flags >>> 8;
      u8[crlf + 4] = flags >>> 16;
      u8[crlf + 5] = flags >>> 24;
    }
    this.#c.used[cls]++;
    return h;
  }

  /** Inserts `h`, replacing (and freeing) any item with the same key; returns its cas. */
  link(h: number, cas?: number): number {
    const arena = this.#arena;
    arena.sync();
    if (cas !== undefined) this.#explicitCas(cas);
    const table = this.#table;
    const replaced = table.insertReplacing(h);
    if (replaced !== -1) {
      this.#detach(replaced);
      this.free(replaced);
    }
    const c = cas === undefined ? this.nextCas() : cas;
    const i32 = arena.i32;
    const w = arena.word(h);
    i32[w + W_META] = (i32[w + W_META] & ~M_CASHI) | M_LINKED |
      (Math.floor(c / 4294967296) & M_CASHI);
    i32[w + W_CASLO] = c;
    i32[w + W_TIME] = this.#clock.now();
    const cls = arena.pageClass[h >>> INDEX_BITS];
    this.#c.lruPush(this.#arena, h, cls);
    const size = itemBytes(i32, w);
    this.#c.number[cls]++;
    this.#c.memRequested[cls] += size;
    const f = this.#f;
    const items = ++f[F_CURR_ITEMS];
    f[F_TOTAL_ITEMS]++;
    f[F_BYTES] += size;
    table.maintain(items);
    return c;
  }

  /** Removes linked item `h` from index and LRU and frees it. */
  unlink(h: number): void {
    this.#arena.sync();
    if (this.#table.remove(h)) this.#detach(h);
    this.free(h);
  }

  /** Frees item `h` (after unlink, or an alloc that was never linked). */
  free(h: number): void {
    const arena = this.#arena;
    arena.sync();
    const p = h >>> INDEX_BITS;
    const i32 = arena.i32;
    const w = arena.word(h);
    if ((i32[w + W_META] & M_ALLOCATED) === 0) return;
    if ((i32[w + W_META] & M_LINKED) !== 0) {
      // Freed while still linked: take it out of the index first.
      this.#table.remove(h);
      this.#detach(h);
    }
    const cls = arena.pageClass[p];
    i32[w + W_META] = 0;
    this.#c.used[cls]--;
    if (cls === this.#c.large) {
      const bytes = arena.chunkSize[p];
      this.#f[F_TOTAL_MALLOCED] -= bytes;
      this.#c.pages[cls]--;
      arena.releaseRun(p, bytes / PAGE_SIZE);
      return;
    }
    i32[w + W_HNEXT] = this.#c.freeHead[cls];
    this.#c.freeHead[cls] = h;
    this.#c.freeCount[cls]++;
  }

  /** Sets the CAS value. */
  setCas(h: number, cas: number): void {
    this.#explicitCas(cas);
    const i32 = this.#arena.i32;
    const w = this.#arena.word(h);
    i32[w + W_META] = (i32[w + W_META] & ~M_CASHI) | (Math.floor(cas / 4294967296) & M_CASHI);
    i32[w + W_CASLO] = cas;
  }

  /** A delayed flush_all's time (clock seconds; memcached's oldest_live), 0 when none is pending. */
  get oldestLive(): number {
    return this.#ctl[I_OLDEST_LIVE];
  }

  /** flush_all now or after `delaySeconds` (reclaim.ts, Reclaimer.flush). */
  flush(delaySeconds: number, thisSecond = false): void {
    this.#reclaim.flush(delaySeconds, thisSecond);
  }

  /** memcached's immediate flush_all: items die by CAS, freed later (Reclaimer.flushLazily). */
  flushLazily(): void {
    this.#reclaim.flushLazily();
  }

  /**
   * Keeps the highest CAS given explicitly (see I_EXPLICIT_CAS_HI); one
   * below a lazy flush's bound would make a new store look flushed, so that
   * flush's items are unlinked first and it is over.
   */
  #explicitCas(cas: number): void {
    const ctl = this.#ctl;
    if (ctl[I_LAZY_FLUSH] !== 0) {
      const bound = ctl[I_FLUSH_CAS_HI] * 4294967296 + (ctl[I_FLUSH_CAS_LO] >>> 0);
      if (cas < bound) {
        this.reclaimFlushed();
        ctl[I_LAZY_FLUSH] =
          ctl[I_FLUSH_CAS_HI] =
          ctl[I_FLUSH_CAS_LO] =
          ctl[I_OLDEST_LIVE] =
            0;
      }
    }
    const hi = Math.floor(cas / 4294967296);
    const top = ctl[I_EXPLICIT_CAS_HI];
    if (hi < top || (hi === top && (cas >>> 0) <= (ctl[I_EXPLICIT_CAS_LO] >>> 0))) return;
    ctl[I_EXPLICIT_CAS_HI] = hi;
    ctl[I_EXPLICIT_CAS_LO] = cas | 0;
  }

  /** Unlinks what a flush_all in effect left dead; how many (Reclaimer.reclaimFlushed). */
  reclaimFlushed(): number {
    return this.#reclaim.reclaimFlushed();
  }

  /** Frees every item now, the delayed-flush slot as it is (Reclaimer.unlinkAll). */
  unlinkAll(): void {
    this.#reclaim.unlinkAll();
  }

  /** A delayed flush_all by version, for replication (Reclaimer.flushBefore). */
  flushBefore(atClock: number, cas: number): void {
    this.#reclaim.flushBefore(atClock, cas);
  }

  /** `lru_crawler crawl` of the classes marked in `classes`; how many it reclaimed. */
  crawl(classes: Uint8Array): number {
    return this.#reclaim.crawl(classes);
  }

  /**
   * `stats reset`: the event counters memcached's stats_reset and
   * item_stats_reset zero (items stored, evictions, reclaims, expired and
   * flushed reads, per class too); what the cache holds stays counted.
   */
  resetStats(): void {
    resetEventCounters(this.#f);
    this.#c.resetCounters();
  }

  /** Totals of the crawler's counters over every class: [reclaimed, items checked]. */
  crawlerTotals(): [number, number] {
    return this.#c.crawlerTotals();
  }

  /** The largest slab class id (memcached's power_largest). */
  get largestClass(): number {
    return this.#c.large;
  }

  /** Pages class `cls` holds now. */
  classPages(cls: number): number {
    return cls >= 1 && cls <= this.#c.large ? this.#c.pages[cls] : 0;
  }

  /** `stats slabs` rows: one per class with pages, in class order. */
  slabStats(): ClassStats[] {
    return this.#c.slabRows(this.#arena);
  }

  /** `stats items` rows for classes holding items. */
  itemStats(): ClassStats[] {
    this.#arena.sync();
    return this.#c.itemRows(this.#arena, this.#clock.now());
  }

  /** Takes a linked item (already out of the index) off its LRU and the counters. */
  #detach(h: number): void {
    const arena = this.#arena;
    const i32 = arena.i32;
    const w = arena.word(h);
    const cls = arena.pageClass[h >>> INDEX_BITS];
    this.#c.lruRemove(this.#arena, h, cls);
    i32[w + W_META] &= ~M_LINKED;
    const size = itemBytes(i32, w);
    this.#c.number[cls]--;
    this.#c.memRequested[cls] -= size;
    this.#f[F_CURR_ITEMS]--;
    this.#f[F_BYTES] -= size;
  }
}
