/**
 * Warm restart: the store's shared buffers as byte sections (control, hash
 * buckets, item pages) to save as they are, and their checked restore into
 * a new, empty Store with the same settings. Nothing in the buffers depends
 * on the process (handles are page ids, times are clock seconds of the
 * origin the caller saves next to the image), so the bytes need no
 * fix-up. No I/O: the caller reads and writes the sections.
 * @module
 */

import { INITIAL_POWER } from "./hash_table.ts";
import {
  I_COMMITTED,
  I_FREE_IDS,
  I_HASH_EXPANDING,
  I_HASH_POWER,
  I_SCALARS,
  I_TOP,
  PAGE_SIZE,
} from "./slabs.ts";
import type { Store } from "./store.ts";

/** Everything the layout of a store's buffers depends on; an image restores only onto equal values. */
export interface StoreLayout {
  /** -m in bytes. */
  memoryLimit: number;
  /** -I in bytes. */
  maxItemSize: number;
  /** -f. */
  growthFactor: number;
  /** -n. */
  minChunk: number;
  /** Page ids the pages buffer holds. */
  capacity: number;
  /** log2 of the most hash buckets. */
  maxHashPower: number;
  /** Bytes of the control buffer. */
  controlBytes: number;
}

/** The sections of a store image: views over the live shared buffers (no copy). */
export interface StoreSections {
  /** Counters, scalars, per-class lists and the page table. */
  control: Uint8Array;
  /** The hash buckets in use. */
  buckets: Uint8Array;
  /** The item pages in use (page ids below the top). */
  pages: Uint8Array;
}

/** The layout of `store`, in the order an image header records it. */
export function storeLayout(store: Store): StoreLayout {
  const m = store.memory();
  return {
    memoryLimit: m.memoryLimit,
    maxItemSize: m.maxItemSize,
    growthFactor: m.growthFactor,
    minChunk: m.minChunk,
    capacity: m.capacity,
    maxHashPower: m.maxHashPower,
    controlBytes: m.control.byteLength,
  };
}

/** memcached's names of the settings, for "restart incompatible due to setting for [name]". */
export const LAYOUT_NAMES: Record<keyof StoreLayout, string> = {
  memoryLimit: "maxbytes",
  maxItemSize: "item_size_max",
  growthFactor: "slab_config",
  minChunk: "chunk_size",
  capacity: "page_capacity",
  maxHashPower: "max_hashpower",
  controlBytes: "control_bytes",
};

/**
 * The sections to save. The store must be quiescent (no thread serving):
 * they are views of the live buffers.
 */
export function storeSections(store: Store): StoreSections {
  const m = store.memory();
  const ctl = scalars(store, new Uint8Array(m.control));
  return {
    control: new Uint8Array(m.control),
    buckets: new Uint8Array(m.buckets, 0, 4 * 2 ** ctl[I_HASH_POWER]),
    pages: new Uint8Array(m.pages, 0, ctl[I_TOP] * PAGE_SIZE),
  };
}

/**
 * Checks a saved control section against `store` (same layout assumed) and
 * returns the byte lengths the other two sections must have, or an error text.
 */
export function savedSizes(
  store: Store,
  control: Uint8Array,
): { buckets: number; pages: number } | string {
  const m = store.memory();
  if (control.byteLength !== m.control.byteLength) return "control section size differs";
  const ctl = scalars(store, control);
  const power = ctl[I_HASH_POWER];
  const top = ctl[I_TOP];
  const committed = ctl[I_COMMITTED];
  if (power < INITIAL_POWER || power > m.maxHashPower || ctl[I_HASH_EXPANDING] > 1) {
    return `hash power ${power} out of range`;
  }
  if (top < 0 || committed < top || committed > m.capacity || ctl[I_FREE_IDS] < 0) {
    return `page counts out of range (top ${top}, committed ${committed})`;
  }
  return { buckets: 4 * 2 ** power, pages: top * PAGE_SIZE };
}

/**
 * Grows the empty `store`'s buffers for the saved `control` (checked by
 * {@linkcode savedSizes}) and returns the views to read the bucket and page
 * sections into. The store stays empty until {@linkcode commitRestore}.
 */
export function restoreTargets(
  store: Store,
  control: Uint8Array,
): { buckets: Uint8Array; pages: Uint8Array } {
  const m = store.memory();
  const ctl = scalars(store, control);
  const bucketBytes = 4 * 2 ** ctl[I_HASH_POWER];
  const pageBytes = ctl[I_COMMITTED] * PAGE_SIZE;
  if (m.buckets.byteLength < bucketBytes) m.buckets.grow(bucketBytes);
  if (m.pages.byteLength < pageBytes) m.pages.grow(pageBytes);
  return {
    buckets: new Uint8Array(m.buckets, 0, bucketBytes),
    pages: new Uint8Array(m.pages, 0, ctl[I_TOP] * PAGE_SIZE),
  };
}

/** Makes the restored sections live: the saved control replaces the empty one. */
export function commitRestore(store: Store, control: Uint8Array): void {
  new Uint8Array(store.memory().control).set(control);
}

/**
 * Undoes {@linkcode restoreTargets} after a bad section: the buckets read
 * may name items the (still empty) control does not have.
 */
export function abortRestore(store: Store): void {
  new Uint8Array(store.memory().buckets).fill(0);
}

/**
 * A position-dependent checksum of `bytes` (length a multiple of 4): two
 * 32-bit running sums over the words (Fletcher), enough to catch a damaged
 * or truncated file, not an attacker.
 */
export function checksum(bytes: Uint8Array): number {
  const words = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  let a = 0;
  let b = 0;
  for (let i = 0; i < words.length; i++) {
    a = (a + words[i]) | 0;
    b = (b + a) | 0;
  }
  return ((a ^ Math.imul(b, 0x9e3779b1)) >>> 0);
}

/** The int32 scalars (I_*) of a control section. */
function scalars(store: Store, control: Uint8Array): Int32Array {
  return new Int32Array(control.buffer, control.byteOffset + store.scalarsOffset, I_SCALARS);
}
