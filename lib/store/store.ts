/**
 * The cache: slab-allocated items, a byte-keyed hash index, per-class LRU,
 * lazy expiry and flush, memcached 1.6 counters. Pure: no I/O, the clock is
 * passed in. Every piece of mutable state lives in SharedArrayBuffers
 * (`memory()`), so Stores in several threads can share one cache; callers
 * serialize all calls with one lock (SharedLock). The per-class lists and
 * counters are in classes.ts, chunk allocation and eviction in alloc.ts.
 * @module
 */

import { Allocator } from "./alloc.ts";
import { type ClassStats, SlabClasses } from "./classes.ts";
import { flushedBefore, itemDead } from "./expiry.ts";
import { HashTable, INITIAL_POWER } from "./hash_table.ts";
import {
  createMemory,
  F_BYTES,
  F_CAS,
  F_CURR_ITEMS,
  F_EVICTED_UNFETCHED,
  F_EVICTIONS,
  F_EXPIRED_UNFETCHED,
  F_GET_EXPIRED,
  F_GET_FLUSHED,
  F_MEM_LIMIT,
  F_RECLAIMED,
  F_TOTAL_ITEMS,
  F_TOTAL_MALLOCED,
  SharedStats,
  type StoreMemory,
  type StoreOptions,
  type StoreStats,
} from "./memory.ts";
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
  INDEX_MASK,
  KEY_SHIFT,
  M_ALLOCATED,
  M_CASHI,
  M_FETCHED,
  M_KEYLEN,
  M_LINKED,
  M_TIME,
  M_USER,
  M_VLEN,
  PAGE_SIZE,
  slabClassSizes,
  T_ACTIVE,
  USER_SHIFT,
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
/** Header + key + value + "\r\n" (+ flags) of the item at word `w`. */
function itemBytes(i32: Int32Array, w: number): number {
  const v = i32[w + W_VLEN];
  return HEADER_SIZE + ((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN) + (v & M_VLEN) +
    (v < 0 ? 6 : 2);
}

/** The item store. Handles are small non-negative integers, reused after free. */
export class Store {
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
    this.#clock = clock;
    const fresh = memory === undefined;
    const sizes = slabClassSizes(
      memory?.minChunk ?? options.minChunk ?? 48,
      memory?.growthFactor ?? options.growthFactor ?? 1.25,
    );
    const mem = memory ?? createMemory(options, sizes.length - 1);
    this.#memory = mem;
    this.#maxItemSize = mem.maxItemSize;
    this.#sizeOverhead = MC_ITEM_OVERHEAD + 2 + (options.useCas === false ? 0 : 8);
    const classes = sizes.length;
    const f = new Float64Array(mem.control, 0, SlabClasses.f64Length(classes));
    this.#f = f;
    const cap = mem.capacity;
    const i32 = new Int32Array(mem.control, f.byteLength, SlabClasses.i32Length(classes) + 3 * cap);
    this.#ctl = i32.subarray(0, I_SCALARS);
    this.#c = new SlabClasses(sizes, this.#maxItemSize, f, i32, fresh);
    const pt = (i: number) => {
      const at = SlabClasses.i32Length(classes) + i * cap;
      return i32.subarray(at, at + cap);
    };
    if (fresh) {
      this.#ctl[I_HASH_POWER] = INITIAL_POWER;
      this.#ctl[I_COMMITTED] = 0;
      f[F_MEM_LIMIT] = mem.memoryLimit;
    }
    this.#arena = new Arena(mem.pages, this.#ctl, pt(0), pt(1), pt(2));
    this.#table = new HashTable(this.#arena, mem.buckets, this.#ctl, mem.maxHashPower);
    this.#alloc = new Allocator(
      this.#arena,
      this.#c,
      f,
      this.#ctl,
      mem.evict !== 0,
      clock,
      (h, why) => {
        if (why === "expired") this.onExpire?.(h);
        else if (why === "evicted") this.onEvict?.(h);
        this.unlink(h);
      },
    );
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
   * Records an access: lastAccess = now, the fetched bit on the first one and
   * the active bit on later ones (memcached's do_item_bump). The item stays
   * where it is in the LRU: a hit writes only its own header, and an eviction
   * moves an active item to the head instead of taking it (#evictTail).
   */
  bump(h: number): void {
    const arena = this.#arena;
    arena.sync();
    const i32 = arena.i32;
    const w = arena.word(h);
    const now = this.#clock.now();
    const meta = i32[w + W_META];
    if ((meta & M_FETCHED) === 0) {
      i32[w + W_META] = meta | M_FETCHED;
      i32[w + W_TIME] = now;
    } else {
      i32[w + W_TIME] = now | T_ACTIVE;
    }
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

  /** Sets the CAS value. */
  setCas(h: number, cas: number): void {
    this.#explicitCas(cas);
    const i32 = this.#arena.i32;
    const w = this.#arena.word(h);
    i32[w + W_META] = (i32[w + W_META] & ~M_CASHI) | (Math.floor(cas / 4294967296) & M_CASHI);
    i32[w + W_CASLO] = cas;
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

  /** A delayed flush_all's time (clock seconds; memcached's oldest_live), 0 when none is pending. */
  get oldestLive(): number {
    return this.#ctl[I_OLDEST_LIVE];
  }

  /**
   * flush_all: delay 0 frees every item now; delay > 0 invalidates items
   * stored or updated before now + delay once that time comes (lazily).
   * `thisSecond` (memcached -C, no CAS to order items within a second): an
   * immediate flush also invalidates what is stored later in the same second.
   * A delayed flush replacing one whose time has come first unlinks what that
   * one invalidated. memcached's rules for one node: replication keeps the
   * slot by version itself (unlinkAll, flushBefore).
   */
  flush(delaySeconds: number, thisSecond = false): void {
    const ol = this.#ctl[I_OLDEST_LIVE];
    // A delayed flush that has come leaves its items dead only while it is the pending one:
    // before another replaces it they go, as memcached's LRU maintainer and crawler take them.
    if (delaySeconds > 0 && ol !== 0 && this.#clock.now() >= ol) {
      this.#unlinkWhere((i32, w) => flushedBefore(this.#ctl, i32, w, ol));
    }
    this.#ctl[I_FLUSH_CAS_HI] = this.#ctl[I_FLUSH_CAS_LO] = this.#ctl[I_LAZY_FLUSH] = 0;
    if (delaySeconds > 0) {
      this.#ctl[I_OLDEST_LIVE] = this.#clock.now() + delaySeconds;
      return;
    }
    this.#ctl[I_OLDEST_LIVE] = 0;
    this.unlinkAll();
    if (thisSecond) this.#ctl[I_OLDEST_LIVE] = this.#clock.now();
  }

  /**
   * memcached's immediate flush_all (with CAS): every item stored so far is
   * dead from now on, by CAS (its `oldest_cas`), and stays in memory until
   * a read finds it (`get_flushed`), an allocation reclaims it at an LRU
   * tail or {@linkcode reclaimFlushed} sweeps it, each counted `reclaimed`
   * as memcached's LRU maintainer counts them. A delayed flush pending is
   * replaced, as memcached's flush replaces `oldest_live`.
   */
  flushLazily(): void {
    const ctl = this.#ctl;
    const explicit = ctl[I_EXPLICIT_CAS_HI] * 4294967296 + (ctl[I_EXPLICIT_CAS_LO] >>> 0);
    const bound = this.#f[F_CAS] + 1; // later stores get this CAS or more
    if (explicit >= bound) {
      // An item may carry a CAS above the bound (meta E): it would survive. Free them all now.
      this.flush(0);
      return;
    }
    ctl[I_FLUSH_CAS_HI] = Math.floor(bound / 4294967296);
    ctl[I_FLUSH_CAS_LO] = bound | 0;
    ctl[I_OLDEST_LIVE] = this.#clock.now();
    ctl[I_LAZY_FLUSH] = 1;
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

  /**
   * Unlinks the items a flush_all in effect left dead (memcached's LRU
   * maintainer and crawler do it soon after the flush), counted as
   * `reclaimed` (and `expired_unfetched` when never read). Returns how many.
   */
  reclaimFlushed(): number {
    const ol = this.#ctl[I_OLDEST_LIVE];
    if (ol === 0 || this.#clock.now() < ol) return 0;
    const c = this.#c, f = this.#f;
    let n = 0;
    this.#unlinkWhere((i32, w, cls) => {
      if (!flushedBefore(this.#ctl, i32, w, ol)) return false;
      c.reclaimed[cls]++;
      f[F_RECLAIMED]++;
      if ((i32[w + W_META] & M_FETCHED) === 0) {
        c.expiredUnfetched[cls]++;
        f[F_EXPIRED_UNFETCHED]++;
      }
      n++;
      return true;
    });
    return n;
  }

  /**
   * Frees every item now and leaves the delayed-flush slot as it is: an
   * immediate flush_all of a replicated node, whose slot holds the flushes
   * by version (see flushBefore) and is the merge's alone.
   */
  unlinkAll(): void {
    this.#unlinkWhere(() => true);
  }

  /**
   * A delayed flush_all decided by version (replication): once clock second
   * `atClock` comes, items with a CAS below `cas` die, whenever this node
   * stored them, so every node drops the same ones (by time, a node that
   * got a write late would keep what its writer dropped).
   */
  flushBefore(atClock: number, cas: number): void {
    this.#ctl[I_FLUSH_CAS_HI] = Math.floor(cas / 4294967296);
    this.#ctl[I_FLUSH_CAS_LO] = cas | 0;
    this.#ctl[I_OLDEST_LIVE] = atClock;
    this.#ctl[I_LAZY_FLUSH] = 0;
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
   * `lru_crawler crawl`: looks at every item of the classes marked in
   * `classes` (index = class id) and unlinks the expired and flushed ones,
   * counted per class as memcached's crawler counts them
   * (`crawler_items_checked`, `crawler_reclaimed`, `expired_unfetched` for
   * expired items never read). Returns how many it reclaimed.
   */
  crawl(classes: Uint8Array): number {
    const c = this.#c, f = this.#f, ctl = this.#ctl;
    const now = this.#clock.now();
    let n = 0;
    this.#unlinkWhere((i32, w, cls) => {
      c.crawlerChecked[cls]++;
      if (!itemDead(ctl, i32, w, now)) return false;
      c.crawlerReclaimed[cls]++;
      const exp = i32[w + W_EXPTIME];
      if (exp !== 0 && exp <= now && (i32[w + W_META] & M_FETCHED) === 0) {
        c.expiredUnfetched[cls]++;
        f[F_EXPIRED_UNFETCHED]++;
      }
      n++;
      return true;
    }, classes);
    return n;
  }

  /**
   * `stats reset`: the event counters memcached's stats_reset and
   * item_stats_reset zero (items stored, evictions, reclaims, expired and
   * flushed reads, per class too); what the cache holds stays counted.
   */
  resetStats(): void {
    const f = this.#f, c = this.#c;
    for (
      const slot of [
        F_TOTAL_ITEMS,
        F_EVICTIONS,
        F_RECLAIMED,
        F_EXPIRED_UNFETCHED,
        F_EVICTED_UNFETCHED,
        F_GET_EXPIRED,
        F_GET_FLUSHED,
      ]
    ) f[slot] = 0;
    for (
      const a of [
        c.evicted,
        c.evictedNonzero,
        c.evictedTime,
        c.evictedUnfetched,
        c.outOfMemory,
        c.reclaimed,
        c.expiredUnfetched,
        c.evictedActive,
        c.movesToWarm,
        c.crawlerReclaimed,
        c.crawlerChecked,
      ]
    ) a.fill(0);
  }

  /** Totals of the crawler's counters over every class: [reclaimed, items checked]. */
  crawlerTotals(): [number, number] {
    const c = this.#c;
    let reclaimed = 0, checked = 0;
    for (let cls = 1; cls <= c.large; cls++) {
      reclaimed += c.crawlerReclaimed[cls];
      checked += c.crawlerChecked[cls];
    }
    return [reclaimed, checked];
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

  #word(h: number, word: number): number {
    return this.#arena.i32[this.#arena.word(h) + word];
  }

  /**
   * Unlinks every linked item (of the classes marked in `classes`, default
   * all) for which `doomed` (item header at word `w`) says true.
   */
  #unlinkWhere(
    doomed: (i32: Int32Array, w: number, cls: number) => boolean,
    classes?: Uint8Array,
  ): void {
    const arena = this.#arena;
    arena.sync();
    for (let cls = 1; cls <= this.#c.large; cls++) {
      if (classes !== undefined && classes[cls] !== 1) continue;
      let h = this.#c.lruTail[cls];
      while (h !== -1) {
        const prev = this.#word(h, W_PREV);
        if (doomed(arena.i32, arena.word(h), cls)) this.unlink(h);
        h = prev;
      }
    }
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
