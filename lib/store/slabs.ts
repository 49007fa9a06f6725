/**
 * Item memory: 1 MiB pages carved into fixed-size chunks per slab class
 * (memcached's slabs); items above half a page take a run of whole pages.
 * All pages live in one growable SharedArrayBuffer, page id p at byte
 * p * PAGE_SIZE, so every thread attached to it sees the same items.
 *
 * An item handle is `pageId << INDEX_BITS | chunkIndex`; it stays below 2**30
 * so it is always a small integer (Smi) for V8.
 *
 * Item header, 32 bytes in 32-bit words from the chunk start (chunks are
 * 4-aligned): 0 hnext (hash chain or free list), 1 lru prev, 2 lru next,
 * 3 exptime, 4 last access time | active bit 31, 5 value length | user bits << 28 | F_FLAGS, 6 cas low 32 bits,
 * 7 cas high 21 bits | key length << 21 | state bits 29-31. Then key bytes,
 * value bytes, "\r\n", and the client flags (4 bytes, little endian) only when
 * non-zero (as memcached 1.6 does). 32 rather than 40 bytes puts a 14+100
 * byte item in a 160-byte chunk instead of 184.
 * @module
 */

/** Bytes per slab page (memcached -o slab_page_size default). */
export const PAGE_SIZE = 1 << 20;
/** Bytes of the item header before the key. */
export const HEADER_SIZE = 32;
/** Header word: next item in the hash chain / free list. */
export const W_HNEXT = 0;
/** Header word: previous (newer) item in the class LRU. */
export const W_PREV = 1;
/** Header word: next (older) item in the class LRU. */
export const W_NEXT = 2;
/** Header word: absolute exptime, 0 = never. */
export const W_EXPTIME = 3;
/** Header word: clock seconds of last access or update | T_ACTIVE. */
export const W_TIME = 4;
/**
 * Bit in W_TIME: hit again after its first fetch (memcached's ITEM_ACTIVE).
 * The eviction walk gives such an item a second chance instead of a get
 * relinking it; the clock (seconds since start) never reaches bit 31.
 */
export const T_ACTIVE = 1 << 31;
/** Mask of the clock seconds in W_TIME. */
export const M_TIME = 0x7fffffff;
/** Header word: value length in bytes (without "\r\n") | F_FLAGS. */
export const W_VLEN = 5;
/** Mask of the value length in W_VLEN (values stay below 256 MiB). */
export const M_VLEN = 0x0fffffff;
/** Bits of W_VLEN left to the server (meta protocol item state). */
export const M_USER = 0x70000000;
/** Shift of the user bits in W_VLEN. */
export const USER_SHIFT = 28;
/** Bit in W_VLEN: non-zero client flags follow the value's "\r\n". */
export const F_FLAGS = 1 << 31;
/** Header word: low 32 bits of the cas. */
export const W_CASLO = 6;
/** Header word: cas high bits, key length and the M_* state bits. */
export const W_META = 7;
/** Mask of the cas high 21 bits in W_META (cas < 2**53). */
export const M_CASHI = 0x1fffff;
/** Largest CAS an item holds: 53 bits (W_CASLO and M_CASHI), exact as a number. */
export const MAX_CAS = 2 ** 53 - 1;
/** Shift of the key length in W_META. */
export const KEY_SHIFT = 21;
/** Mask of the key length after shifting W_META right by KEY_SHIFT. */
export const M_KEYLEN = 0xff;
/** State bit: fetched since stored. */
export const M_FETCHED = 1 << 29;
/** State bit: linked into the index and LRU. */
export const M_LINKED = 1 << 30;
/** State bit: chunk handed out by alloc (linked or not). */
export const M_ALLOCATED = 1 << 31;
/** Bits of the chunk index in a handle. */
export const INDEX_BITS = 15;
/** Mask of the chunk index in a handle. */
export const INDEX_MASK = (1 << INDEX_BITS) - 1;
/** Page ids available (handles stay below 2**30). */
export const MAX_PAGES = 1 << 15;
/** memcached's MAX_NUMBER_OF_SLAB_CLASSES - 1. */
const MAX_CLASSES = 63;

/**
 * Chunk sizes per class id (index 0 unused): from HEADER_SIZE + minChunk,
 * times `factor` (4-aligned, at least +4), the last class exactly half a page.
 */
export function slabClassSizes(minChunk: number, factor: number): number[] {
  const half = PAGE_SIZE / 2;
  const sizes = [0];
  let size = align4(HEADER_SIZE + Math.max(8, minChunk));
  while (sizes.length < MAX_CLASSES && size <= half / factor && size < half) {
    sizes.push(size);
    size = Math.max(align4(Math.ceil(size * factor)), size + 4);
  }
  sizes.push(half);
  return sizes;
}

/** Rounds up to a multiple of 4 (the chunk alignment). */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Int32 words per page. */
export const PAGE_WORDS = PAGE_SIZE / 4;

/** Shared int32 scalar: oldest_live of a delayed flush (0 = none). */
export const I_OLDEST_LIVE = 0;
/**
 * Shared int32 scalars: high and low words of a delayed flush's CAS bound
 * (replication: items with a smaller CAS die at oldest_live); both 0:
 * memcached's rule, items stored up to that second die.
 */
export const I_FLUSH_CAS_HI = 7;
export const I_FLUSH_CAS_LO = 8;
/**
 * Shared int32 scalars: high and low words of the highest CAS given
 * explicitly (meta `E`, replication) since the counter's, so that an
 * immediate flush's CAS bound is above every item's.
 */
