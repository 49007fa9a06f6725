/**
 * The replication section of `stats` (the `repl_*` lines, then a group's
 * per-member ones): what each line is named and where its value comes
 * from. Split from replicator.ts, which keeps the replication itself.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";
import { statLine } from "../server/mod.ts";
import type { Backlog } from "./backlog.ts";
import { type GroupPairing, writeGroupStats } from "./group.ts";
import type { Merger } from "./merge.ts";
import type { ReplicationOptions } from "./options.ts";
import type { Pairing } from "./pairing.ts";
import type { Peer } from "./peer.ts";
import { ReplicationStats } from "./stats.ts";
import type { MainReplicationShare } from "./threads.ts";

/** What the stats lines read of the replicator (its private parts included). */
export interface StatsSource {
  /** This process's node id. */
  readonly nodeId: string;
  /** The peers: the pair's one, or the other members of the group. */
  readonly peers: Peer[];
  /** Counters of the node (the peers' own are added). */
  readonly stats: ReplicationStats;
  /** This node's recent changes. */
  readonly backlog: Backlog;
  /** Applies the peers' changes (its tombstones are counted). */
  readonly merger: Merger;
  /** How the node replicates. */
  readonly options: ReplicationOptions;
  /** A group's pairing (null for a pair). */
  readonly group: GroupPairing | null;
  /** A pair's pairing (null in a group). */
  readonly pairing: Pairing | null;
  /** Worker threads' share (null with one serve thread). */
  readonly shared: MainReplicationShare | null;
}

/** Append the replication `STAT` lines of `n`. */
export function writeReplicationStats(out: Writer, n: StatsSource): void {
  const peers = n.peers;
  const first = peers[0];
  const link = n.group ? null : first.link;
  const s = ReplicationStats.sum([n.stats, ...peers.map((p) => p.stats)]);
  const shared = n.shared?.syncCounts();
  const state = n.group ? n.group.linkState() : link ? link.phase : n.pairing!.state;
  const copying = peers.some((p) => p.link?.receivingCopy || p.sweeping);
  const lines: Array<[string, string | number]> = [
    ["repl_node_id", n.nodeId],
    ["repl_role", n.group ? "group" : link ? link.role : "none"],
    ["repl_peer", n.group ? peers.map((p) => p.address).join(",") : n.pairing!.peerText],
    ["repl_link", state],
    ["repl_sync", n.options.sync ? 1 : 0],
    ["repl_sync_degrade", n.options.syncDegrade ? 1 : 0],
    ["repl_sync_timeout_ms", n.options.syncTimeoutMs ?? n.options.timeoutMs],
    ["repl_sync_degraded", s.syncDegraded + (shared?.degraded ?? 0)],
    ["repl_sync_failed", s.syncRefused + (shared?.refused ?? 0)],
    ["repl_copy_in_progress", copying ? 1 : 0],
    ["repl_copy_sending", peers.some((p) => p.link?.sendingCopy) ? 1 : 0],
    ["repl_lag_ms", Math.max(...peers.map((p) => p.lagMs()))],
    ["repl_lag_bytes", Math.max(...peers.map((p) => p.lagBytes()))],
    ["repl_last_ack_ms", Math.round(Math.max(...peers.map((p) => p.lag.lastMs)) * 1000) / 1000],
    // Of the latest acknowledged changes (lag.ts): the slowest peer's.
    ["repl_lag_p50_ms", Math.max(...peers.map((p) => p.lag.ackedLags.percentileMs(0.5)))],
    ["repl_lag_p99_ms", Math.max(...peers.map((p) => p.lag.ackedLags.percentileMs(0.99)))],
    // How late the peers' latest changes came here (link.ts): the latest peer's.
    ["repl_apply_lag_p50_ms", Math.max(...peers.map((p) => p.applyLags.percentileMs(0.5)))],
    ["repl_apply_lag_p99_ms", Math.max(...peers.map((p) => p.applyLags.percentileMs(0.99)))],
    ["repl_backlog_bytes", n.backlog.used],
    ["repl_backlog_size", n.backlog.capacity],
    ["repl_stream_offset", n.backlog.end],
    ["repl_links", s.links],
    ["repl_link_drops", s.linkDrops],
    ["repl_full_copies_sent", s.fullCopiesSent],
    ["repl_full_copies_received", s.fullCopiesReceived],
    ["repl_partial_resyncs", s.partialResyncs],
    ["repl_items_copied_sent", s.itemsCopiedSent],
    ["repl_items_copied_received", s.itemsCopiedReceived],
    ["repl_changes_sent", s.changesOut],
    ["repl_changes_applied", s.changesApplied],
    ["repl_changes_ignored", s.changesIgnored],
    ["repl_apply_failures", s.applyFailures],
    ["repl_backlog_overflows", s.backlogOverflows],
    ["repl_copy_resumes", s.copyResumes],
    ["repl_copy_bytes_sent", s.copyBytesSent],
    ["repl_copy_items_dropped", s.copyItemsDropped],
    ["repl_tombstones", n.merger.tombstones.size],
    ["repl_auth_failures", s.authFailures],
    ["repl_bad_peers", s.badPeers],
    ["repl_versions_rejected", s.versionsRejected],
    ["repl_bad_macs", s.badMacs],
    ["repl_tls_failures", s.tlsFailures],
    ["repl_warm_restored", s.warmRestored],
    ["repl_warm_resumes", s.warmResumes],
  ];
  for (const [name, value] of lines) statLine(out, name, value);
  if (n.group) writeGroupStats(out, n.group, peers, s.changesForwarded);
}
