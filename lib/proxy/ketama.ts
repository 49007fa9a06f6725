/**
 * Key → server placement: a consistent-hash ring laid out exactly like
 * twemproxy's `distribution: ketama` with `hash: md5` (so both proxies put a
 * key on the same server), and magent's plain modulo of a DJB hash.
 * @module
 */

import { md5 } from "./md5.ts";
import { md5x4, MD5X4_MAX_KEY } from "./md5x4.ts";

/** Picks the index of the server a key lives on. */
export interface Distribution {
  /** Index (into the server list) for the key `buf[start, end)`. */
  pick(buf: Uint8Array, start: number, end: number): number;
  /**
   * {@linkcode pick} for `n` keys at once (a multi-get): key i is
   * `buf[starts[from + i], ends[from + i])`, its index goes to `out[i]`.
   */
  pickMany?(
    buf: Uint8Array,
    starts: Int32Array,
    ends: Int32Array,
    from: number,
    n: number,
    out: Int32Array,
  ): void;
}

/** A server on the ring: its ketama name and weight. */
export interface RingServer {
  /** The string whose digests place the server's points. */
  name: string;
  /** Relative weight (1 for every server given with -s). */
  weight: number;
}

/** twemproxy's points per server per unit of weight share (4 per md5 digest). */
const POINTS_PER_SERVER = 160;
const POINTS_PER_HASH = 4;

/**
 * The name twemproxy hashes for a server given as `host:port` without an
 * explicit name: `host:port`, except that port 11211 is left out
 * (libmemcached compatibility); a unix socket's path (an absolute `host`)
 * with the colon after it, as nutcracker names `- /path:weight`.
 */
export function ketamaName(host: string, port: number): string {
  if (host.startsWith("/")) return `${host}:`;
  return port === 11211 ? host : `${host}:${port}`;
}

const digest = new Uint32Array(4);
/** The ring's lookup table has 2^SLICE_BITS slices (a few points per slice for 100s of servers). */
const SLICE_BITS = 12;
/** Four keys' ranges and first digest words for md5x4. */
const lanes = new Int32Array(8);
const laneKey = new Int32Array(4);
const firstWords = new Uint32Array(4);

/** The ring of twemproxy's ketama distribution with the md5 key hash. */
export class Ketama implements Distribution {
  /** Point values, ascending. */
  readonly values: Uint32Array;
  /** Server index of each point. */
  readonly owners: Uint16Array;
  /**
   * Per slice of the hash space (its top {@linkcode SLICE_BITS} bits), the
   * first point at or above the slice's start: a lookup scans on from there
   * (rarely more than a step) instead of a binary search over every point.
   */
  readonly #firstInSlice: Uint32Array;
  /** Where the keys of recent multi-gets went (made by the first one; a new ring starts empty). */
  #cache: PlacementCache | null = null;

  /** Build the ring for the servers in their configured order. */
  constructor(servers: readonly RingServer[]) {
    if (servers.length === 0) throw new RangeError("ketama needs at least one server");
    const total = servers.reduce((s, x) => s + x.weight, 0);
    const n = servers.length;
    const points: { value: number; owner: number }[] = [];
    const enc = new TextEncoder();
    for (let i = 0; i < n; i++) {
      // twemproxy computes the share in C float arithmetic; Math.fround keeps
      // the same rounding so odd server counts get the same point counts.
      const pct = Math.fround(servers[i].weight / total);
      const share = Math.fround(
        Math.fround(Math.fround(pct * POINTS_PER_SERVER) / 4) * Math.fround(n),
      );
      const count = Math.floor(share + 1e-10) * 4;
      for (let k = 0; k < count / POINTS_PER_HASH; k++) {
        const label = enc.encode(`${servers[i].name}-${k}`);
        md5(label, 0, label.length, digest);
        for (let x = 0; x < POINTS_PER_HASH; x++) points.push({ value: digest[x], owner: i });
      }
    }
    points.sort((a, b) => a.value - b.value);
    this.values = Uint32Array.from(points, (p) => p.value);
    this.owners = Uint16Array.from(points, (p) => p.owner);
    const slices = new Uint32Array((1 << SLICE_BITS) + 1);
    let at = 0;
    for (let k = 0; k < slices.length; k++) {
      const low = k * 2 ** (32 - SLICE_BITS);
      while (at < this.values.length && this.values[at] < low) at++;
      slices[k] = at;
    }
    this.#firstInSlice = slices;
  }

