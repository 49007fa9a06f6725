/**
 * The shared memory of a Store: what is in each SharedArrayBuffer (the
 * control buffer's counter slots), how large they are made for the options,
 * and the counters' read-only view. store.ts operates on it; image.ts saves
 * and restores it.
 * @module
 */

import { HashTable, INITIAL_POWER } from "./hash_table.ts";
import { HEADER_SIZE, I_SCALARS, MAX_PAGES, PAGE_SIZE } from "./slabs.ts";

/** Store configuration (memcached -m, -I, -M, -f, -n). */
export interface StoreOptions {
  /** Bytes of pages allowed (memcached -m MB * 1048576). */
  memoryLimit: number;
  /** Largest item (header + key + value + 2) in bytes (-I). */
  maxItemSize: number;
  /** false = return ALLOC_NO_MEMORY instead of evicting (-M). */
  evict: boolean;
  /** Chunk size growth factor (-f), default 1.25. */
  growthFactor?: number;
  /** Minimum key+value space of the smallest class (-n), default 48. */
  minChunk?: number;
  /**
   * Items carry a CAS (false: memcached -C): memcached counts its 8 bytes
   * when it checks an item against -I.
   */
  useCas?: boolean;
}

/** Counters read by `stats`. */
export interface StoreStats {
  /** Linked items now. */
  currItems: number;
  /** Items linked since start. */
  totalItems: number;
  /** Sum of itemSize over linked items. */
  bytes: number;
  /** Live items evicted to make room. */
  evictions: number;
  /** Expired items whose memory was reused from the LRU tail. */
  reclaimed: number;
  /** Reclaimed items that were never fetched. */
  expiredUnfetched: number;
  /** Evicted items that were never fetched. */
  evictedUnfetched: number;
  /** Expired items found (and freed) by find. */
  getExpired: number;
  /** Flushed items found (and freed) by find. */
  getFlushed: number;
  /** Bytes of pages and large-item buffers allocated. */
  totalMalloced: number;
  /** The memory limit in bytes. */
  limitMaxbytes: number;
  /** log2 of the hash bucket count. */
  hashPowerLevel: number;
  /** Bytes of the hash bucket arrays. */
  hashBytes: number;
  /** True while the hash table is migrating to a larger size. */
  hashIsExpanding: boolean;
}

/**
 * All state of a Store, for `new Store(options, clock, memory)` in another
 * thread: SharedArrayBuffers and numbers only (structured-cloneable).
 */
export interface StoreMemory {
  /** Item pages: growable, page id p at byte p * PAGE_SIZE. */
  pages: SharedArrayBuffer;
  /** Hash buckets (handle + 1, 0 = empty): growable, doubled in place. */
  buckets: SharedArrayBuffer;
  /** Counters (float64) then scalars, per-class lists and the page table (int32). */
  control: SharedArrayBuffer;
  /** StoreOptions.memoryLimit. */
  memoryLimit: number;
  /** StoreOptions.maxItemSize. */
  maxItemSize: number;
  /** StoreOptions.evict as 1 or 0. */
  evict: number;
  /** StoreOptions.growthFactor. */
  growthFactor: number;
  /** StoreOptions.minChunk. */
  minChunk: number;
  /** Page ids the pages buffer can hold (its maxByteLength / PAGE_SIZE). */
  capacity: number;
  /** log2 of the most hash buckets. */
  maxHashPower: number;
}

// Float64 control slots: store-wide counters, then per-class arrays.
/** Linked items now. */
export const F_CURR_ITEMS = 0;
/** Items stored since start. */
export const F_TOTAL_ITEMS = 1;
/** Bytes of the linked items. */
export const F_BYTES = 2;
/** Items evicted. */
export const F_EVICTIONS = 3;
/** Expired items whose memory was reused. */
export const F_RECLAIMED = 4;
/** Expired items never fetched. */
export const F_EXPIRED_UNFETCHED = 5;
/** Evicted items never fetched. */
export const F_EVICTED_UNFETCHED = 6;
/** Gets that found an expired item. */
export const F_GET_EXPIRED = 7;
/** Gets that found a flushed item. */
export const F_GET_FLUSHED = 8;
/** Bytes of pages taken. */
export const F_TOTAL_MALLOCED = 9;
/** The last CAS handed out (the shared CAS counter). */
export const F_CAS = 10;
/** The memory limit in bytes: shared, `cache_memlimit` changes it at run time. */
export const F_MEM_LIMIT = 11;
/** Float64 slots before the per-class arrays. */
export const F_SCALARS = 16;
/** Per-class float64 arrays (free count, pages, used, number, mem requested, 11 event counters). */
export const F_CLASS_ARRAYS = 16;
/** Per-class int32 arrays (free head, LRU head, LRU tail, current page). */
export const I_CLASS_ARRAYS = 4;

