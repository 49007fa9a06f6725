/**
 * `stats detail on|off|dump`: memcached's per-prefix counters (the key up
 * to the first `:`), counted for get/gets/gat/gats, text storage commands
 * and delete while enabled, and dumped in memcached's order (murmur3
 * bucket, newest prefix first).
 *
 * The table lives in a SharedArrayBuffer, so every serve thread counts into
 * one table (all changes happen under the cache lock, like the store's);
 * the OS commits its pages only once prefixes are recorded.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";
import { MAX_KEY_LENGTH } from "../protocol/mod.ts";
import { hashBytes } from "../store/mod.ts";

const BUCKETS = 256;
/** Distinct prefixes kept at most (memcached has no bound; a flood of prefixes must not grow us). */
const MAX_PREFIXES = 4096;
// Int32 cells: [enabled, count, delimiter, heads x BUCKETS, (next, length) per prefix].
const I_ENABLED = 0;
const I_COUNT = 1;
const I_DELIMITER = 2;
const I_HEADS = 3;
const I_ENTRIES = I_HEADS + BUCKETS;
// Float64 counters per prefix.
const GETS = 0, HITS = 1, SETS = 2, DELETES = 3, COUNTERS = 4;

/** Per-prefix get/hit/set/delete counters, shared by the serve threads. */
export class PrefixStats {
  /** Backing memory (threads attach to it). */
  readonly buffer: SharedArrayBuffer;
  #i32: Int32Array;
  #counts: Float64Array;
  #keys: Uint8Array;

  /**
   * A new, empty table (prefixes end at `delimiter`, memcached's -D, a byte), or another
   * thread's.
   */
  constructor(buffer?: SharedArrayBuffer, delimiter = 58 /* : */) {
    // Rounded up to even: the float64 counters that follow start 8-byte aligned.
    const ints = (I_ENTRIES + 2 * MAX_PREFIXES + 1) & ~1;
    const countBytes = MAX_PREFIXES * COUNTERS * 8;
    this.buffer = buffer ??
      new SharedArrayBuffer(ints * 4 + countBytes + MAX_PREFIXES * MAX_KEY_LENGTH);
    this.#i32 = new Int32Array(this.buffer, 0, ints);
    this.#counts = new Float64Array(this.buffer, ints * 4, MAX_PREFIXES * COUNTERS);
    this.#keys = new Uint8Array(this.buffer, ints * 4 + countBytes);
    if (!buffer) {
      this.#i32.fill(-1, I_HEADS, I_ENTRIES);
      this.#i32[I_DELIMITER] = delimiter;
    }
  }

  /** The byte that ends a key's prefix (`stats settings` stat_key_prefix). */
  get delimiter(): number {
    return this.#i32[I_DELIMITER];
  }

  /** `stats detail on` was given (and no `off` since), on any thread. */
  get enabled(): boolean {
    return this.#i32[I_ENABLED] !== 0;
  }

  set enabled(on: boolean) {
    this.#i32[I_ENABLED] = on ? 1 : 0;
  }

  /** A get of the key src[start, end); `hit` when it was found. */
  recordGet(src: Uint8Array, start: number, end: number, hit: boolean): void {
    const p = this.#find(src, start, end);
    if (p < 0) return;
    this.#counts[p * COUNTERS + GETS]++;
    if (hit) this.#counts[p * COUNTERS + HITS]++;
  }

  /** A text storage command on the key. */
  recordSet(src: Uint8Array, start: number, end: number): void {
    const p = this.#find(src, start, end);
    if (p >= 0) this.#counts[p * COUNTERS + SETS]++;
  }

  /** A delete of the key. */
  recordDelete(src: Uint8Array, start: number, end: number): void {
    const p = this.#find(src, start, end);
    if (p >= 0) this.#counts[p * COUNTERS + DELETES]++;
  }

  /** Forget every prefix (`stats reset`); the on/off switch stays. */
  clear(): void {
    this.#i32.fill(-1, I_HEADS, I_ENTRIES);
    this.#i32[I_COUNT] = 0;
  }

  /** `stats detail dump`: one PREFIX line per prefix, then END. */
  dump(out: Writer): void {
    const i32 = this.#i32, counts = this.#counts;
    for (let b = 0; b < BUCKETS; b++) {
      for (let p = i32[I_HEADS + b]; p >= 0; p = i32[I_ENTRIES + 2 * p]) {
        const at = p * MAX_KEY_LENGTH;
        out.text("PREFIX ");
        out.bytes(this.#keys, at, at + i32[I_ENTRIES + 2 * p + 1]);
        out.text(" get ");
        out.uint(counts[p * COUNTERS + GETS]);
        out.text(" hit ");
        out.uint(counts[p * COUNTERS + HITS]);
        out.text(" set ");
        out.uint(counts[p * COUNTERS + SETS]);
        out.text(" del ");
        out.uint(counts[p * COUNTERS + DELETES]);
        out.crlf();
      }
    }
    out.text("END\r\n");
  }

  /** memcached's stats_prefix_find: the prefix's index, -1 for keys without the delimiter. */
  #find(src: Uint8Array, start: number, end: number): number {
    let len = -1;
    const delimiter = this.#i32[I_DELIMITER];
    for (let i = start; i < end; i++) {
      if (src[i] === delimiter) {
        len = i - start;
        break;
      }
    }
    if (len < 0) return -1;
    const i32 = this.#i32, keys = this.#keys;
    const b = (hashBytes(src, start, start + len) >>> 0) % BUCKETS;
    for (let p = i32[I_HEADS + b]; p >= 0; p = i32[I_ENTRIES + 2 * p]) {
      // strncmp(prefix, key, len): a longer prefix that starts with the key's matches too.
      if (
        i32[I_ENTRIES + 2 * p + 1] >= len && sameBytes(keys, p * MAX_KEY_LENGTH, src, start, len)
      ) {
        return p;
      }
    }
    const p = i32[I_COUNT];
    if (p >= MAX_PREFIXES) return -1;
    i32[I_COUNT] = p + 1;
    keys.set(src.subarray(start, start + len), p * MAX_KEY_LENGTH);
    this.#counts.fill(0, p * COUNTERS, (p + 1) * COUNTERS);
    i32[I_ENTRIES + 2 * p] = i32[I_HEADS + b];
    i32[I_ENTRIES + 2 * p + 1] = len;
    i32[I_HEADS + b] = p;
    return p;
  }
}

function sameBytes(
  a: Uint8Array,
  at: number,
  src: Uint8Array,
  start: number,
  len: number,
): boolean {
  for (let i = 0; i < len; i++) if (a[at + i] !== src[start + i]) return false;
  return true;
}
