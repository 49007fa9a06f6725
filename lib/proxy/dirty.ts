/**
 * The keys a server may hold stale: changed elsewhere while it could not be
 * written. A loss (a request sent there and failed) carries a new
 * generation, so a cleaning pass that snapshotted the set forgets a key only
 * if it was not lost again since the snapshot (a write that failed over
 * while the pass ran stays dirty). Other marks of a key already dirty keep
 * its generation: a write skipped there, or one it answered with an error
 * before the pass's delete was answered (so sent before the delete, on the
 * same connection), changes nothing the delete does not undo. A new one
 * would keep a key written during every delete dirty for good.
 * @module
 */

import { decodeAscii } from "../protocol/mod.ts";

/** One dirty key as a cleaning pass sees it. */
export interface DirtyEntry {
  /** The key (decodeAscii of its bytes: one character per byte). */
  key: string;
  /** Its generation when the pass took it. */
  gen: number;
  /** Only lost (see {@linkcode DirtyKeys.mark}): waited out, not deleted. */
  keep: boolean;
}

/** Dirty keys of one server, bounded; beyond the bound the whole server is dirty. */
export class DirtyKeys {
  readonly #limit: number;
  #keys = new Map<string, number>();
  #gen = 0;
  #all = false;
  /**
   * Keys whose lost request may still be applied late (a timed-out or cut
   * connection's bytes wait in the server's socket buffer until it reads
   * them): `ms` is the grace period, `until` its end, counted from the first
   * cleaning delete the server answered after the loss (0: none yet).
   */
  #holds = new Map<string, { ms: number; until: number; fence: number }>();
  /** Keys only lost: no copy took the write, so nothing changed elsewhere (see mark). */
  readonly #keep = new Set<string>();
  /** Times more than `limit` keys were marked (the whole server became dirty). */
  overflows = 0;

  /** At most `limit` keys are remembered; one more makes every key dirty. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Keys remembered (-1: every key is dirty). */
  get size(): number {
    return this.#all ? -1 : this.#keys.size;
  }

  /** True when nothing is dirty. */
  get clean(): boolean {
    return !this.#all && this.#keys.size === 0;
  }

  /** Every key is dirty (too many, or a flush_all was missed): the server needs a flush. */
  get all(): boolean {
    return this.#all;
  }

  /**
   * `key` changed elsewhere. With `lateMs` (a request for it was lost), it
   * stays dirty until a delete sent `lateMs` after the first answered one
   * once connection number `fence` and those before it are fenced (see
   * {@linkcode settle}). `keep`: the lost request went nowhere else either,
   * so the server's item is still the key's latest (the request's outcome
   * was never known): it is not deleted, only held until the late bytes can
   * no longer land; any other mark makes the key dirty as usual.
   */
  mark(key: Uint8Array, lateMs = 0, fence = 0, keep = false): void {
    if (this.#all) return;
    if (this.#keys.size >= this.#limit) {
      this.overflows++;
      this.markAll();
      return;
    }
    const k = decodeAscii(key, 0, key.length);
    const had = this.#keys.has(k);
    // Kept no more: a pass that took it as kept (no delete) must not forget it.
    const unkept = !keep && this.#keep.delete(k);
    if (keep && !had) this.#keep.add(k);
    if (lateMs > 0 || !had || unkept) this.#keys.set(k, ++this.#gen);
    // A new loss starts the grace period over: its bytes may land after any earlier cleaning.
    if (lateMs > 0) {
      const old = this.#holds.get(k);
      this.#holds.set(k, {
        ms: Math.max(lateMs, old?.ms ?? 0),
        until: 0,
        fence: Math.max(fence, old?.fence ?? 0),
      });
    }
  }

  /** Every key changed elsewhere (a flush_all was missed, or too many keys). */
  markAll(): void {
    this.#all = true;
    this.#keys.clear();
    this.#keep.clear();
    // Holds stay: a lost request's bytes may land after the flush too (see flushing()).
    this.#gen++;
  }

  /** True when `key` may be stale on the server. */
  has(key: Uint8Array): boolean {
    if (this.#all) return true;
    return this.#keys.size > 0 && this.#keys.has(decodeAscii(key, 0, key.length));
  }

  /**
   * A flush is about to be sent: the set starts over (keys marked from now
   * on are remembered again). Call {@linkcode flushFailed} if it fails.
   */
  flushing(): void {
    this.#all = false;
    this.#keys.clear();
    this.#keep.clear();
    // A lost request may still be applied after the flush, as after a delete: its key stays
    // dirty and is deleted again once its grace period (from the next answer) is over.
    for (const [k, hold] of this.#holds) {
      hold.until = 0;
      this.#keys.set(k, ++this.#gen);
    }
  }

  /** The flush did not happen: every key is dirty again. */
  flushFailed(): void {
    this.markAll();
  }

  /** Up to `max` dirty keys with their generations, for a cleaning pass. */
  snapshot(max = Infinity): DirtyEntry[] {
    const out: DirtyEntry[] = [];
    for (const [key, gen] of this.#keys) {
      if (out.length >= max) break;
      out.push({ key, gen, keep: this.#keep.has(key) });
    }
    return out;
  }

  /**
   * `e` was cleaned by a delete sent at `sentAt` and answered at `now`:
   * forget it unless it was marked again since the snapshot, or a lost
   * request's bytes may still land after that delete: while `fenced` says
   * a connection up to its fence may still deliver them, or within the
   * grace period.
   */
  settle(
    e: DirtyEntry,
    sentAt: number,
    now = Date.now(),
    fenced: (seq: number) => boolean = () => true,
  ): void {
    const hold = this.#holds.get(e.key);
    if (hold !== undefined) {
      if (!fenced(hold.fence)) return;
      // The late bytes are applied only while the server runs, and its answer shows it runs:
      // the grace period starts there, not at the loss (a server hung past it would otherwise
      // apply them after the delete that made the key clean). Kept: cleaned again later.
      if (hold.until === 0) {
        hold.until = now + hold.ms;
        return;
      }
      if (sentAt < hold.until) return;
      this.#holds.delete(e.key);
    }
    if (this.#keys.get(e.key) === e.gen) {
      this.#keys.delete(e.key);
      this.#keep.delete(e.key);
    }
  }
}

/** A multiset of keys: each is in it until removed as often as it was added. */
export class KeyCounts {
  readonly #counts = new Map<string, number>();

  /** Keys in it. */
  get size(): number {
    return this.#counts.size;
  }

  /** True while `key` is in it. */
  has(key: string): boolean {
    return this.#counts.has(key);
  }

  /** The keys in it. */
  keys(): IterableIterator<string> {
    return this.#counts.keys();
  }

  /** Add `key` once more. */
  add(key: string): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** Remove `key` once. */
  remove(key: string): void {
    const n = this.#counts.get(key) ?? 1;
    if (n > 1) this.#counts.set(key, n - 1);
    else this.#counts.delete(key);
  }
}
