/**
 * The options of `serve --replicate`, in their own module so that what
 * reads them (the replicator, its stats lines) need not import each other.
 * @module
 */

import type { HostPort } from "../transport/mod.ts";
import type { PairingOptions } from "./pairing.ts";
import type { ResumeState } from "./resume.ts";

/** How `serve --replicate` pairs with its peer, or joins its group. */
export interface ReplicationOptions {
  /** Peer's replication address (a pair). */
  peer: HostPort;
  /** Where to listen: a pair's when the peer does not answer; a group member's own address. */
  listen: HostPort;
  /** A group of 3 or more: every member's replication address, and which one is this node. */
  group?: { members: HostPort[]; self: number };
  /** Shared secret. */
  secret?: string;
  /** Acknowledge client writes after the peers applied them. */
  sync: boolean;
  /** With `sync`: "all" (every live peer, the default) or "quorum" (a majority, the writer counted). */
  syncMode?: "all" | "quorum";
  /**
   * With `sync`: acknowledge locally (counted) while no peer confirms,
   * instead of answering SERVER_ERROR.
   */
  syncDegrade?: boolean;
  /** With `sync`: how long a write waits for the peer (ms; default `timeoutMs`). */
  syncTimeoutMs?: number;
  /** Silence (ms) after which the peer counts as dead. */
  timeoutMs: number;
  /** Backlog bytes. */
  backlogBytes: number;
  /** On stop: how long to wait for the peer to apply what it has not yet (ms; default 10000). */
  drainTimeoutMs?: number;
  /** TLS on the link (--repl-tls-*; see {@linkcode PairingOptions}). */
  tls?: PairingOptions["tls"];
  /**
   * What a stopped process of this node saved with its cache (serve -e):
   * the store given holds that cache; replication goes on from there.
   */
  resume?: ResumeState;
}