/**
 * `stats reset`'s part of the store-wide counters: the events (items
 * stored, evictions, reclaims, expired and flushed reads), not what the
 * cache holds.
 */
export function resetEventCounters(f: Float64Array): void {
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
}

/** Stats view over the shared counters: no allocation per read. */
export class SharedStats implements StoreStats {
  #f: Float64Array;
  #table: HashTable;
  /** A view of the counters `f` and the hash table's figures. */
  constructor(f: Float64Array, table: HashTable) {
    this.#f = f;
    this.#table = table;
  }
  get currItems(): number {
    return this.#f[F_CURR_ITEMS];
  }
  get totalItems(): number {
    return this.#f[F_TOTAL_ITEMS];
  }
  get bytes(): number {
    return this.#f[F_BYTES];
  }
  get evictions(): number {
    return this.#f[F_EVICTIONS];
  }
  get reclaimed(): number {
    return this.#f[F_RECLAIMED];
  }
  get expiredUnfetched(): number {
    return this.#f[F_EXPIRED_UNFETCHED];
  }
  get evictedUnfetched(): number {
    return this.#f[F_EVICTED_UNFETCHED];
  }
  get getExpired(): number {
    return this.#f[F_GET_EXPIRED];
  }
  get getFlushed(): number {
    return this.#f[F_GET_FLUSHED];
  }
  get totalMalloced(): number {
    return this.#f[F_TOTAL_MALLOCED];
  }
  get limitMaxbytes(): number {
    return this.#f[F_MEM_LIMIT];
  }
  get hashPowerLevel(): number {
    return this.#table.power;
  }
  get hashBytes(): number {
    return this.#table.bytes;
  }
  get hashIsExpanding(): boolean {
    return this.#table.expanding;
  }
}

/** Bytes of pages every store reserves address space for, so its limit can be raised. */
const RAISE_ROOM = 1 << 30;

/**
 * New shared state for `options`. Page ids cover the limit plus one page per
 * slab class (each may take a first page over the limit) plus two runs of the
 * largest item (one may exceed the limit, one of slack against fragmentation).
 */
export function createMemory(options: StoreOptions, classes: number): StoreMemory {
  const memoryLimit = options.memoryLimit ?? 64 * 1048576;
  const maxItemSize = options.maxItemSize ?? 1048576;
  const minChunk = options.minChunk ?? 48;
  const run = Math.ceil(Math.max(maxItemSize, PAGE_SIZE / 2) / PAGE_SIZE);
  // Room for `cache_memlimit` to raise the limit to 1 GiB at least (address space only).
  const pages = Math.ceil(Math.max(memoryLimit, RAISE_ROOM) / PAGE_SIZE);
  const capacity = Math.min(MAX_PAGES, pages + classes + 2 * run + 2);
  // Enough buckets for load 1.5 with every page full of the smallest items.
  const maxItems = capacity * (PAGE_SIZE / (HEADER_SIZE + Math.max(8, minChunk)));
  const maxHashPower = Math.max(INITIAL_POWER, Math.min(30, Math.ceil(Math.log2(maxItems / 1.5))));
  const n = classes + 2;
  const f64Bytes = (F_SCALARS + F_CLASS_ARRAYS * n) * 8;
  const i32Bytes = (I_SCALARS + I_CLASS_ARRAYS * n + 3 * capacity) * 4;
  return {
    pages: new SharedArrayBuffer(0, { maxByteLength: capacity * PAGE_SIZE }),
    buckets: new SharedArrayBuffer(4 << INITIAL_POWER, {
      maxByteLength: HashTable.maxBytes(maxHashPower),
    }),
    control: new SharedArrayBuffer(f64Bytes + i32Bytes),
    memoryLimit,
    maxItemSize,
    evict: (options.evict ?? true) ? 1 : 0,
    growthFactor: options.growthFactor ?? 1.25,
    minChunk,
    capacity,
    maxHashPower,
  };
}
