/**
 * flush_all and the walks that free dead items in bulk: an immediate
 * flush (every item now, or lazily by CAS as memcached), a delayed one
 * (by time, or by version for replication), the sweep of what a flush
 * left dead, and `lru_crawler crawl`. The flush state is in the Store's
 * shared scalars (slabs.ts I_OLDEST_LIVE, I_FLUSH_CAS_*, I_LAZY_FLUSH),
 * which lookups read through expiry.ts; a Store's {@linkcode Reclaimer}
 * sets it and walks the LRU lists.
 * @module
 */

import type { SlabClasses } from "./classes.ts";
import { flushedBefore, itemDead } from "./expiry.ts";
import { F_CAS, F_EXPIRED_UNFETCHED, F_RECLAIMED } from "./memory.ts";
import {
  type Arena,
  I_EXPLICIT_CAS_HI,
  I_EXPLICIT_CAS_LO,
  I_FLUSH_CAS_HI,
  I_FLUSH_CAS_LO,
  I_LAZY_FLUSH,
  I_OLDEST_LIVE,
  M_FETCHED,
  W_EXPTIME,
  W_META,
  W_PREV,
} from "./slabs.ts";

/** The flushes and sweeps of one Store (one per Store view, sharing its memory). */
export class Reclaimer {
  #store: { unlink(h: number): void };
  #arena: Arena;
  #c: SlabClasses;
  /** Shared float64 counters (F_*). */
  #f: Float64Array;
  /** Shared int32 scalars (I_*). */
  #ctl: Int32Array;
  #clock: { now(): number };

  /** Flushes over the Store's views; `store` unlinks an item (index, LRU, counters). */
  constructor(
    store: { unlink(h: number): void },
    arena: Arena,
    classes: SlabClasses,
    f: Float64Array,
    ctl: Int32Array,
    clock: { now(): number },
  ) {
    this.#store = store;
    this.#arena = arena;
    this.#c = classes;
    this.#f = f;
    this.#ctl = ctl;
    this.#clock = clock;
  }

  /**
   * flush_all: delay 0 frees every item now; delay > 0 invalidates items
   * stored or updated before now + delay once that time comes (lazily).
   * `thisSecond` (memcached -C, no CAS to order items within a second): an
   * immediate flush also invalidates what is stored later in the same second.
   * A delayed flush replacing one whose time has come first unlinks what that
   * one invalidated. memcached's rules for one node: replication keeps the
   * slot by version itself (unlinkAll, flushBefore).
   */
  flush(delaySeconds: number, thisSecond: boolean): void {
    const ol = this.#ctl[I_OLDEST_LIVE];
    // A delayed flush that has come leaves its items dead only while it is the pending one:
    // before another replaces it they go, as memcached's LRU maintainer and crawler take them.
    if (delaySeconds > 0 && ol !== 0 && this.#clock.now() >= ol) {
      this.#unlinkWhere((i32, w) => flushedBefore(this.#ctl, i32, w, ol));
    }
    this.#ctl[I_FLUSH_CAS_HI] = this.#ctl[I_FLUSH_CAS_LO] = this.#ctl[I_LAZY_FLUSH] = 0;
    if (delaySeconds > 0) {
      this.#ctl[I_OLDEST_LIVE] = this.#clock.now() + delaySeconds;
      return;
    }
    this.#ctl[I_OLDEST_LIVE] = 0;
    this.unlinkAll();
    if (thisSecond) this.#ctl[I_OLDEST_LIVE] = this.#clock.now();
  }

  /**
   * memcached's immediate flush_all (with CAS): every item stored so far is
   * dead from now on, by CAS (its `oldest_cas`), and stays in memory until
   * a read finds it (`get_flushed`), an allocation reclaims it at an LRU
   * tail or {@linkcode reclaimFlushed} sweeps it, each counted `reclaimed`
   * as memcached's LRU maintainer counts them. A delayed flush pending is
   * replaced, as memcached's flush replaces `oldest_live`.
   */
  flushLazily(): void {
    const ctl = this.#ctl;
    const explicit = ctl[I_EXPLICIT_CAS_HI] * 4294967296 + (ctl[I_EXPLICIT_CAS_LO] >>> 0);
    const bound = this.#f[F_CAS] + 1; // later stores get this CAS or more
    if (explicit >= bound) {
      // An item may carry a CAS above the bound (meta E): it would survive. Free them all now.
      this.flush(0, false);
      return;
    }
    ctl[I_FLUSH_CAS_HI] = Math.floor(bound / 4294967296);
    ctl[I_FLUSH_CAS_LO] = bound | 0;
    ctl[I_OLDEST_LIVE] = this.#clock.now();
    ctl[I_LAZY_FLUSH] = 1;
  }

