/**
 * `stats` and its groups (general, settings, items, slabs, sizes, conns,
 * detail, cachedump, reset, memrep's own), in memcached's line order.
 * @module
 */

import { decodeAscii, REPLY, type Request, type Writer } from "../protocol/mod.ts";
import process from "node:process";
import { MEMREP_VERSION } from "../version.ts";
import { SLAB_STAT_NAMES, statLine } from "./stats.ts";
import { cachedump } from "./admin.ts";
import type { ConnRow } from "./conns.ts";
import { type EngineBase, VERSION } from "./engine.ts";
import { type BindingProtocol, defaultStartupSettings } from "./engine_options.ts";
import type { Session } from "./session.ts";

/** `stats settings` binding_protocol, as memcached's prot_text() names them. */
const BINDING_NAME: Record<BindingProtocol, string> = {
  auto: "auto-negotiate",
  ascii: "ascii",
  binary: "binary",
};

/** `stats [group]`: the lines of the group, then END (or ERROR). */
export function statsCommand(e: EngineBase, req: Request, out: Writer, session: Session): void {
  if (req.ntokens === 1) {
    statsGroup(e, "", out);
  } else if (req.tokenIs(1, "reset")) {
    e.resetStats();
    out.bytes(REPLY.RESET);
    return;
  } else if (req.tokenIs(1, "conns")) {
    const peers = e.peers;
    if (peers === null) e.conns.write(out, session);
    else {
      // The other threads answer through the event loop: the reply follows, outside the lock.
      let others: ConnRow[] | null = null;
      session.more = (o) => {
        if (others === null) return peers.askConns().then((rows) => void (others = rows));
        e.conns.write(o, session, others);
        o.bytes(REPLY.END);
        return true;
      };
      return;
    }
  } else if (req.tokenIs(1, "detail")) {
    statsDetail(e, req, out);
    return;
  } else if (req.tokenIs(1, "cachedump")) {
    if (e.options.startup?.dumpEnabled === false) {
      out.text("CLIENT_ERROR stats cachedump not allowed\r\n");
    } else cachedump(req, out, e.store, e.clock.processStartUnix);
    return;
  } else if (!statsGroup(e, decodeAscii(req.buf, req.tokStart[1], req.tokEnd[1]), out)) {
    out.bytes(REPLY.ERROR);
    return;
  }
  out.bytes(REPLY.END);
}

/**
 * The `STAT name value` lines of a stats group ("" = general, settings,
 * items, slabs, sizes, then memrep's own groups), without END. False
 * for an unknown group. The binary protocol re-frames these lines.
 */
export function statsGroup(e: EngineBase, name: string, out: Writer): boolean {
  switch (name) {
    case "":
      generalStats(e, out);
      return true;
    case "settings":
      settingsStats(e, out);
      return true;
    case "items": {
      // Without the LRU maintainer memcached has no segments, and lists no lines for them.
      const segmented = (e.options.startup ?? defaultStartupSettings()).lruMaintainer;
      for (const row of e.store.itemStats()) {
        for (const [field, value] of row.fields) {
          if (segmented || !MAINTAINER_ITEM_FIELDS.has(field)) {
            statLine(out, `items:${row.id}:${field}`, value);
          }
        }
      }
      return true;
    }
    case "slabs": {
      let total = 0;
      const counts = e.totals();
      for (const row of e.store.slabStats()) {
        total++;
        for (const [field, value] of row.fields) statLine(out, `${row.id}:${field}`, value);
        for (const [i, field] of SLAB_STAT_NAMES.entries()) {
          statLine(out, `${row.id}:${field}`, counts.slabCount(i, row.id));
        }
      }
      statLine(out, "active_slabs", total);
      statLine(out, "total_malloced", e.store.stats.totalMalloced);
      return true;
    }
    case "sizes":
      statLine(out, "sizes_status", "disabled");
      return true;
    case "memrep":
      memrepStats(e, out);
      return true;
  }
  const group = e.statsGroups[name];
  if (!group) return false;
  group(out);
  return true;
}