export const I_EXPLICIT_CAS_HI = 9;
export const I_EXPLICIT_CAS_LO = 10;
/** Shared int32 scalar: 1 while an immediate flush_all's items die lazily, by CAS (Store.flushLazily). */
export const I_LAZY_FLUSH = 11;
/** Shared int32 scalar: one past the highest page id in use. */
export const I_TOP = 1;
/** Shared int32 scalar: unused page ids below I_TOP. */
export const I_FREE_IDS = 2;
/** Shared int32 scalar: pages the pages buffer has grown to. */
export const I_COMMITTED = 3;
/** Shared int32 scalar: log2 of the hash bucket count. */
export const I_HASH_POWER = 4;
/** Shared int32 scalar: 1 while buckets are being split. */
export const I_HASH_EXPANDING = 5;
/** Shared int32 scalar: next bucket of the lower half to split. */
export const I_HASH_EXPAND_BUCKET = 6;
/** Int32 scalar slots reserved at the start of the int32 control area. */
export const I_SCALARS = 16;

/**
 * The page table over the shared pages buffer: per page id its class, chunk
 * size (for the first page of a large run: the run's bytes) and chunks
 * carved. Views are fixed-length (length-tracking views over a growable
 * SharedArrayBuffer are ~20x slower in V8) and remapped by `sync()` when
 * another thread has grown the buffer.
 */
export class Arena {
  /** Bytes of all pages mapped by this thread. */
  u8: Uint8Array;
  /** Int32 words of all pages mapped by this thread (item headers). */
  i32: Int32Array;
  /** Chunk size per page id (first page of a large run: the run's bytes). */
  readonly chunkSize: Int32Array;
  /** Slab class per page id, 0 = unused id. */
  readonly pageClass: Int32Array;
  /** Chunks carved so far per page id (scan stops there). */
  readonly carved: Int32Array;
  /** Page ids the pages buffer can hold. */
  readonly capacity: number;
  #pages: SharedArrayBuffer;
  #ctl: Int32Array;
  #mapped = -1;

  /** Views over shared state; `ctl` holds the I_* scalars. */
  constructor(
    pages: SharedArrayBuffer,
    ctl: Int32Array,
    chunkSize: Int32Array,
    pageClass: Int32Array,
    carved: Int32Array,
  ) {
    this.#pages = pages;
    this.#ctl = ctl;
    this.chunkSize = chunkSize;
    this.pageClass = pageClass;
    this.carved = carved;
    this.capacity = chunkSize.length;
    this.u8 = new Uint8Array(0);
    this.i32 = new Int32Array(0);
    this.sync();
  }

  /** One past the highest page id in use. */
  get top(): number {
    return this.#ctl[I_TOP];
  }

  /** Remaps the views if any thread grew the pages buffer. */
  sync(): void {
    if (this.#ctl[I_COMMITTED] !== this.#mapped) this.#remap();
  }

  /** Int32 index of the header of handle `h` in `i32` (byte offset / 4). */
  word(h: number): number {
    const p = h >>> INDEX_BITS;
    return p * PAGE_WORDS + (((h & INDEX_MASK) * this.chunkSize[p]) >> 2);
  }

  /**
   * Takes `count` contiguous unused page ids for class `cls`, the first with
   * chunk size `chunkSize`; returns the first id or -1 when ids run out.
   * Reused pages are not zeroed: nothing reads a chunk before alloc writes it.
   */
  allocRun(count: number, cls: number, chunkSize: number): number {
    const ctl = this.#ctl;
    const pc = this.pageClass;
    const top = ctl[I_TOP];
    let id = -1;
    if (ctl[I_FREE_IDS] >= count) {
      // Holes only come from released large runs: rare, and few pages to look at.
      let run = 0;
      for (let p = 0; p < top; p++) {
        if (pc[p] !== 0) run = 0;
        else if (++run === count) {
          id = p - count + 1;
          break;
        }
      }
    }
    if (id !== -1) ctl[I_FREE_IDS] -= count;
    else {
      if (top + count > this.capacity) return -1;
      id = top;
      ctl[I_TOP] = top + count;
      this.#commit(top + count);
    }
    for (let p = id; p < id + count; p++) {
      pc[p] = cls;
      this.chunkSize[p] = 0;
      this.carved[p] = 0;
    }
    this.chunkSize[id] = chunkSize;
    return id;
  }

  /** Returns the `count` page ids from `id` to the unused pool. */
  releaseRun(id: number, count: number): void {
    const ctl = this.#ctl;
    for (let p = id; p < id + count; p++) {
      this.pageClass[p] = 0;
      this.carved[p] = 0;
      this.chunkSize[p] = 0;
    }
    let top = ctl[I_TOP];
    let free = ctl[I_FREE_IDS] + count;
    while (top > 0 && this.pageClass[top - 1] === 0) {
      top--;
      free--;
    }
    ctl[I_TOP] = top;
    ctl[I_FREE_IDS] = free;
  }

  /** Grows the shared pages buffer to at least `pages` pages (geometrically). */
  #commit(pages: number): void {
    const ctl = this.#ctl;
    const have = ctl[I_COMMITTED];
    if (pages <= have) return;
    const want = Math.min(this.capacity, Math.max(pages, have + Math.max(4, have >> 3)));
    // Untouched pages of a grown buffer cost address space, not RSS.
    if (this.#pages.byteLength < want * PAGE_SIZE) this.#pages.grow(want * PAGE_SIZE);
    ctl[I_COMMITTED] = want;
    this.#remap();
  }

  #remap(): void {
    const n = this.#ctl[I_COMMITTED];
    this.u8 = new Uint8Array(this.#pages, 0, n * PAGE_SIZE);
    this.i32 = new Int32Array(this.#pages, 0, n * PAGE_WORDS);
    this.#mapped = n;
  }
}