  /**
   * Unlinks the items a flush_all in effect left dead (memcached's LRU
   * maintainer and crawler do it soon after the flush), counted as
   * `reclaimed` (and `expired_unfetched` when never read). Returns how many.
   */
  reclaimFlushed(): number {
    const ol = this.#ctl[I_OLDEST_LIVE];
    if (ol === 0 || this.#clock.now() < ol) return 0;
    const c = this.#c, f = this.#f;
    let n = 0;
    this.#unlinkWhere((i32, w, cls) => {
      if (!flushedBefore(this.#ctl, i32, w, ol)) return false;
      c.reclaimed[cls]++;
      f[F_RECLAIMED]++;
      if ((i32[w + W_META] & M_FETCHED) === 0) {
        c.expiredUnfetched[cls]++;
        f[F_EXPIRED_UNFETCHED]++;
      }
      n++;
      return true;
    });
    return n;
  }

  /**
   * Frees every item now and leaves the delayed-flush slot as it is: an
   * immediate flush_all of a replicated node, whose slot holds the flushes
   * by version (see flushBefore) and is the merge's alone.
   */
  unlinkAll(): void {
    this.#unlinkWhere(() => true);
  }

  /**
   * A delayed flush_all decided by version (replication): once clock second
   * `atClock` comes, items with a CAS below `cas` die, whenever this node
   * stored them, so every node drops the same ones (by time, a node that
   * got a write late would keep what its writer dropped).
   */
  flushBefore(atClock: number, cas: number): void {
    this.#ctl[I_FLUSH_CAS_HI] = Math.floor(cas / 4294967296);
    this.#ctl[I_FLUSH_CAS_LO] = cas | 0;
    this.#ctl[I_OLDEST_LIVE] = atClock;
    this.#ctl[I_LAZY_FLUSH] = 0;
  }

  /**
   * `lru_crawler crawl`: looks at every item of the classes marked in
   * `classes` (index = class id) and unlinks the expired and flushed ones,
   * counted per class as memcached's crawler counts them
   * (`crawler_items_checked`, `crawler_reclaimed`, `expired_unfetched` for
   * expired items never read). Returns how many it reclaimed.
   */
  crawl(classes: Uint8Array): number {
    const c = this.#c, f = this.#f, ctl = this.#ctl;
    const now = this.#clock.now();
    let n = 0;
    this.#unlinkWhere((i32, w, cls) => {
      c.crawlerChecked[cls]++;
      if (!itemDead(ctl, i32, w, now)) return false;
      c.crawlerReclaimed[cls]++;
      const exp = i32[w + W_EXPTIME];
      if (exp !== 0 && exp <= now && (i32[w + W_META] & M_FETCHED) === 0) {
        c.expiredUnfetched[cls]++;
        f[F_EXPIRED_UNFETCHED]++;
      }
      n++;
      return true;
    }, classes);
    return n;
  }

  /**
   * Unlinks every linked item (of the classes marked in `classes`, default
   * all) for which `doomed` (item header at word `w`) says true.
   */
  #unlinkWhere(
    doomed: (i32: Int32Array, w: number, cls: number) => boolean,
    classes?: Uint8Array,
  ): void {
    const arena = this.#arena;
    const store = this.#store;
    arena.sync();
    for (let cls = 1; cls <= this.#c.large; cls++) {
      if (classes !== undefined && classes[cls] !== 1) continue;
      let h = this.#c.lruTail[cls];
      while (h !== -1) {
        const prev = arena.i32[arena.word(h) + W_PREV];
        if (doomed(arena.i32, arena.word(h), cls)) store.unlink(h);
        h = prev;
      }
    }
  }
}
