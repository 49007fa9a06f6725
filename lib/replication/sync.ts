/**
 * `--repl-sync` on the replicator's thread: how much of this node's stream
 * the peer has confirmed, and the client writes waiting for that. A wait is
 * bounded: then the write is refused (its reply becomes SERVER_ERROR) or,
 * with `--repl-sync-degrade`, acknowledged locally; both are counted and
 * logged once per down period.
 * @module
 */

import { log } from "../log.ts";
import type { ReplicationStats } from "./stats.ts";

/** How sync writes wait. */
export interface SyncSettings {
  /** Acknowledge locally while no peer confirms (instead of refusing). */
  degrade: boolean;
  /** Longest wait for the peer (ms). */
  timeoutMs: number;
}

/** A client write waiting for the peer. */
interface Waiter {
  target: number;
  writes: number;
  resolve: (applied: number) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** The confirmed offset of this node's stream and the writes waiting for it. */
export class SyncAcks {
  #settings: SyncSettings;
  #stats: ReplicationStats;
  #linked: () => boolean;
  #confirmed = 0;
  #waiters: Waiter[] = [];
  #noted = false;

  /** `linked` tells whether a peer is linked and streaming now. */
  constructor(settings: SyncSettings, stats: ReplicationStats, linked: () => boolean) {
    this.#settings = settings;
    this.#stats = stats;
    this.#linked = linked;
  }

  /** Our stream offset the peer is known to have applied, everything before it included. */
  get confirmed(): number {
    return this.#confirmed;
  }

  /** The peer holds our stream up to `offset`; false when that is not news. */
  confirm(offset: number): boolean {
    if (offset <= this.#confirmed) return false;
    this.#confirmed = offset;
    const waiters = this.#waiters;
    let i = 0;
    while (i < waiters.length && waiters[i].target <= offset) {
      clearTimeout(waiters[i].timer);
      waiters[i].resolve(offset);
      i++;
    }
    if (i > 0) waiters.splice(0, i);
    return true;
  }

  /**
   * Wait until the peer confirmed `target`, at most the timeout; resolves
   * with the confirmed offset (below `target`: refused). With degrade, a
   * write no peer can confirm resolves as confirmed and is counted.
   */
  wait(target: number, writes: number): Promise<number> | number {
    if (this.#confirmed >= target) return this.#confirmed;
    if (this.#settings.degrade && !this.#linked()) return this.#degraded(target, writes);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        target,
        writes,
        resolve,
        timer: setTimeout(() => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve(this.#settings.degrade ? this.#degraded(target, writes) : this.#confirmed);
        }, this.#settings.timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** `writes` replies became SERVER_ERROR. */
  refused(writes: number): void {
    this.#stats.syncRefused += writes;
    this.note(false);
  }

  /** Resolve every waiting write now: as degraded (alone with degrade), or as it stands (stop). */
  release(degrade: boolean): void {
    if (!degrade) this.#noted = true; // stopping: their clients are gone, nothing to report
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.resolve(degrade ? this.#degraded(w.target, w.writes) : this.#confirmed);
    }
  }

  /** A new link: the next refused or degraded write is logged again. */
  newPeriod(): void {
    this.#noted = false;
  }

  /** Log the first degraded or refused write of a down period (serve threads' too). */
  note(degraded: boolean): void {
    if (this.#noted) return;
    this.#noted = true;
    if (degraded) {
      log.warn(
        "replication: --repl-sync-degrade: no peer confirms writes; acknowledging them locally until the peer is back",
      );
    } else {
      log.warn(
        `replication: --repl-sync: the peer did not confirm writes within ${this.#settings.timeoutMs} ms; answering SERVER_ERROR until it is back`,
      );
    }
  }

  #degraded(target: number, writes: number): number {
    this.#stats.syncDegraded += writes;
    this.note(true);
    return target;
  }
}
