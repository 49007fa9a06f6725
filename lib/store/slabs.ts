/**
 * Item memory: 1 MiB pages carved into fixed-size chunks per slab class
 * (memcached's slabs), plus dedicated buffers for items above half a page.
 *
 * An item handle is `pageId << INDEX_BITS | chunkIndex`; it stays below 2**30
 * so it is always a small integer (Smi) for V8.
 *
 * Item header, 32 bytes in 32-bit words from the chunk start (chunks are
 * 4-aligned): 0 hnext (hash chain or free list), 1 lru prev, 2 lru next,
 * 3 exptime, 4 last access time, 5 value length | user bits << 28 | F_FLAGS, 6 cas low 32 bits,
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
/** Header word: clock seconds of last access or update. */
export const W_TIME = 4;
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

const EMPTY_U8 = new Uint8Array(0);
const EMPTY_I32 = new Int32Array(0);

/**
 * The page table: per page id the byte and int32 views, its class, chunk
 * size and how many chunks have been carved. Shared by the store and the index.
 */
export class Arena {
  /** Byte view per page id. */
  readonly u8: Uint8Array[] = [];
  /** Int32 view per page id (item headers). */
  readonly i32: Int32Array[] = [];
  /** Chunk size per page id (a dedicated buffer: its whole size). */
  readonly chunkSize: Int32Array = new Int32Array(MAX_PAGES);
  /** Slab class per page id, 0 = unused id. */
  readonly pageClass: Int32Array = new Int32Array(MAX_PAGES);
  /** Chunks carved so far per page id (scan stops there). */
  readonly carved: Int32Array = new Int32Array(MAX_PAGES);
  /** One past the highest page id ever used. */
  top = 0;
  #freeIds: number[] = [];

  /** Byte offset of handle `h` in its page. */
  offset(h: number): number {
    return (h & INDEX_MASK) * this.chunkSize[h >>> INDEX_BITS];
  }

  /** Allocates a zeroed page of `bytes` for class `cls`; returns its id or -1 when ids run out. */
  allocPage(bytes: number, cls: number, chunkSize: number): number {
    let id: number;
    if (this.#freeIds.length > 0) id = this.#freeIds.pop()!;
    else if (this.top < MAX_PAGES) {
      id = this.top++;
      this.u8.push(EMPTY_U8);
      this.i32.push(EMPTY_I32);
    } else return -1;
    const buf = new ArrayBuffer(bytes);
    this.u8[id] = new Uint8Array(buf);
    this.i32[id] = new Int32Array(buf);
    this.chunkSize[id] = chunkSize;
    this.pageClass[id] = cls;
    this.carved[id] = 0;
    return id;
  }

  /** Drops page `id` (dedicated buffers only) so its memory can be collected. */
  releasePage(id: number): void {
    this.u8[id] = EMPTY_U8;
    this.i32[id] = EMPTY_I32;
    this.pageClass[id] = 0;
    this.carved[id] = 0;
    this.chunkSize[id] = 0;
    this.#freeIds.push(id);
  }
}
