/**
 * `/metrics` of `memrep serve`: the engine's general `stats` lines (with
 * serve threads already the totals of every thread, replication's lines
 * appended) turned into Prometheus series. Reusing those lines keeps one
 * definition of each number: `stats` and `/metrics` cannot disagree.
 * @module
 */

import { Writer } from "../protocol/mod.ts";
import { MetricsText } from "./exposition.ts";

/** Something that writes memcached's general `stats` lines (an Engine). */
export interface StatsSource {
  /** Append the `STAT name value` lines of a group ("" = general). */
  statsGroup(name: string, out: Writer): boolean;
}

type Kind = "counter" | "gauge";

/** memcached stat -> [series suffix, kind, help]; counters get `_total`. */
const SERVE_SERIES: ReadonlyArray<readonly [string, Kind, string, string]> = [
  ["uptime", "gauge", "uptime_seconds", "Seconds since the server started."],
  ["max_connections", "gauge", "max_connections", "Connection limit (-c)."],
  ["curr_connections", "gauge", "curr_connections", "Client connections open now."],
  ["total_connections", "counter", "connections", "Client connections accepted."],
  ["rejected_connections", "counter", "rejected_connections", "Connections refused at -c."],
  ["cmd_get", "counter", "cmd_get", "Keys requested by retrieval commands."],
  ["cmd_set", "counter", "cmd_set", "Storage commands."],
  ["cmd_flush", "counter", "cmd_flush", "flush_all commands."],
  ["cmd_touch", "counter", "cmd_touch", "Touch commands."],
  ["cmd_meta", "counter", "cmd_meta", "Meta commands."],
  ["get_hits", "counter", "get_hits", "Keys found by retrieval commands."],
  ["get_misses", "counter", "get_misses", "Keys not found by retrieval commands."],
  ["get_expired", "counter", "get_expired", "Retrievals that found an expired item."],
  ["get_flushed", "counter", "get_flushed", "Retrievals that found a flushed item."],
  ["delete_hits", "counter", "delete_hits", "Deletes of an existing key."],
  ["delete_misses", "counter", "delete_misses", "Deletes of a missing key."],
  ["incr_hits", "counter", "incr_hits", "incr of an existing key."],
  ["incr_misses", "counter", "incr_misses", "incr of a missing key."],
  ["decr_hits", "counter", "decr_hits", "decr of an existing key."],
  ["decr_misses", "counter", "decr_misses", "decr of a missing key."],
  ["cas_hits", "counter", "cas_hits", "cas that stored."],
  ["cas_misses", "counter", "cas_misses", "cas of a missing key."],
  ["cas_badval", "counter", "cas_badval", "cas with a stale token."],
  ["touch_hits", "counter", "touch_hits", "Touches of an existing key."],
  ["touch_misses", "counter", "touch_misses", "Touches of a missing key."],
  ["store_too_large", "counter", "store_too_large", "Writes refused as too large."],
  ["store_no_memory", "counter", "store_no_memory", "Writes refused for lack of memory."],
  ["auth_cmds", "counter", "auth_cmds", "Login attempts."],
  ["auth_errors", "counter", "auth_errors", "Refused logins."],
  ["bytes_read", "counter", "read_bytes", "Bytes read from clients."],
  ["bytes_written", "counter", "written_bytes", "Bytes written to clients."],
  ["limit_maxbytes", "gauge", "limit_max_bytes", "Item memory limit (-m)."],
  ["threads", "gauge", "threads", "Serve threads."],
  ["rss_bytes", "gauge", "rss_bytes", "Resident memory of the process."],
  ["bytes", "gauge", "bytes", "Bytes used by items."],
  ["curr_items", "gauge", "curr_items", "Items stored now."],
  ["total_items", "counter", "items", "Items stored since start."],
  ["evictions", "counter", "evictions", "Items evicted to make room."],
  ["reclaimed", "counter", "reclaimed", "Expired items whose memory was reused."],
  ["expired_unfetched", "counter", "expired_unfetched", "Items expired before any read."],
  ["evicted_unfetched", "counter", "evicted_unfetched", "Items evicted before any read."],
];

