/**
 * What a link needs from the node that owns it ({@linkcode LinkOwner}): its
 * own module so that the contract sits below both sides. It is generic over
 * the link type, so it names neither link.ts nor peer.ts (the owner) and no
 * import cycle forms between them.
 * @module
 */

import type { Store } from "../store/mod.ts";
import type { Backlog } from "./backlog.ts";
import type { LagWindow } from "./lag.ts";
import type { HeldStream } from "./relay.ts";
import type { Merger } from "./merge.ts";
import type { IncomingCopy, KnownStream, OutgoingCopy } from "./snapshot.ts";
import type { ReplicationStats } from "./stats.ts";
import type { HybridClock } from "./versions.ts";

/**
 * What a link needs from the node that owns it (the replicator): its
 * stream, the merge of the peer's, the full-copy bookkeeping that outlives
 * links, and the callbacks for what the peer confirms. Declared apart so
 * that the link does not import the replicator. `L` is the link type
 * (link.ts's `Link`).
 */
export interface LinkOwner<L> {
  /** Id of this node's change stream. */
  readonly streamId: string;
  /** The peer's index in a group's member list (0 for a pair's). */
  readonly index: number;
  /** Version clock. */
  readonly hlc: HybridClock;
  /** This node's recent changes. */
  readonly backlog: Backlog;
  /** Applies the peer's changes. */
  readonly merger: Merger;
  /** Counters. */
  readonly stats: ReplicationStats;
  /** How late the peer's latest changes were applied here (from their versions' clock). */
  readonly applyLags: LagWindow;
  /** The store replicated. */
  readonly store: Store;
  /** The engine's clock (for the copy's expiry times). */
  readonly clock: { readonly processStartUnix: number };
  /** Silence after which the peer counts as dead (ms). */
  readonly timeoutMs: number;
  /** The owner's current link (a replaced link must not publish its position). */
  readonly link: L | null;
  /** Where the peer's stream stands for us (null: never applied, or a copy was cut short). */
  peerStream: { id: string; offset: number } | null;
  /** The full copy we send, until the receiver confirmed it (it outlives links). */
  outCopy: OutgoingCopy | null;
  /** The full copy we receive or received last (it outlives links). */
  inCopy: IncomingCopy | null;
  /** Ids of the copies this process sends. */
  copyIds: number;
  /** True while a completed incoming copy drops what its sender no longer has. */
  readonly sweeping: boolean;
  /** Versions up to the returned one the peer `peerNode` has of ours. */
  agreedWith(peerNode: string, knownStream: string, knownOffset: number): number;
  /** The link's peer may have caught up with our whole stream. */
  refreshAgreement(link: L): void;
  /** A full copy was applied: drop what its sender no longer has. */
  sweepCopy(ic: IncomingCopy): Promise<void>;
  /** The peer applied our stream up to `offset` (`copying`: a full copy is being sent). */
  acked(offset: number, copying: boolean): void;
  /** The peer holds our stream up to `offset`, all of it. */
  confirm(offset: number): void;
  /** The link finished its initial sync. */
  started(link: L): void;
  /** A new full copy to the peer begins (what the copy cannot carry goes on the stream). */
  copyBegun(): void;
  /** The peer sent a version (or flush time) the clock does not accept. */
  rejectedVersion(version: number, what: string): void;
  /** Take the store lock (serve threads share it). */
  lockStore(): void;
  /** Release the store lock. */
  unlockStore(): void;
  /**
   * In a group: a change from the peer's stream taught this node something
   * (Merger.fresh); its bytes go on this node's stream for the other peers.
   */
  forward?(buf: Uint8Array, start: number, end: number, stream: string, streamEnd: number): void;
  /** In a group: this link applied stream frames (the other links' HAVE moves). */
  heard?(): void;
  /**
   * In a group: the other members' streams this node has applied, and how
   * far (sent with a full copy as KNOWN frames, see group.ts, Joining; and
   * as HAVE frames whenever they moved).
   */
  knownStreams?(): HeldStream[];
  /** In a group: a full copy from this peer completed, holding the streams of `known`. */
  copied?(known: KnownStream[]): void;
}
