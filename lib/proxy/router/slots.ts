/**
 * Key slots, and the requests held on them. A key's slot (FNV-1a folded to
 * {@linkcode DELETE_SLOTS}) is the unit of the router's per-key bookkeeping:
 * the delete counters and the write order in core.ts, the holds here.
 *
 * A conditional write that missed on its primary and is being repaired and
 * retried there (or an add being checked) holds its slot: requests of the
 * slot read after it wait in line, in order, so none reaches the backends
 * between the repair and the retry (memcached ran them after the write). A
 * flush_all waits for every hold, and every request waits behind it.
 * @module
 */

/** Slots of the delete counters that guard repairs and refills. */
export const DELETE_SLOTS = 4096;

/** FNV-1a of a key, folded to a delete-counter slot. */
export function keySlot(key: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i], 0x01000193);
  return (h >>> 0) % DELETE_SLOTS;
}

/** The slot of `buf[start, end)` (see {@linkcode SlotHolds.hold}). */
export function slotOf(buf: Uint8Array, start: number, end: number): number {
  return keySlot(buf.subarray(start, end));
}

/** {@linkcode SlotHolds.hold}'s slot for a flush_all. */
export const ALL_SLOTS = -2;

/** A request waiting behind a write in progress. */
interface Held {
  /** Its keys' slots (no repeats), or [ALL_SLOTS]. */
  slots: readonly number[];
  run: (recheck: boolean) => void;
  /** Slots where it is not first in line yet. */
  waiting: number;
  /** Slots where it is. */
  arrived: number[];
}

/** Writes being retried per key slot, and the requests held behind them. */
export class SlotHolds {
  /** Per key slot: conditional writes being repaired and retried, and when they are all in. */
  readonly #retries = new Map<number, { seqs: number[]; done: Promise<void>; end: () => void }>();
  /** Requests held behind a write in progress, per slot; ALL_SLOTS: behind a flush_all. */
  readonly #held = new Map<number, Held[]>();

  /**
   * A conditional write of `key`, counted as RouterCore.writeSeq `seq`,
   * missed on its primary and is being repaired and retried there (or an
   * add is being checked); call the returned function once its reply is in
   * (or it was given up). A read sent after it that also missed there
   * waits for it (see {@linkcode retrying}).
   */
  retryStarted(key: Uint8Array, seq: number): () => void {
    const slot = keySlot(key);
    let r = this.#retries.get(slot);
    if (r === undefined) {
      let end = () => {};
      const done = new Promise<void>((resolve) => end = resolve);
      r = { seqs: [], done, end };
      this.#retries.set(slot, r);
    }
    r.seqs.push(seq);
    const entry = r;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      entry.seqs.splice(entry.seqs.indexOf(seq), 1);
      if (entry.seqs.length === 0) {
        this.#retries.delete(slot);
        entry.end();
        this.#release(slot);
      }
    };
  }

  /**
   * Resolves once no conditional write of `key` (or of a key in its slot)
   * is being retried, or undefined when none sent before a read that took
   * RouterCore.writeSeq `since` is. A read that missed on the primary
   * behind such a write must not ask the backups meanwhile: they still hold
   * the item from before the write, which memcached ran first. One sent
   * before the write needs that item: it does not wait (and its fallback is
   * sent before anything of the later write reaches the backups).
   */
  retrying(key: Uint8Array, since: number): Promise<void> | undefined {
    if (this.#retries.size === 0) return undefined;
    const r = this.#retries.get(keySlot(key));
    return r !== undefined && r.seqs.some((seq) => seq <= since) ? r.done : undefined;
  }

  /** True while a write is being retried or checked, or requests wait behind one. */
  get holding(): boolean {
    return this.#retries.size > 0 || this.#held.size > 0;
  }

  /**
   * True when a request of `slots` must wait (see {@linkcode hold}): a
   * write of one of them is being retried or checked, requests already
   * wait there, or a flush_all waits. [ALL_SLOTS] (a flush_all): while any
   * such write or request is there.
   */
  mustWait(slots: readonly number[]): boolean {
    if (this.#held.has(ALL_SLOTS)) return true;
    if (slots[0] === ALL_SLOTS) return this.holding;
    for (const s of slots) if (this.#retries.has(s) || this.#held.has(s)) return true;
    return false;
  }

  /**
   * Queue `run` (after {@linkcode mustWait} said so) behind what holds
   * `slots`: it runs once it is first in line in every one of its slots,
   * and till then it holds them all. A flush_all waits for every write in
   * progress and request held, and every request waits behind it; these
   * are run with `recheck` true: they must look again whether they wait.
   */
  hold(slots: readonly number[], run: (recheck: boolean) => void): void {
    const all = this.#held.get(ALL_SLOTS);
    if (all !== undefined || slots[0] === ALL_SLOTS) {
      const h = { slots, run, waiting: 0, arrived: [] };
      if (all !== undefined) all.push(h);
      else this.#held.set(ALL_SLOTS, [h]);
      return;
    }
    const h: Held = { slots, run, waiting: slots.length, arrived: [] };
    for (const slot of slots) {
      const q = this.#held.get(slot);
      if (q === undefined) this.#held.set(slot, [h]);
      else q.push(h);
    }
    for (const slot of slots) this.#advance(slot);
  }

  /** The write holding `slot` is done: its requests go, in order, until one holds it again. */
  #release(slot: number): void {
    this.#advance(slot);
    // A held flush_all goes once nothing else is held or in progress.
    const all = this.#held.get(ALL_SLOTS);
    if (all === undefined || this.#retries.size > 0 || this.#held.size > 1) return;
    this.#held.delete(ALL_SLOTS);
    for (const h of all) h.run(true);
  }

  /** Let `slot`'s first request go as far as it can: run once first in every slot. */
  #advance(slot: number): void {
    for (;;) {
      const q = this.#held.get(slot);
      if (q === undefined || this.#retries.has(slot)) return;
      const h = q[0];
      if (h === undefined) {
        this.#held.delete(slot);
        return;
      }
      if (h.arrived.includes(slot)) return;
      h.arrived.push(slot);
      if (--h.waiting > 0) return;
      // First in all of its slots: out of each line, then run; the lines move on.
      for (const s of h.slots) {
        const line = this.#held.get(s) as Held[];
        line.shift();
        if (line.length === 0) this.#held.delete(s);
      }
      h.run(false);
      for (const s of h.slots) if (s !== slot) this.#advance(s);
    }
  }
}