  /** The server of the first point at or after the key's md5 hash, wrapping around. */
  pick(buf: Uint8Array, start: number, end: number): number {
    md5(buf, start, end, digest);
    return this.serverAt(digest[0]);
  }

  /**
   * {@linkcode pick} for many keys: a key seen lately is found in the
   * placement cache, the others are hashed four at a time (md5x4) and kept
   * there.
   */
  pickMany(
    buf: Uint8Array,
    starts: Int32Array,
    ends: Int32Array,
    from: number,
    n: number,
    out: Int32Array,
  ): void {
    const cache = this.#cache ??= new PlacementCache();
    // The keys seen lately in one pass (the common case: all of them), the rest (-1) below.
    if (cache.findMany(buf, starts, ends, from, n, out) === n) return;
    let q = 0;
    for (let i = 0; i < n; i++) {
      if (out[i] >= 0) continue;
      const s = starts[from + i], e = ends[from + i];
      if (e - s > MD5X4_MAX_KEY) {
        out[i] = this.pick(buf, s, e);
        continue;
      }
      lanes[2 * q] = s;
      lanes[2 * q + 1] = e;
      laneKey[q] = i;
      if (++q < 4) continue;
      md5x4(buf, lanes, firstWords);
      for (let l = 0; l < 4; l++) {
        const o = this.serverAt(firstWords[l]);
        out[laneKey[l]] = o;
        cache.keep(buf, lanes[2 * l], lanes[2 * l + 1], o);
      }
      q = 0;
    }
    for (let l = 0; l < q; l++) {
      const o = this.pick(buf, lanes[2 * l], lanes[2 * l + 1]);
      out[laneKey[l]] = o;
      cache.keep(buf, lanes[2 * l], lanes[2 * l + 1], o);
    }
  }

  /** The server of the first point at or after `hash`, wrapping around. */
  serverAt(hash: number): number {
    const values = this.values;
    let i = this.#firstInSlice[hash >>> (32 - SLICE_BITS)];
    while (i < values.length && values[i] < hash) i++;
    return this.owners[i === values.length ? 0 : i];
  }
}

/**
 * magent's placement without -k: the DJB hash of the key (bytes as C's
 * signed char, top bit cleared) modulo the number of servers.
 */
export class Modula implements Distribution {
  readonly #n: number;

  /** A modulo over `n` servers. */
  constructor(n: number) {
    if (n < 1) throw new RangeError("modula needs at least one server");
    this.#n = n;
  }

  /** Server index for the key `buf[start, end)`. */
  pick(buf: Uint8Array, start: number, end: number): number {
    let h = 5381;
    for (let i = start; i < end; i++) {
      const c = buf[i];
      h = (Math.imul(h, 33) + (c < 128 ? c : c - 256)) | 0;
    }
    return (h & 0x7fffffff) % this.#n;
  }
}

/** Sets of the placement cache (a power of two), two keys each. */
const CACHE_SETS = 4096;
/** Keys longer than this are not kept (they are hashed every time). */
const CACHE_KEY = 48;
/**
 * Bytes of the placement cache's key heap (a power of two; exported for
 * tests): about 10,000 keys of 10 bytes, 2,500 of 48.
 */
export const HEAP_BYTES = 131072;
/** An entry in the heap: its key's length, its server (2 bytes), then the key. */
const ENTRY_HEAD = 3;
/** Heap positions count up to this, then the cache starts over empty (they fit a Uint32Array). */
const POSITION_LIMIT = 2 ** 32 - 1024;

/**
 * Key → server index of one ring, for the keys of recent multi-gets: a
 * table of {@linkcode CACHE_SETS} sets of two ways (32 KB), found by a cheap
 * hash of the key's bytes, each way the position of an entry in a ring of
 * {@linkcode HEAP_BYTES} where the key's bytes (checked byte for byte) and
 * its server are, so a hot key is placed without its md5. Small on purpose:
 * between two multi-gets the other processes on the machine push the
 * proxy's data out of the CPU caches, and a lookup in a cold table costs a
 * cache (and TLB) miss; 1,000 short keys take 12 KB of heap, not 1,000 lines
 * of a 400 KB table. New entries overwrite the oldest ones in the ring (an
 * overwritten one is not found: its position is more than the ring's size
 * behind); a set replaces its older way. A ring is never changed (a reload
 * or an ejection builds a new one, with an empty cache), so an entry stays
 * true. Keys kept together are kept one after the other: a multi-get that
 * repeats an earlier one's keys (in the same order) finds each right after
 * the one before, read in sequence, without hashing it or reading its set.
 */