/** `stats detail on|off|dump` (memcached's process_stats_detail). */
function statsDetail(e: EngineBase, req: Request, out: Writer): void {
  const prefixes = e.prefixStats;
  if (req.ntokens >= 3 && req.tokenIs(2, "on")) {
    prefixes.enabled = true;
    out.bytes(REPLY.OK);
  } else if (req.ntokens >= 3 && req.tokenIs(2, "off")) {
    prefixes.enabled = false;
    out.bytes(REPLY.OK);
  } else if (req.ntokens >= 3 && req.tokenIs(2, "dump")) prefixes.dump(out);
  else out.bytes(REPLY.DETAIL_USAGE);
}

/** memcached's slab mover lines (with `slab_reassign`, its default). */
const SLAB_MOVER_LINES: Array<[string, number]> = [
  "slab_reassign_rescues",
  "slab_reassign_chunk_rescues",
  "slab_reassign_evictions_nomem",
  "slab_reassign_inline_reclaim",
  "slab_reassign_busy_items",
  "slab_reassign_busy_deletes",
  "slab_reassign_running",
  "slabs_moved",
].map((name) => [name, 0]);
/** The LRU crawler's lines (while `lru_crawler` is on). */
const CRAWLER_LINES: Array<[string, number]> = [["lru_crawler_running", 0], [
  "lru_crawler_starts",
  0,
]];
/** The LRU maintainer's moves, at the end of the item totals (with `lru_maintainer`). */
const MAINTAINER_MOVES: Array<[string, number]> = [
  "moves_to_cold",
  "moves_to_warm",
  "moves_within_lru",
  "direct_reclaims",
  "lru_bumps_dropped",
].map((name) => [name, 0]);
/** `stats items` fields memcached lists only with the LRU maintainer (its segmented LRU). */
const MAINTAINER_ITEM_FIELDS = new Set([
  "number_hot",
  "number_warm",
  "number_cold",
  "age_hot",
  "age_warm",
  "evicted_active",
  "moves_to_cold",
  "moves_to_warm",
  "moves_within_lru",
  "direct_reclaims",
  "hits_to_hot",
  "hits_to_warm",
  "hits_to_cold",
  "hits_to_temp",
]);
/** The LRU maintainer's line (with `lru_maintainer`). */
const MAINTAINER_LINES: Array<[string, number]> = [["lru_maintainer_juggles", 0]];

/**
 * `stats memrep`: what memrep adds to memcached's general stats (which
 * keep memcached's names and count, as clients and memcached's tests
 * expect): its version, the process's memory and the heap trims after
 * connection bursts.
 */
function memrepStats(e: EngineBase, out: Writer): void {
  const usage = Deno.memoryUsage();
  statLine(out, "memrep_version", MEMREP_VERSION);
  statLine(out, "rss_bytes", usage.rss);
  statLine(out, "heap_used_bytes", usage.heapUsed);
  statLine(out, "heap_total_bytes", usage.heapTotal);
  statLine(out, "heap_trims", e.totals().heapTrims);
}

