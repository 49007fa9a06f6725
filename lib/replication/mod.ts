/**
 * Two-way replication between two `serve` nodes (repcached's job, done
 * with versions, partial resync and authentication).
 * @module
 */

import type { Server } from "../server/mod.ts";
import type { HostPort } from "../cli/flags.ts";

/** How `serve --replicate` pairs with its peer. */
export interface ReplicationOptions {
  /** The peer's replication address (connect here first). */
  peer: HostPort;
  /** Where to listen when the peer does not answer. */
  listen: HostPort;
  /** Shared secret for the handshake, if any. */
  secret?: string;
  /** Acknowledge client writes only after the peer applied them. */
  sync: boolean;
  /** Silence after which the peer counts as dead, in ms. */
  timeoutMs: number;
  /** Bytes of changes kept for partial resync. */
  backlogBytes: number;
}

/** Start replicating `server` with its peer; resolves to a stop function. */
export function startReplication(
  _server: Server,
  _options: ReplicationOptions,
): Promise<() => Promise<void>> {
  return Promise.reject(new Error("replication is not implemented yet"));
}
