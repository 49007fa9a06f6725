/**
 * The node's full-copy bookkeeping, which outlives links: the copy it
 * sends until the receiver confirmed it, the copy it receives (and the
 * sweep that makes it exact), and which of its versions the peer has seen
 * (the agreed point that decides what a copy may drop; see snapshot.ts).
 * @module
 */

import { setImmediate } from "node:timers";
import { log } from "../log.ts";
import type { Store } from "../store/mod.ts";
import { AgreedVersions, type Backlog } from "./backlog.ts";
import type { Link } from "./link.ts";
import type { IncomingCopy, OutgoingCopy } from "./snapshot.ts";
import type { ReplicationStats } from "./stats.ts";
import type { HybridClock } from "./versions.ts";

/** What the bookkeeping needs from its node. */
export interface CopyHost {
  /** Id of this node's change stream. */
  readonly streamId: string;
  /** This node's recent changes. */
  readonly backlog: Backlog;
  /** Version clock. */
  readonly hlc: HybridClock;
  /** Counters. */
  readonly stats: ReplicationStats;
  /** The store replicated. */
  store(): Store;
  /** True once the node stops (a sweep then ends early). */
  stopped(): boolean;
  /** Take the store lock (serve threads share it). */
  lockStore(): void;
  /** Release the store lock. */
  unlockStore(): void;
}

/** Full copies in both directions, and the agreed versions. */
export class FullCopies {
  /** Which of our versions the peer has seen (for full copies' exactness rule). */
  readonly agreement: AgreedVersions = new AgreedVersions();
  /** The full copy we send, until the receiver confirmed it (it outlives links). */
  outCopy: OutgoingCopy | null = null;
  /** The full copy we receive or received last (it outlives links). */
  inCopy: IncomingCopy | null = null;
  /** Ids of the copies this process sends. */
  copyIds = 0;
  /** The completed incoming copy whose sweep runs (the copy counts as in progress). */
  #sweepOf: IncomingCopy | null = null;
  #host: CopyHost;

  /** Bookkeeping for `host`. */
  constructor(host: CopyHost) {
    this.#host = host;
  }

  /** True while a completed incoming copy drops what its sender no longer has. */
  get sweeping(): boolean {
    return this.#sweepOf !== null;
  }

  /**
   * Versions up to the returned one: the peer `peerNode` (in `state`) has
   * every one of ours (or removed it since). While a copy to it is
   * unconfirmed, what it had before that copy.
   */
  agreedWith(peerNode: string, knownStream: string, knownOffset: number): number {
    const oc = this.outCopy;
    if (oc !== null && oc.peerNode === peerNode) return oc.agreed;
    if (knownStream !== this.#host.streamId) return 0;
    return this.agreement.upTo(knownOffset);
  }

  /** The link's peer may have caught up with our whole stream: the clock is then agreed. */
  refreshAgreement(link: Link): void {
    const host = this.#host;
    const backlog = host.backlog;
    if (this.outCopy !== null || !link.streaming || link.acked < backlog.end) return;
    host.lockStore(); // serve threads: every version issued so far is in the backlog
    try {
      if (link.acked >= backlog.end) this.agreement.caughtUp(backlog.end, host.hlc.last);
    } finally {
      host.unlockStore();
    }
  }

  /**
   * A full copy was applied: drop the items it did not mention that are
   * not newer than the agreed point (see snapshot.ts), a batch per lock.
   */
  async sweepCopy(ic: IncomingCopy): Promise<void> {
    const host = this.#host;
    if (ic.dropUpTo <= 0) {
      ic.release();
      return;
    }
    let cursor = 0;
    this.#sweepOf = ic;
    try {
      while (cursor >= 0 && this.inCopy === ic && !host.stopped()) {
        await new Promise((r) => setImmediate(r)); // first: the caller holds the store lock
        host.lockStore();
        try {
          cursor = ic.sweep(host.store(), cursor, 4096);
        } finally {
          host.unlockStore();
        }
      }
    } finally {
      if (this.#sweepOf === ic) this.#sweepOf = null;
      if (cursor < 0) ic.release();
    }
    host.stats.copyItemsDropped += ic.dropped;
    if (ic.dropped > 0) {
      log.debug(
        `replication: full copy applied, ${ic.dropped} items the peer no longer has dropped`,
      );
    }
  }
}
