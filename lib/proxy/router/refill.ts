/**
 * Refilling a backup that returned without every key it backs: restarted
 * empty, or cleaned of keys that changed while it was down. The keys of
 * every primary are listed and fetched with lib/copy's server source
 * (`lru_crawler metadump` + `mg`) and written to the backup as adds (`ms
 * ... ME`) on the proxy's own pooled connection to it, in the background
 * while clients keep writing through it:
 *
 * - an add never overwrites: a copy of a newer write (a set, issued on the
 *   primary's reply) that reached the backup first wins, and one that comes
 *   later overwrites the refilled item;
 * - a delete or flush_all that arrived since a batch was read drops its
 *   items ({@linkcode RouterCore.deletes}, {@linkcode RouterCore.epoch}),
 *   so a refill never brings a deleted item back. The delete counters are
 *   per slot, shared by many keys: the dropped keys are then fetched again
 *   one by one on the proxy's own connection to the primary (in order with
 *   the deletes sent there) and copied as repairs are, under a fresh guard.
 *
 * Another zone's server is refilled the same way (it is a copy of the keys
 * its zone's ring gives it): only those keys are copied to it.
 *
 * Reads meanwhile: a primary's hit is the answer; a backup that misses an
 * item it has not been given yet is simply a miss (the primary's copy is the
 * truth). Progress is in `stats proxy` (`backup:<name>:refill`,
 * `:refill_items`).
 * @module
 */

import { Client, ReplyKind } from "../../client/mod.ts";
import { Outcome, ServerSource, ServerTarget } from "../../copy/mod.ts";
import { base64Key, isTextKey, Op } from "../../protocol/mod.ts";
import { log } from "../../log.ts";
import { errorText } from "../../transport/mod.ts";
import type { Backend, ReturnInfo } from "../pool.ts";
import { fetchLine, ttlToExptime } from "../lines.ts";
import type { RouterCore } from "./core.ts";
import { repair } from "./repair.ts";
import { keySlot } from "./slots.ts";

/** Items per fetched batch. */
const BATCH = 500;
/** After a refill could not finish with the backup still up, try again this much later. */
const RETRY_MS = 1000;
/** Rounds of one-by-one fetches for keys whose batch a delete (in their slot) invalidated. */
const REFETCH_ROUNDS = 5;

/** What was known when a batch started: drop its items if a flush or delete came since. */
interface BatchMark {
  epoch: number;
  deletes: Uint32Array;
}

/** Runs refills of backups, one at a time per backup. */
export class Refiller {
  readonly #core: RouterCore;
  readonly #running = new Set<Backend>();
  readonly #again = new Set<Backend>();

  /** Refills over the core's primaries. */
  constructor(core: RouterCore) {
    this.#core = core;
  }

  /** Backup `b` serves again: refill it when it may lack keys. */
  backupReturned(b: Backend, info: ReturnInfo): void {
    if (info.restarted || info.cleaned) this.request(b);
    this.#retryPartial();
  }

  /**
   * A primary serves again: finish refills that had to skip it. With zones,
   * `p` (given) is refilled from another zone when it may lack keys.
   */
  primaryReturned(p?: Backend, info?: ReturnInfo): void {
    if (p !== undefined && info !== undefined && (info.restarted || info.cleaned)) {
      this.request(p);
    }
    this.#retryPartial();
  }

  #retryPartial(): void {
    const core = this.#core;
    for (const b of [...core.servers, ...core.copies]) {
      if (b.refill === "partial" && !this.#running.has(b)) this.request(b);
    }
  }

  /** Refill `b` (again after the current run, if one is running). */
  request(b: Backend): void {
    if (b.closed) return;
    if (this.#running.has(b)) {
      this.#again.add(b);
      return;
    }
    this.#running.add(b);
    this.#loop(b);
  }

  async #loop(b: Backend): Promise<void> {
    try {
      do {
        this.#again.delete(b);
        await this.#run(b);
      } while (this.#again.has(b) && !b.closed);
    } catch (err) {
      log.warn(`proxy: refill of ${b.name}: ${errorText(err)}`);
    } finally {
      this.#running.delete(b);
    }
  }

