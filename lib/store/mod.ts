/**
 * The cache state for `serve`: slab-allocated items, byte-keyed hash index,
 * per-class LRU, lazy expiry and flush. No I/O; the clock is passed in.
 *
 * ```ts
 * const store = new Store({ memoryLimit: 64 << 20, maxItemSize: 1 << 20, evict: true }, clock);
 * const h = store.alloc(req, keyStart, keyEnd, flags, toAbsoluteExptime(exp, now, start), len);
 * store.buffer(h).set(value, store.valueOffset(h));
 * store.link(h);
 * ```
 *
 * All state is in SharedArrayBuffers: `new Store(options, clock, store.memory())`
 * in a Worker operates on the same items. Every call (accessors included) must
 * run under one `SharedLock`; handles are valid only while it is held.
 * @module
 */

export { ALLOC_TOO_LARGE, type Clock, Store } from "./store.ts";
export { ALLOC_NO_MEMORY } from "./alloc.ts";
export type { ClassStats } from "./classes.ts";
export type { StoreMemory, StoreOptions, StoreStats } from "./memory.ts";
export { REALTIME_MAXDELTA, toAbsoluteExptime } from "./expiry.ts";
export { hashBytes } from "./hash.ts";
export { HEADER_SIZE, MAX_CAS, PAGE_SIZE } from "./slabs.ts";
export { SharedLock } from "./lock.ts";
export {
  abortRestore,
  checksum,
  commitRestore,
  LAYOUT_NAMES,
  restoreTargets,
  savedSizes,
  type StoreLayout,
  storeLayout,
  type StoreSections,
  storeSections,
} from "./image.ts";