function generalStats(e: EngineBase, out: Writer): void {
  const s = e.totals(), st = e.store.stats;
  const cpu = cpuUsage();
  const set = e.tunables.set;
  const startup = e.options.startup ?? defaultStartupSettings();
  const crawled = e.store.crawlerTotals();
  const lines: Array<[string, string | number]> = [
    ["pid", Deno.pid],
    ["uptime", e.clock.uptime()],
    ["time", e.clock.unixNow()],
    ["version", VERSION],
    ["libevent", "deno"],
    ["pointer_size", 64],
    ["rusage_user", cpu.user],
    ["rusage_system", cpu.system],
    ["max_connections", e.options.maxConnections ?? 1024],
    ["curr_connections", s.currConnections],
    ["total_connections", s.totalConnections],
    ["rejected_connections", s.rejectedConnections],
    ["connection_structures", s.currConnections],
    // memcached's response objects, read buffers and reserved fds: memrep has none of these.
    ["response_obj_oom", 0],
    ["response_obj_count", 0],
    ["response_obj_bytes", 0],
    ["read_buf_count", 0],
    ["read_buf_bytes", 0],
    ["read_buf_bytes_free", 0],
    ["read_buf_oom", s.readBufOom],
    ["reserved_fds", 0],
    ["cmd_get", s.cmdGet],
    ["cmd_set", s.cmdSet],
    ["cmd_flush", s.cmdFlush],
    ["cmd_touch", s.cmdTouch],
    ["cmd_meta", s.cmdMeta],
    ["get_hits", s.getHits],
    ["get_misses", s.getMisses],
    ["get_expired", st.getExpired],
    ["get_flushed", st.getFlushed],
    ["delete_misses", s.deleteMisses],
    ["delete_hits", s.deleteHits],
    ["incr_misses", s.incrMisses],
    ["incr_hits", s.incrHits],
    ["decr_misses", s.decrMisses],
    ["decr_hits", s.decrHits],
    ["cas_misses", s.casMisses],
    ["cas_hits", s.casHits],
    ["cas_badval", s.casBadval],
    ["touch_hits", s.touchHits],
    ["touch_misses", s.touchMisses],
    ["store_too_large", s.storeTooLarge],
    ["store_no_memory", s.storeNoMemory],
    ["auth_cmds", s.authCmds],
    ["auth_errors", s.authErrors],
    ...(e.conns.idleTimeout > 0 ? [["idle_kicks", s.idleKicks] as [string, number]] : []),
    ["bytes_read", s.bytesRead],
    ["bytes_written", s.bytesWritten],
    ["limit_maxbytes", st.limitMaxbytes],
    ["accepting_conns", 1],
    ["listen_disabled_num", 0], // over -c memrep refuses the connection (rejected_connections)
    ["time_in_listen_disabled_us", 0],
    ["threads", e.threads],
    ["conn_yields", s.connYields],
    ["hash_power_level", st.hashPowerLevel],
    ["hash_bytes", st.hashBytes],
    ["hash_is_expanding", st.hashIsExpanding ? 1 : 0],
    // memcached's slab mover, crawler and LRU maintainer: memrep runs none, but lists
    // their lines where memcached does (the settings that would start them).
    ...(set.slabReassign ? SLAB_MOVER_LINES : []),
    ...(set.lruCrawler ? CRAWLER_LINES : []),
    ...(startup.lruMaintainer ? MAINTAINER_LINES : []),
    ["malloc_fails", 0],
    ["log_worker_dropped", 0],
    ["log_worker_written", 0],
    ["log_watcher_skipped", 0],
    ["log_watcher_sent", 0],
    ["log_watchers", e.watchers.count],
    ["unexpected_napi_ids", 0],
    ["round_robin_fallback", 0],
    ["bytes", st.bytes],
    ["curr_items", st.currItems],
    ["total_items", st.totalItems],
    ["slab_global_page_pool", 0],
    ["expired_unfetched", st.expiredUnfetched],
    ["evicted_unfetched", st.evictedUnfetched],
    ...(startup.lruMaintainer ? [["evicted_active", 0] as [string, number]] : []),
    ["evictions", st.evictions],
    ["reclaimed", st.reclaimed],
    ["crawler_reclaimed", crawled[0]],
    ["crawler_items_checked", crawled[1]],
    ["lrutail_reflocked", 0],
    ...(startup.lruMaintainer ? MAINTAINER_MOVES : []),
  ];
  for (const [name, value] of lines) statLine(out, name, value);
  e.extraStats?.(out);
}