class PlacementCache {
  /** Per way: 1 + the heap position of its entry; 0 is empty. */
  readonly #ways = new Uint32Array(2 * CACHE_SETS);
  readonly #heap = new Uint8Array(HEAP_BYTES);
  /** Heap position of the next entry (counts up; its place in the ring is modulo HEAP_BYTES). */
  #head = 0;

  /**
   * The server indexes kept for `n` keys, key i being `buf[starts[from + i],
   * ends[from + i])`, into `out[i]` (-1: not kept); returns how many were
   * found. One loop with the tables in locals (a 1,000-key get), not a call
   * per key.
   */
  findMany(
    buf: Uint8Array,
    starts: Int32Array,
    ends: Int32Array,
    from: number,
    n: number,
    out: Int32Array,
  ): number {
    const ways = this.#ways, heap = this.#heap, head = this.#head;
    let found = 0;
    // Where the entry after the last key found starts (-1: none). A multi-get that repeats
    // keys of an earlier one in the same order finds each one there: no hash, no way read.
    let next = -1;
    for (let i = 0; i < n; i++) {
      const s = starts[from + i], e = ends[from + i];
      const len = e - s;
      let owner = -1;
      if (len > 0 && len <= CACHE_KEY) {
        // An entry after a live one is live too (written later), if written at all (before the
        // head; the skipped end of a lap is marked empty, see keep).
        if (next >= 0 && next < head) {
          const at = next & (HEAP_BYTES - 1);
          if (heap[at] === len) {
            const base = at + ENTRY_HEAD - s;
            let k = s;
            while (k < e && heap[base + k] === buf[k]) k++;
            if (k === e) {
              owner = heap[at + 1] | (heap[at + 2] << 8);
              next += ENTRY_HEAD + len;
            }
          }
        }
        if (owner < 0) {
          next = -1;
          const slot = 2 * setOf(buf, s, e);
          for (let way = slot; way < slot + 2; way++) {
            const ref = ways[way];
            if (ref === 0 || head - (ref - 1) > HEAP_BYTES) continue;
            const at = (ref - 1) & (HEAP_BYTES - 1);
            if (heap[at] !== len) continue;
            const base = at + ENTRY_HEAD - s;
            let k = s;
            while (k < e && heap[base + k] === buf[k]) k++;
            if (k === e) {
              owner = heap[at + 1] | (heap[at + 2] << 8);
              next = ref - 1 + ENTRY_HEAD + len;
              break;
            }
          }
        }
      } else next = -1;
      out[i] = owner;
      if (owner >= 0) found++;
    }
    return found;
  }

  /** Keep `buf[s, e)` → `owner`. */
  keep(buf: Uint8Array, s: number, e: number, owner: number): void {
    const n = e - s;
    if (n === 0 || n > CACHE_KEY) return;
    const size = ENTRY_HEAD + n;
    let pos = this.#head;
    // An entry never wraps around the ring's end: the rest of the lap is skipped.
    const room = HEAP_BYTES - (pos & (HEAP_BYTES - 1));
    if (room < size) {
      // Not an entry (length 0): what follows the lap's last entry is never taken for one.
      this.#heap[pos & (HEAP_BYTES - 1)] = 0;
      pos += room;
    }
    if (pos + size > POSITION_LIMIT) {
      // Positions would not fit the table: start over, empty (once per 4 GB of keys kept).
      this.#ways.fill(0);
      pos = 0;
    }
    const heap = this.#heap, at = pos & (HEAP_BYTES - 1);
    heap[at] = n;
    heap[at + 1] = owner & 0xff;
    heap[at + 2] = owner >>> 8;
    const base = at + ENTRY_HEAD - s;
    for (let i = s; i < e; i++) heap[base + i] = buf[i];
    this.#head = pos + size;
    // The set's older way (an empty one is the oldest) takes the entry.
    const ways = this.#ways, slot = 2 * setOf(buf, s, e);
    ways[ways[slot] <= ways[slot + 1] ? slot : slot + 1] = pos + 1;
  }
}

/**
 * The placement cache's set of `buf[s, e)` (exported for tests): FNV-1a over
 * 4-byte words, then a murmur-style finish.
 */
export function setOf(buf: Uint8Array, s: number, e: number): number {
  let h = 0x811c9dc5 ^ (e - s);
  let i = s;
  for (; i + 4 <= e; i += 4) {
    h = Math.imul(
      h ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)),
      0x01000193,
    );
  }
  for (; i < e; i++) h = Math.imul(h ^ buf[i], 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h ^= h >>> 13;
  return h & (CACHE_SETS - 1);
}
