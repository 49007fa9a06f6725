/**
 * Shared setup for store tests: a settable clock and byte helpers.
 * @module
 */

import { Store, type StoreOptions } from "../../lib/store/mod.ts";

/** A clock the test moves by hand. */
export class FakeClock {
  /** Current clock seconds. */
  t = 10;
  /** Returns the current clock seconds. */
  now(): number {
    return this.t;
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A store with a fake clock; options default to 64 MiB, 1 MiB items, evicting. */
export function makeStore(opts: Partial<StoreOptions> = {}): { store: Store; clock: FakeClock } {
  const clock = new FakeClock();
  const store = new Store(
    { memoryLimit: 64 * 1048576, maxItemSize: 1048576, evict: true, ...opts },
    clock,
  );
  return { store, clock };
}

/** Stores key=value (strings or value bytes) and links it; returns the handle or a negative alloc code. */
export function put(
  store: Store,
  key: string,
  value: string | Uint8Array,
  flags = 0,
  exptime = 0,
): number {
  const k = enc.encode(key);
  const v = typeof value === "string" ? enc.encode(value) : value;
  const h = store.alloc(k, 0, k.length, flags, exptime, v.length);
  if (h < 0) return h;
  store.buffer(h).set(v, store.valueOffset(h));
  store.link(h);
  return h;
}

/** Handle of key or -1 (find, no bump). */
export function find(store: Store, key: string): number {
  const k = enc.encode(key);
  return store.find(k, 0, k.length);
}

/** Value of key as a string (with bump), or null. */
export function get(store: Store, key: string): string | null {
  const h = find(store, key);
  if (h < 0) return null;
  store.bump(h);
  return valueOf(store, h);
}

/** The value bytes of handle h as a string. */
export function valueOf(store: Store, h: number): string {
  const off = store.valueOffset(h);
  return dec.decode(store.buffer(h).subarray(off, off + store.valueLength(h)));
}

/** The key of handle h as a string. */
export function keyOf(store: Store, h: number): string {
  const off = store.keyOffset(h);
  return dec.decode(store.buffer(h).subarray(off, off + store.keyLength(h)));
}

/** The value written for key `k` at write `n`: length varies with n, bytes depend on both. */
export function valueFor(k: string, n: number, big: boolean): Uint8Array {
  const len = big ? 600_000 + (n % 1000) : 1 + (n * 37) % 3000;
  const v = new Uint8Array(len);
  const head = enc.encode(`${k}#${n}#`);
  for (let i = 0; i < len; i++) v[i] = head[i % head.length];
  return v;
}

/** True when a and b hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
