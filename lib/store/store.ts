/**
 * The cache: slab-allocated items, a byte-keyed hash index, per-class LRU,
 * lazy expiry and flush, memcached 1.6 counters. Pure: no I/O, the clock is
 * passed in.
 * @module
 */

import { HashTable } from "./hash_table.ts";
import {
  align4,
  Arena,
  F_FLAGS,
  HEADER_SIZE,
  INDEX_BITS,
  INDEX_MASK,
  KEY_SHIFT,
  M_ALLOCATED,
  M_CASHI,
  M_FETCHED,
  M_KEYLEN,
  M_LINKED,
  M_USER,
  M_VLEN,
  PAGE_SIZE,
  slabClassSizes,
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

/** One `stats slabs` / `stats items` row. */
export interface ClassStats {
  /** Slab class id. */
  id: number;
  /** memcached field names and values, in memcached's order. */
  fields: Array<[string, number]>;
}

/** alloc result: item larger than maxItemSize. */
export const ALLOC_TOO_LARGE = -2;
/** alloc result: no memory (eviction disabled or nothing evictable). */
export const ALLOC_NO_MEMORY = -3;

/** Items checked at an LRU tail for expiry before evicting (memcached: 5). */
const TAIL_SEARCH = 5;

/** Header + key + value + "\r\n" (+ flags) of the item at word `w`. */
function itemBytes(i32: Int32Array, w: number): number {
  const v = i32[w + W_VLEN];
  return HEADER_SIZE + ((i32[w + W_META] >>> KEY_SHIFT) & M_KEYLEN) + (v & M_VLEN) +
    (v < 0 ? 6 : 2);
}

/** The item store. Handles are small non-negative integers, reused after free. */
export class Store {
  /** CAS generator, default a counter from 1; replication may replace it. */
  nextCas: () => number;
  /** Counters, updated in place. */
  readonly stats: StoreStats;

  #clock: Clock;
  #arena = new Arena();
  #table: HashTable;
  #memoryLimit: number;
  #maxItemSize: number;
  #evict: boolean;
  #oldestLive = 0;
  #casCounter = 0;

  /** Chunk size per class; the last id is the large-item class. */
  #sizes: Int32Array;
  #perPage: Int32Array;
  #largeClass: number;
  #classBySize: Uint8Array;
  #freeHead: Int32Array;
  #freeCount: Float64Array;
  #lruHead: Int32Array;
  #lruTail: Int32Array;
  #curPage: Int32Array;
  #pages: Float64Array;
  #used: Float64Array;
  #number: Float64Array;
  #memRequested: Float64Array;
  #evicted: Float64Array;
  #evictedNonzero: Float64Array;
  #evictedTime: Float64Array;
  #evictedUnfetched: Float64Array;
  #outOfMemory: Float64Array;
  #reclaimed: Float64Array;
  #expiredUnfetched: Float64Array;

  /** An empty store. */
  constructor(options: StoreOptions, clock: Clock) {
    this.#clock = clock;
    this.#memoryLimit = options.memoryLimit ?? 64 * 1048576;
    this.#maxItemSize = options.maxItemSize ?? 1048576;
    this.#evict = options.evict ?? true;
    const sizes = slabClassSizes(options.minChunk ?? 48, options.growthFactor ?? 1.25);
    this.#largeClass = sizes.length;
    const n = sizes.length + 1;
    this.#sizes = new Int32Array(n);
    this.#perPage = new Int32Array(n);
    for (let c = 1; c < sizes.length; c++) {
      this.#sizes[c] = sizes[c];
      this.#perPage[c] = Math.floor(PAGE_SIZE / sizes[c]);
    }
    this.#sizes[this.#largeClass] = Math.max(this.#maxItemSize, PAGE_SIZE / 2);
    this.#perPage[this.#largeClass] = 1;
    // Class for each 4-byte size step up to half a page.
    this.#classBySize = new Uint8Array(PAGE_SIZE / 2 / 4 + 1);
    let c = 1;
    for (let s = 0; s < this.#classBySize.length; s++) {
      while (sizes[c] < s * 4) c++;
      this.#classBySize[s] = c;
    }
    this.#freeHead = new Int32Array(n).fill(-1);
    this.#lruHead = new Int32Array(n).fill(-1);
    this.#lruTail = new Int32Array(n).fill(-1);
    this.#curPage = new Int32Array(n).fill(-1);
    this.#freeCount = new Float64Array(n);
    this.#pages = new Float64Array(n);
    this.#used = new Float64Array(n);
    this.#number = new Float64Array(n);
    this.#memRequested = new Float64Array(n);
    this.#evicted = new Float64Array(n);
    this.#evictedNonzero = new Float64Array(n);
    this.#evictedTime = new Float64Array(n);
    this.#evictedUnfetched = new Float64Array(n);
    this.#outOfMemory = new Float64Array(n);
    this.#reclaimed = new Float64Array(n);
    this.#expiredUnfetched = new Float64Array(n);
    this.#table = new HashTable(this.#arena);
    this.stats = {
      currItems: 0,
      totalItems: 0,
      bytes: 0,
      evictions: 0,
      reclaimed: 0,
      expiredUnfetched: 0,
      evictedUnfetched: 0,
      getExpired: 0,
      getFlushed: 0,
      totalMalloced: 0,
      limitMaxbytes: this.#memoryLimit,
      hashPowerLevel: this.#table.power,
      hashBytes: this.#table.bytes,
      hashIsExpanding: false,
    };
    this.nextCas = () => ++this.#casCounter;
  }

  /** Chunk sizes of the slab classes by id (index 0 unused; last = large items). */
  get classSizes(): readonly number[] {
    return Array.from(this.#sizes);
  }

  /** Live item for key bytes `src[keyStart, keyEnd)` or -1; expired/flushed items are freed. */
  find(src: Uint8Array, keyStart: number, keyEnd: number): number {
    const h = this.#table.find(src, keyStart, keyEnd);
    if (h === -1) return -1;
    const arena = this.#arena;
    const i32 = arena.i32[h >>> INDEX_BITS];
    const w = arena.offset(h) >> 2;
    const now = this.#clock.now();
    const exp = i32[w + W_EXPTIME];
    if (exp !== 0 && exp <= now) {
      this.stats.getExpired++;
      this.unlink(h);
      return -1;
    }
    const ol = this.#oldestLive;
    if (ol !== 0 && now >= ol && i32[w + W_TIME] <= ol) {
      this.stats.getFlushed++;
      this.unlink(h);
      return -1;
    }
    return h;
  }

  /** Records an access: LRU head, fetched bit, lastAccess = now. */
  bump(h: number): void {
    const i32 = this.#arena.i32[h >>> INDEX_BITS];
    const w = this.#arena.offset(h) >> 2;
    i32[w + W_META] |= M_FETCHED;
    i32[w + W_TIME] = this.#clock.now();
    const cls = this.#arena.pageClass[h >>> INDEX_BITS];
    if (this.#lruHead[cls] !== h && (i32[w + W_META] & M_LINKED) !== 0) {
      this.#lruRemove(h, cls);
      this.#lruPush(h, cls);
    }
  }

  /**
   * Reserves an unlinked item holding the key, flags, exptime and a value
   * area of `valueLength` bytes followed by "\r\n". May evict linked items.
   * Returns a handle, ALLOC_TOO_LARGE or ALLOC_NO_MEMORY.
   */
  alloc(
    src: Uint8Array,
    keyStart: number,
    keyEnd: number,
    flags: number,
    exptime: number,
    valueLength: number,
  ): number {
    const klen = keyEnd - keyStart;
    const total = HEADER_SIZE + klen + valueLength + (flags !== 0 ? 6 : 2);
    if (total > this.#maxItemSize || klen > M_KEYLEN || valueLength < 0) return ALLOC_TOO_LARGE;
    let cls: number;
    let h: number;
    if (total <= PAGE_SIZE / 2) {
      cls = this.#classBySize[(total + 3) >>> 2];
      h = this.#allocChunk(cls);
    } else {
      cls = this.#largeClass;
      h = this.#allocLarge(align4(total));
    }
    if (h < 0) return h;
    const arena = this.#arena;
    const p = h >>> INDEX_BITS;
    const o = arena.offset(h);
    const i32 = arena.i32[p];
    const u8 = arena.u8[p];
    const w = o >> 2;
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
    this.#used[cls]++;
    return h;
  }

  /** Inserts `h`, replacing (and freeing) any item with the same key; returns its cas. */
  link(h: number, cas?: number): number {
    const arena = this.#arena;
    const p = h >>> INDEX_BITS;
    const o = arena.offset(h);
    const replaced = this.#table.insertReplacing(h);
    if (replaced !== -1) {
      this.#detach(replaced);
      this.free(replaced);
    }
    const c = cas === undefined ? this.nextCas() : cas;
    const i32 = arena.i32[p];
    const w = o >> 2;
    i32[w + W_META] = (i32[w + W_META] & ~M_CASHI) | M_LINKED |
      (Math.floor(c / 4294967296) & M_CASHI);
    i32[w + W_CASLO] = c;
    i32[w + W_TIME] = this.#clock.now();
    const cls = arena.pageClass[p];
    this.#lruPush(h, cls);
    const size = itemBytes(i32, w);
    this.#number[cls]++;
    this.#memRequested[cls] += size;
    const st = this.stats;
    st.currItems++;
    st.totalItems++;
    st.bytes += size;
    const table = this.#table;
    table.maintain(st.currItems);
    st.hashPowerLevel = table.power;
    st.hashIsExpanding = table.expanding;
    st.hashBytes = table.bytes;
    return c;
  }

  /** Removes linked item `h` from index and LRU and frees it. */
  unlink(h: number): void {
    if (this.#table.remove(h)) this.#detach(h);
    this.free(h);
  }

  /** Frees item `h` (after unlink, or an alloc that was never linked). */
  free(h: number): void {
    const arena = this.#arena;
    const p = h >>> INDEX_BITS;
    const i32 = arena.i32[p];
    const w = arena.offset(h) >> 2;
    if ((i32[w + W_META] & M_ALLOCATED) === 0) return;
    if ((i32[w + W_META] & M_LINKED) !== 0) {
      // Freed while still linked: take it out of the index first.
      this.#table.remove(h);
      this.#detach(h);
    }
    const cls = arena.pageClass[p];
    i32[w + W_META] = 0;
    this.#used[cls]--;
    if (cls === this.#largeClass) {
      this.stats.totalMalloced -= arena.chunkSize[p];
      this.#pages[cls]--;
      arena.releasePage(p);
      return;
    }
    i32[w + W_HNEXT] = this.#freeHead[cls];
    this.#freeHead[cls] = h;
    this.#freeCount[cls]++;
  }

  /** Backing bytes of `h` (its page). */
  buffer(h: number): Uint8Array {
    return this.#arena.u8[h >>> INDEX_BITS];
  }

  /** Offset of the key in buffer(h). */
  keyOffset(h: number): number {
    return this.#arena.offset(h) + HEADER_SIZE;
  }

  /** Key length in bytes. */
  keyLength(h: number): number {
    return (this.#word(h, W_META) >>> KEY_SHIFT) & M_KEYLEN;
  }

  /** Offset of the value in buffer(h); "\r\n" follows the value. */
  valueOffset(h: number): number {
    return this.#arena.offset(h) + HEADER_SIZE + ((this.#word(h, W_META) >>> KEY_SHIFT) & M_KEYLEN);
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
    const i32 = this.#arena.i32[h >>> INDEX_BITS];
    const w = (this.#arena.offset(h) >> 2) + W_VLEN;
    i32[w] = (i32[w] & ~M_USER) | ((bits & 7) << USER_SHIFT);
  }

  /** Client flags (uint32). */
  flags(h: number): number {
    const v = this.#word(h, W_VLEN);
    if (v >= 0) return 0;
    const u8 = this.#arena.u8[h >>> INDEX_BITS];
    const at = this.#arena.offset(h) + HEADER_SIZE +
      ((this.#word(h, W_META) >>> KEY_SHIFT) & M_KEYLEN) +
      (v & M_VLEN) + 2;
    return (u8[at] | (u8[at + 1] << 8) | (u8[at + 2] << 16) | (u8[at + 3] << 24)) >>> 0;
  }

  /** Absolute exptime in clock seconds, 0 = never. */
  exptime(h: number): number {
    return this.#word(h, W_EXPTIME);
  }

  /** Sets the absolute exptime. */
  setExptime(h: number, exptime: number): void {
    this.#arena.i32[h >>> INDEX_BITS][(this.#arena.offset(h) >> 2) + W_EXPTIME] = exptime;
  }

  /** CAS value (< 2**53, exact). */
  cas(h: number): number {
    const i32 = this.#arena.i32[h >>> INDEX_BITS];
    const w = this.#arena.offset(h) >> 2;
    return (i32[w + W_META] & M_CASHI) * 4294967296 + (i32[w + W_CASLO] >>> 0);
  }

  /** Sets the CAS value. */
  setCas(h: number, cas: number): void {
    const i32 = this.#arena.i32[h >>> INDEX_BITS];
    const w = this.#arena.offset(h) >> 2;
    i32[w + W_META] = (i32[w + W_META] & ~M_CASHI) | (Math.floor(cas / 4294967296) & M_CASHI);
    i32[w + W_CASLO] = cas;
  }

  /** Clock seconds of the last access or update. */
  lastAccess(h: number): number {
    return this.#word(h, W_TIME);
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
    return itemBytes(this.#arena.i32[h >>> INDEX_BITS], this.#arena.offset(h) >> 2);
  }

  /**
   * flush_all: delay 0 frees every item now; delay > 0 invalidates items
   * stored or updated before now + delay once that time comes (lazily).
   */
  flush(delaySeconds: number): void {
    if (delaySeconds > 0) {
      this.#oldestLive = this.#clock.now() + delaySeconds;
      return;
    }
    this.#oldestLive = 0;
    for (let cls = 1; cls <= this.#largeClass; cls++) {
      let h = this.#lruTail[cls];
      while (h !== -1) {
        const prev = this.#word(h, W_PREV);
        this.unlink(h);
        h = prev;
      }
    }
  }

  /**
   * Visits up to `max` live items from `cursor` (start 0) in page/chunk order;
   * returns the next cursor or -1 when done. Items do not move, so one present
   * for the whole scan is visited exactly once.
   */
  scan(cursor: number, max: number, fn: (h: number) => void): number {
    if (cursor < 0) return -1;
    const arena = this.#arena;
    let p = cursor >>> INDEX_BITS;
    let idx = cursor & INDEX_MASK;
    let seen = 0;
    const now = this.#clock.now();
    while (p < arena.top) {
      while (idx < arena.carved[p]) {
        const h = (p << INDEX_BITS) | idx;
        idx++;
        const i32 = arena.i32[p];
        const w = arena.offset(h) >> 2;
        if ((i32[w + W_META] & M_LINKED) === 0 || this.#dead(i32, w, now)) continue;
        if (seen >= max) return h;
        fn(h);
        seen++;
      }
      p++;
      idx = 0;
    }
    return -1;
  }

  /** `stats slabs` rows for classes with pages. */
  slabStats(): ClassStats[] {
    const rows: ClassStats[] = [];
    for (let cls = 1; cls <= this.#largeClass; cls++) {
      const pages = this.#pages[cls];
      if (pages === 0) continue;
      const perPage = this.#perPage[cls];
      const total = pages * perPage;
      const used = this.#used[cls];
      const cur = this.#curPage[cls];
      const end = cls === this.#largeClass || cur === -1 ? 0 : perPage - this.#arena.carved[cur];
      rows.push({
        id: cls,
        fields: [
          ["chunk_size", this.#sizes[cls]],
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

  /** `stats items` rows for classes holding items. */
  itemStats(): ClassStats[] {
    const rows: ClassStats[] = [];
    const now = this.#clock.now();
    for (let cls = 1; cls <= this.#largeClass; cls++) {
      const number = this.#number[cls];
      if (number === 0) continue;
      const tail = this.#lruTail[cls];
      const age = tail === -1 ? 0 : now - this.#word(tail, W_TIME);
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
          ["mem_requested", this.#memRequested[cls]],
          ["evicted", this.#evicted[cls]],
          ["evicted_nonzero", this.#evictedNonzero[cls]],
          ["evicted_time", this.#evictedTime[cls]],
          ["outofmemory", this.#outOfMemory[cls]],
          ["tailrepairs", 0],
          ["reclaimed", this.#reclaimed[cls]],
          ["expired_unfetched", this.#expiredUnfetched[cls]],
          ["evicted_unfetched", this.#evictedUnfetched[cls]],
          ["evicted_active", 0],
          ["crawler_reclaimed", 0],
          ["crawler_items_checked", 0],
          ["lrutail_reflocked", 0],
          ["moves_to_cold", 0],
          ["moves_to_warm", 0],
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

  #word(h: number, word: number): number {
    return this.#arena.i32[h >>> INDEX_BITS][(this.#arena.offset(h) >> 2) + word];
  }

  #dead(i32: Int32Array, w: number, now: number): boolean {
    const exp = i32[w + W_EXPTIME];
    if (exp !== 0 && exp <= now) return true;
    const ol = this.#oldestLive;
    return ol !== 0 && now >= ol && i32[w + W_TIME] <= ol;
  }

  /** Takes a linked item (already out of the index) off its LRU and the counters. */
  #detach(h: number): void {
    const arena = this.#arena;
    const p = h >>> INDEX_BITS;
    const i32 = arena.i32[p];
    const w = arena.offset(h) >> 2;
    const cls = arena.pageClass[p];
    this.#lruRemove(h, cls);
    i32[w + W_META] &= ~M_LINKED;
    const size = itemBytes(i32, w);
    this.#number[cls]--;
    this.#memRequested[cls] -= size;
    this.stats.currItems--;
    this.stats.bytes -= size;
  }

  #lruPush(h: number, cls: number): void {
    const arena = this.#arena;
    const i32 = arena.i32[h >>> INDEX_BITS];
    const w = arena.offset(h) >> 2;
    const head = this.#lruHead[cls];
    i32[w + W_PREV] = -1;
    i32[w + W_NEXT] = head;
    if (head !== -1) arena.i32[head >>> INDEX_BITS][(arena.offset(head) >> 2) + W_PREV] = h;
    else this.#lruTail[cls] = h;
    this.#lruHead[cls] = h;
  }

  #lruRemove(h: number, cls: number): void {
    const arena = this.#arena;
    const i32 = arena.i32[h >>> INDEX_BITS];
    const w = arena.offset(h) >> 2;
    const prev = i32[w + W_PREV];
    const next = i32[w + W_NEXT];
    if (prev !== -1) arena.i32[prev >>> INDEX_BITS][(arena.offset(prev) >> 2) + W_NEXT] = next;
    else this.#lruHead[cls] = next;
    if (next !== -1) arena.i32[next >>> INDEX_BITS][(arena.offset(next) >> 2) + W_PREV] = prev;
    else this.#lruTail[cls] = prev;
    i32[w + W_PREV] = -1;
    i32[w + W_NEXT] = -1;
  }

  /** Frees the first expired/flushed item among the last TAIL_SEARCH of the LRU; true if one was. */
  #reclaimTail(cls: number): boolean {
    const now = this.#clock.now();
    let h = this.#lruTail[cls];
    for (let i = 0; i < TAIL_SEARCH && h !== -1; i++) {
      const i32 = this.#arena.i32[h >>> INDEX_BITS];
      const w = this.#arena.offset(h) >> 2;
      if (this.#dead(i32, w, now)) {
        this.#reclaimed[cls]++;
        this.stats.reclaimed++;
        if ((i32[w + W_META] & M_FETCHED) === 0) {
          this.#expiredUnfetched[cls]++;
          this.stats.expiredUnfetched++;
        }
        this.unlink(h);
        return true;
      }
      h = i32[w + W_PREV];
    }
    return false;
  }

  /** Evicts the LRU tail of `cls`; false if the class has nothing linked. */
  #evictTail(cls: number): boolean {
    const h = this.#lruTail[cls];
    if (h === -1) return false;
    const i32 = this.#arena.i32[h >>> INDEX_BITS];
    const w = this.#arena.offset(h) >> 2;
    this.#evicted[cls]++;
    this.stats.evictions++;
    if (i32[w + W_EXPTIME] !== 0) this.#evictedNonzero[cls]++;
    this.#evictedTime[cls] = this.#clock.now() - i32[w + W_TIME];
    if ((i32[w + W_META] & M_FETCHED) === 0) {
      this.#evictedUnfetched[cls]++;
      this.stats.evictedUnfetched++;
    }
    this.unlink(h);
    return true;
  }

  #popFree(cls: number): number {
    const h = this.#freeHead[cls];
    if (h !== -1) {
      this.#freeHead[cls] = this.#word(h, W_HNEXT);
      this.#freeCount[cls]--;
    }
    return h;
  }

  #allocChunk(cls: number): number {
    let h = this.#popFree(cls);
    if (h !== -1) return h;
    const arena = this.#arena;
    let p = this.#curPage[cls];
    if (p !== -1 && arena.carved[p] < this.#perPage[cls]) {
      return (p << INDEX_BITS) | arena.carved[p]++;
    }
    if (this.#reclaimTail(cls)) return this.#popFree(cls);
    if (this.stats.totalMalloced + PAGE_SIZE <= this.#memoryLimit || this.#pages[cls] === 0) {
      p = arena.allocPage(PAGE_SIZE, cls, this.#sizes[cls]);
      if (p !== -1) {
        this.#curPage[cls] = p;
        this.#pages[cls]++;
        this.stats.totalMalloced += PAGE_SIZE;
        arena.carved[p] = 1;
        return p << INDEX_BITS;
      }
    }
    if (this.#evict && this.#evictTail(cls)) {
      h = this.#popFree(cls);
      if (h !== -1) return h;
    }
    this.#outOfMemory[cls]++;
    return ALLOC_NO_MEMORY;
  }

  #allocLarge(size: number): number {
    const cls = this.#largeClass;
    const st = this.stats;
    // Make room among large items; with none linked, one may exceed the limit (like a first page).
    while (st.totalMalloced + size > this.#memoryLimit && this.#number[cls] > 0) {
      if (this.#reclaimTail(cls)) continue;
      if (!this.#evict || !this.#evictTail(cls)) {
        this.#outOfMemory[cls]++;
        return ALLOC_NO_MEMORY;
      }
    }
    const p = this.#arena.allocPage(size, cls, size);
    if (p === -1) {
      this.#outOfMemory[cls]++;
      return ALLOC_NO_MEMORY;
    }
    this.#arena.carved[p] = 1;
    this.#pages[cls]++;
    st.totalMalloced += size;
    return p << INDEX_BITS;
  }
}
