/**
 * Two-way replication between two `serve` nodes (repcached's job, done
 * with versions, partial resync and authentication), and replica groups of
 * three or more read-write members (group.ts: a full mesh of the pair's
 * links, each member passing on what it learns).
 *
 * A node dials the peer's replication address; when nothing answers it
 * listens there and waits. Once paired, each node sends the other either
 * the part of its change stream the peer missed (partial resync from the
 * backlog) or a full copy with the live stream interleaved, then streams
 * every change (resulting state with its version, never the command).
 * Receivers keep whichever version is newer, so both nodes converge.
 *
 * Choices worth knowing:
 * - Versions are the items' CAS, from a hybrid logical clock (versions.ts);
 *   the later write wins, deletes and flush_all win over older writes
 *   (tombstones, bounded in number; flush epoch). Touches keep the CAS, as
 *   in memcached, and carry a touch version of their own.
 * - A full copy is exact (the receiver drops what the sender removed since
 *   they last agreed, see snapshot.ts), flow-controlled, and resumable: a
 *   link that drops mid-copy goes on from the last acknowledged chunk.
 * - A node receiving a full copy answers from what it has so far: a fresh
 *   node (the usual rejoin) only misses keys not copied yet, never returns
 *   an old value; `stats` shows `repl_copy_in_progress 1` / `repl_link
 *   copying` meanwhile. A node that rejoins with diverged data (a partition
 *   longer than the backlog) may return its older values until the copy
 *   reaches them.
 * - `--repl-sync` acknowledges a write only once the peer applied it; when
 *   no confirmation comes within `--repl-sync-timeout` (peer down, hung,
 *   or copying) the write stays stored and its reply is `SERVER_ERROR
 *   replication peer unavailable`. `--repl-sync-degrade` acknowledges
 *   locally instead while no peer confirms; both are counted in stats and
 *   logged once per down period.
 * - A stop (SIGINT/SIGTERM/shutdown) closes the clients first, then waits
 *   up to `--repl-drain-timeout` for the peer to apply the rest of the
 *   stream ("replication: cleanup complete"), like repcached.
 * - A node restarted with `-e` (warm restart) goes on with its saved stream
 *   and its position in the peer's: each side resumes from the other's
 *   backlog when it still holds that position (resume.ts); a group member
 *   saves and resumes a position per peer.
 * - With several serve threads (-t), worker threads queue their changes
 *   in a shared ring that the main thread's replicator drains (threads.ts).
 * - With `--repl-secret` the connector proves the secret first (the
 *   acceptor is no offline guessing oracle) and the stream is sealed:
 *   MACed records (seal.ts); authenticated, not encrypted. Without it,
 *   anyone who can reach the replication port can write into the cache
 *   (as with memcached's own port).
 * @module
 */

export { Replicator } from "./replicator.ts";
export type { ReplicationOptions } from "./options.ts";
export { decodeResume, type PeerResumeState, type ResumeState } from "./resume.ts";
export type { PairingOptions } from "./pairing.ts";
export { HybridClock, versionAt, versionTime } from "./versions.ts";
export type { Backlog } from "./backlog.ts";
export type { StreamState } from "./handshake.ts";
export type { Link, LinkPhase } from "./link.ts";
export type { Merger } from "./merge.ts";
export type { FrameParser } from "./stream.ts";
export type { ReplicationStats } from "./stats.ts";
export type { HostPort } from "../transport/mod.ts";
export { createReplicationShare, type ReplicationShare, WorkerReplication } from "./threads.ts";