/** Replication stat -> [series suffix, kind, help, scale]; per-peer series. */
const REPL_SERIES: ReadonlyArray<readonly [string, Kind, string, string, number]> = [
  [
    "repl_lag_ms",
    "gauge",
    "lag_seconds",
    "Age of the oldest change the peer has not acknowledged.",
    1e-3,
  ],
  ["repl_lag_bytes", "gauge", "lag_bytes", "Stream bytes the peer has not acknowledged.", 1],
  [
    "repl_lag_p50_ms",
    "gauge",
    "lag_p50_seconds",
    "Median time from a change to the peer's acknowledgement, of the latest 4096.",
    1e-3,
  ],
  [
    "repl_lag_p99_ms",
    "gauge",
    "lag_p99_seconds",
    "99th percentile of the time from a change to the peer's acknowledgement, of the latest 4096.",
    1e-3,
  ],
  [
    "repl_apply_lag_p99_ms",
    "gauge",
    "apply_lag_p99_seconds",
    "99th percentile of how late the peer's latest 4096 changes were applied here (version clock, ms).",
    1e-3,
  ],
  ["repl_backlog_bytes", "gauge", "backlog_bytes", "Bytes held in the resync backlog.", 1],
  [
    "repl_backlog_size",
    "gauge",
    "backlog_size_bytes",
    "Capacity of the backlog (--repl-backlog).",
    1,
  ],
  ["repl_copy_in_progress", "gauge", "copy_receiving", "1 while a full copy is being received.", 1],
  ["repl_copy_sending", "gauge", "copy_sending", "1 while a full copy is being sent.", 1],
  ["repl_links", "counter", "links", "Links established.", 1],
  ["repl_link_drops", "counter", "link_drops", "Links lost.", 1],
  ["repl_full_copies_sent", "counter", "full_copies_sent", "Full copies sent.", 1],
  ["repl_full_copies_received", "counter", "full_copies_received", "Full copies received.", 1],
  ["repl_partial_resyncs", "counter", "partial_resyncs", "Links resumed from the backlog.", 1],
  ["repl_changes_sent", "counter", "changes_sent", "Local changes put on the stream.", 1],
  ["repl_changes_applied", "counter", "changes_applied", "Peer changes applied.", 1],
  [
    "repl_changes_ignored",
    "counter",
    "changes_ignored",
    "Peer changes older than ours, ignored.",
    1,
  ],
  ["repl_apply_failures", "counter", "apply_failures", "Peer items that could not be stored.", 1],
  [
    "repl_backlog_overflows",
    "counter",
    "backlog_overflows",
    "Times the backlog overran the peer (a full copy followed).",
    1,
  ],
  [
    "repl_sync_failed",
    "counter",
    "sync_failed",
    "--repl-sync writes the peer did not confirm in time.",
    1,
  ],
  [
    "repl_sync_degraded",
    "counter",
    "sync_degraded",
    "--repl-sync-degrade writes acknowledged locally only.",
    1,
  ],
  ["repl_items_copied_sent", "counter", "items_copied_sent", "Items sent in full copies.", 1],
  [
    "repl_items_copied_received",
    "counter",
    "items_copied_received",
    "Items received in full copies.",
    1,
  ],
  ["repl_copy_resumes", "counter", "copy_resumes", "Full copies resumed after a cut link.", 1],
  ["repl_copy_bytes_sent", "counter", "copy_sent_bytes", "Bytes sent in full copies.", 1],
  [
    "repl_copy_items_dropped",
    "counter",
    "copy_items_dropped",
    "Items a full copy removed here (deleted on the sender).",
    1,
  ],
  ["repl_tombstones", "gauge", "tombstones", "Deletes remembered for the merge rules.", 1],
  [
    "repl_versions_rejected",
    "counter",
    "versions_rejected",
    "Peer versions refused (out of range or too far ahead).",
    1,
  ],
  ["repl_bad_peers", "counter", "bad_peers", "Connections refused as not a memrep peer.", 1],
  ["repl_auth_failures", "counter", "auth_failures", "Peers refused for authentication.", 1],
  ["repl_bad_macs", "counter", "bad_macs", "Links closed on a record with a bad MAC.", 1],
  [
    "repl_warm_restored",
    "gauge",
    "warm_restored",
    "1 when this process took over replication state saved with its cache (-e).",
    1,
  ],
  [
    "repl_warm_resumes",
    "counter",
    "warm_resumes",
    "Links on which the peer resumed this node's saved position (no full copy).",
    1,
  ],
];

/** Renders serve's exposition text from `source`'s general and `memrep` stats. */
export function serveMetrics(source: StatsSource): () => string {
  const out = new Writer(4096);
  const decoder = new TextDecoder();
  return () => {
    out.reset();
    source.statsGroup("", out);
    source.statsGroup("memrep", out); // memrep_version, rss_bytes: not in memcached's list
    const stats = parseStatLines(decoder.decode(out.view()));
    const m = new MetricsText();
    m.gauge("memrep_build_info", "Always 1; the labels name the versions.", [{
      labels: { version: stats.get("memrep_version") ?? "", memcached: stats.get("version") ?? "" },
      value: 1,
    }]);
    for (const [stat, kind, suffix, help] of SERVE_SERIES) {
      const v = stats.get(stat);
      if (v === undefined) continue;
      const value = Number(v);
      if (kind === "counter") m.counter(`memrep_${suffix}_total`, help, value);
      else m.gauge(`memrep_${suffix}`, help, value);
    }
    const link = stats.get("repl_link");
    if (link !== undefined) {
      const peer = { peer: stats.get("repl_peer") ?? "" };
      m.gauge(
        "memrep_replication_link_up",
        "1 while the replication link to the peer is established (streaming or copying).",
        [{ labels: peer, value: link === "up" || link === "copying" ? 1 : 0 }],
      );
      for (const [stat, kind, suffix, help, scale] of REPL_SERIES) {
        const v = stats.get(stat);
        if (v === undefined) continue;
        const samples = [{ labels: peer, value: Number(v) * scale }];
        if (kind === "counter") m.counter(`memrep_replication_${suffix}_total`, help, samples);
        else m.gauge(`memrep_replication_${suffix}`, help, samples);
      }
    }
    return m.text();
  };
}

/** `STAT name value` lines as a map (the value is the rest of the line). */
function parseStatLines(text: string): Map<string, string> {
  const stats = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    if (!line.startsWith("STAT ")) continue;
    const space = line.indexOf(" ", 5);
    if (space > 0) stats.set(line.slice(5, space), line.slice(space + 1));
  }
  return stats;
}