function settingsStats(e: EngineBase, out: Writer): void {
  const o = e.options;
  const st = o.startup ?? defaultStartupSettings();
  // memcached's process_stat_settings order (its extstore ext_* lines left out: no extstore).
  const tunables = e.tunables.settingsLines();
  const lines: Array<[string, string | number]> = [
    ["maxbytes", e.store.stats.limitMaxbytes],
    ["maxconns", o.maxConnections ?? 1024],
    ["tcpport", o.port ?? 0],
    ["udpport", o.udpPort ?? 0],
    ["inter", o.listenArg ?? "NULL"],
    ["verbosity", e.verbosity],
    ["oldest", e.store.oldestLive],
    ["evictions", o.evict ? "on" : "off"],
    ["domain_socket", o.unixSocket ?? "NULL"],
    ["umask", (o.unixMask ?? 0o700).toString(8)],
    ["shutdown_command", o.enableShutdown ? "yes" : "no"],
    ["growth_factor", (o.growthFactor ?? 1.25).toFixed(2)],
    ["chunk_size", o.minChunk ?? 48],
    ["num_threads", e.threads],
    // memcached: each thread serves the UDP socket, one only when -l lists several addresses.
    ["num_threads_per_udp", o.listenArg?.includes(",") ? 1 : e.threads],
    ["stat_key_prefix", String.fromCharCode(e.prefixStats.delimiter)],
    ["detail_enabled", e.prefixStats.enabled ? "yes" : "no"],
    ["reqs_per_event", e.reqsPerEvent],
    ["cas_enabled", st.casEnabled ? "yes" : "no"],
    ["tcp_backlog", st.tcpBacklog],
    ["binding_protocol", BINDING_NAME[o.protocol ?? "auto"]],
    ["auth_enabled_sasl", o.auth?.sasl ? "yes" : "no"],
    ["auth_enabled_ascii", o.auth?.authFile ?? "no"],
    ["item_size_max", o.maxItemSize],
    ["maxconns_fast", st.maxconnsFast ? "yes" : "no"],
    ["hashpower_init", st.hashpowerInit],
    ...tunables.slice(0, 3), // slab_reassign, slab_automove, slab_automove_ratio
    ["slab_automove_window", st.slabAutomoveWindow],
    ["slab_chunk_max", o.slabChunkMax ?? 524288],
    ...tunables.slice(3, 6), // lru_crawler, lru_crawler_sleep, lru_crawler_tocrawl
    ["tail_repair_time", st.tailRepairTime],
    ["flush_enabled", o.flushDisabled ? "no" : "yes"],
    ["dump_enabled", st.dumpEnabled ? "yes" : "no"],
    ["hash_algorithm", st.hashAlgorithm],
    ["lru_maintainer_thread", st.lruMaintainer ? "yes" : "no"],
    ...tunables.slice(6), // lru_segmented ... temporary_ttl
    ["idle_timeout", e.conns.idleTimeout],
    ["watcher_logbuf_size", st.watcherLogbufSize],
    ["worker_logbuf_size", st.workerLogbufSize],
    ["read_buf_mem_limit", o.readBufMemLimit ?? 0],
    ["track_sizes", "no"],
    ["inline_ascii_response", "no"],
    ["slab_automove_freeratio", "0.010"],
    ...(o.extraSettings ?? []),
    ["num_napi_ids", st.napiIds > 0 ? st.napiIds : "(null)"],
    ["memory_file", o.memoryFile ?? "(null)"],
  ];
  for (const [name, value] of lines) statLine(out, name, value);
}

/** Process CPU time in seconds "s.micros", like memcached's rusage stats. */
function cpuUsage(): { user: string; system: string } {
  const fmt = (us: number) =>
    `${Math.floor(us / 1e6)}.${String(Math.floor(us % 1e6)).padStart(6, "0")}`;
  const u = process.cpuUsage();
  return { user: fmt(u.user), system: fmt(u.system) };
}
