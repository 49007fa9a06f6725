/**
 * `stats detail on|off|dump`: memcached's per-prefix counters (the key up
 * to the first `:`), counted for get/gets/gat/gats, text storage commands
 * and delete while enabled, and dumped in memcached's order (murmur3
 * bucket, newest prefix first).
 * @module
 */

import type { Writer } from "../protocol/mod.ts";
import { hashBytes } from "../store/mod.ts";

const BUCKETS = 256;
const DELIMITER = 58; // ':'
/** Distinct prefixes kept at most (memcached has no bound; a flood of prefixes must not grow us). */
const MAX_PREFIXES = 65536;

interface Prefix {
  key: Uint8Array;
  gets: number;
  hits: number;
  sets: number;
  deletes: number;
  next: Prefix | null;
}

/** Per-prefix get/hit/set/delete counters of one serve thread. */
export class PrefixStats {
  /** `stats detail on` was given (and no `off` since). */
  enabled = false;
  #buckets: (Prefix | null)[] = new Array(BUCKETS).fill(null);
  #count = 0;

  /** A get of the key src[start, end); `hit` when it was found. */
  recordGet(src: Uint8Array, start: number, end: number, hit: boolean): void {
    const p = this.#find(src, start, end);
    if (p === null) return;
    p.gets++;
    if (hit) p.hits++;
  }

  /** A text storage command on the key. */
  recordSet(src: Uint8Array, start: number, end: number): void {
    const p = this.#find(src, start, end);
    if (p !== null) p.sets++;
  }

  /** A delete of the key. */
  recordDelete(src: Uint8Array, start: number, end: number): void {
    const p = this.#find(src, start, end);
    if (p !== null) p.deletes++;
  }

  /** Forget every prefix (`stats reset`). */
  clear(): void {
    this.#buckets.fill(null);
    this.#count = 0;
  }

  /** `stats detail dump`: one PREFIX line per prefix, then END. */
  dump(out: Writer): void {
    for (let b = 0; b < BUCKETS; b++) {
      for (let p = this.#buckets[b]; p !== null; p = p.next) {
        out.text("PREFIX ");
        out.bytes(p.key);
        out.text(" get ");
        out.uint(p.gets);
        out.text(" hit ");
        out.uint(p.hits);
        out.text(" set ");
        out.uint(p.sets);
        out.text(" del ");
        out.uint(p.deletes);
        out.crlf();
      }
    }
    out.text("END\r\n");
  }

  /** memcached's stats_prefix_find: keys without the delimiter are not counted. */
  #find(src: Uint8Array, start: number, end: number): Prefix | null {
    let len = -1;
    for (let i = start; i < end; i++) {
      if (src[i] === DELIMITER) {
        len = i - start;
        break;
      }
    }
    if (len < 0) return null;
    const b = (hashBytes(src, start, start + len) >>> 0) % BUCKETS;
    for (let p = this.#buckets[b]; p !== null; p = p.next) {
      // strncmp(prefix, key, len): a longer prefix that starts with the key's matches too.
      if (p.key.length >= len && sameBytes(p.key, src, start, len)) return p;
    }
    if (this.#count >= MAX_PREFIXES) return null;
    const p: Prefix = {
      key: src.slice(start, start + len),
      gets: 0,
      hits: 0,
      sets: 0,
      deletes: 0,
      next: this.#buckets[b],
    };
    this.#buckets[b] = p;
    this.#count++;
    return p;
  }
}

function sameBytes(a: Uint8Array, src: Uint8Array, start: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[i] !== src[start + i]) return false;
  return true;
}