  async #run(b: Backend): Promise<void> {
    const stats = this.#core.stats;
    b.refill = "running";
    b.refillRuns++;
    b.refillItems = 0;
    stats.refills++;
    const local = this.#core.servers.includes(b);
    log.info(
      `proxy: refilling ${b.role} ${b.name} from ${local ? "another zone" : "the primaries"}`,
    );
    let partial = false;
    // A local server (zones) copies from the first other zone it can read whole.
    const sourceSets = local ? this.#core.zones.map((z) => z.servers) : [this.#core.servers];
    for (const sources of sourceSets) {
      partial = false;
      for (const p of sources) {
        if (!b.up || b.closed) break;
        if (!p.up) {
          partial = true;
          continue;
        }
        try {
          await this.#copy(p, b);
        } catch (err) {
          log.info(`proxy: refill of ${b.name} from ${p.name}: ${errorText(err)}`);
          partial = true;
        }
      }
      if (!partial) break;
    }
    if (!b.up || b.closed) {
      // Its next return refills it again.
      b.refill = "interrupted";
      return;
    }
    if (!partial && b.dirtyKeys !== 0) {
      // Its dirty keys were skipped (it may hold them stale): its cleaning ends with a request
      // for another run (backupReturned), which copies them. Not done until then.
      log.info(
        `proxy: backup ${b.name} refill: ${b.refillItems} items copied, ` +
          `${b.dirtyKeys} dirty keys copied once cleaned`,
      );
      return;
    }
    b.refill = partial ? "partial" : "done";
    log.info(`proxy: backup ${b.name} refill ${b.refill}: ${b.refillItems} items copied`);
    // A primary that failed mid-way while up is tried again; one that is down, when it returns.
    if (partial && sourceSets.some((set) => set.every((p) => p.up))) {
      setTimeout(() => this.request(b), RETRY_MS);
    }
  }

  /** Every item of primary `p` that `b` lacks, added to `b`. */
  async #copy(p: Backend, b: Backend): Promise<void> {
    const core = this.#core;
    const marks: BatchMark[] = [];
    const source = await ServerSource.open(p.host, p.port, {
      batchSize: BATCH,
      onBatch: () => marks.push({ epoch: core.epoch, deletes: core.deletes.slice() }),
    }, { connectTimeoutMs: 3000, requestTimeoutMs: 10_000 });
    const dropped: Uint8Array[] = [];
    try {
      for await (const items of source.batches()) {
        const mark = marks.shift() as BatchMark;
        const c = b.acquire();
        if (c === null) return;
        const client = c instanceof Client ? c : await c;
        if (!b.up) return;
        // From here to the writes being queued nothing awaits: the checks hold for them.
        if (core.epoch !== mark.epoch) return; // flushed since: nothing read before it stays
        const keep = items.filter((it) => {
          // A zone's server holds only the keys its zone's ring gives it.
          if (!core.holds(b, it.key)) return false;
          // A key the source missed a change of (a failed copy, not cleaned yet) is not
          // copied, nor one the target may hold stale (its cleaning deletes it; reads repair it).
          if (p.isDirty(it.key) || b.isDirty(it.key)) return false;
          const slot = keySlot(it.key);
          // Nor one whose write is being checked there (an add the primary stored may yet be
          // overwritten by the backup's item, see writes.ts checkAdd): fetched again instead.
          if (core.deletes[slot] === mark.deletes[slot] && !core.slotHolds.mustWait([slot])) {
            return true;
          }
          dropped.push(it.key);
          return false;
        });
        // Read from the primary just now: they may hold any write sent so far (a read of the
        // backup must not be answered after them with such a write, see copiedSince).
        for (const it of keep) core.copied(it.key);
        const outcomes = await ServerTarget.over(b.name, client, "add").store(keep);
        for (const o of outcomes) {
          if (o === Outcome.STORED) {
            b.refillItems++;
            core.stats.refillItems++;
          }
        }
      }
    } finally {
      source.close();
    }
    for (let round = 0; round < REFETCH_ROUNDS && dropped.length > 0 && b.up; round++) {
      const again = await Promise.all(dropped.map((key) => this.#refetch(p, b, key)));
      const left = dropped.filter((_, i) => again[i]);
      dropped.length = 0;
      dropped.push(...left);
    }
    if (dropped.length > 0) throw new Error(`${dropped.length} keys kept changing`);
  }

  /**
   * One key from `p` to `b`, as a read repair copies it; true when it must
   * be tried again (a delete in its slot came meanwhile, or `p` failed). The `mg` goes on the proxy's
   * connection to `p`, behind any delete of the key already sent there.
   */
  async #refetch(p: Backend, b: Backend, key: Uint8Array): Promise<boolean> {
    const core = this.#core;
    const guard = core.guard(key);
    const binary = !isTextKey(key);
    const token = binary ? base64Key(key) : key;
    const item = await core.ask(p, Op.MG, fetchLine(token, binary)).catch(() => null);
    if (item === null) return true; // p failed: again, and partial if it keeps failing
    if (item.kind !== ReplyKind.VA) return false; // gone meanwhile
    if (!core.guardHolds(guard) || core.slotHolds.mustWait([keySlot(key)])) return true;
    if (p.isDirty(key)) return false; // its copy there may be stale
    core.copied(key);
    const ok = await repair(
      core,
      guard,
      b,
      token,
      binary,
      item.value as Uint8Array,
      item.flags,
      ttlToExptime(item.ttl),
      false,
    );
    if (ok !== null) {
      b.refillItems++;
      core.stats.refillItems++;
    }
    return false;
  }
}
