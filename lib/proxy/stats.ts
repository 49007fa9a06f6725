/**
 * The proxy's counters and two of its `stats` replies: magent's server list
 * (`stats agent`) and the counters and backend states as `STAT name value`
 * lines (`stats proxy`).
 * @module
 */

import { PROTOCOL_VERSION } from "../protocol/mod.ts";
import type { Backend } from "./pool.ts";
import { replyBudget } from "./budget.ts";

/** magent's version line prefix, kept so scripts that read `stats` still match. */
export const AGENT_VERSION = "0.6-memrep";

/**
 * What `version` answers: the memcached protocol level the proxy speaks
 * (text + meta, as `memrep serve`), so clients detect meta support.
 */
export const PROXY_VERSION: string = PROTOCOL_VERSION;

/** Proxy-wide counters. */
export class ProxyStats {
  /** When the proxy started (ms since the epoch). */
  readonly startedAt: number = Date.now();
  /** Client connections open now. */
  currConnections = 0;
  /** Client connections accepted since start. */
  totalConnections = 0;
  /** Client connections refused for -n. */
  rejectedConnections = 0;
  /** Client requests handled (a binary request counts as the text requests it is restated as). */
  requests = 0;
  /** Binary protocol request packets received. */
  binaryRequests = 0;
  /** Keys looked up by get/gets/gat/gats/mg. */
  gets = 0;
  /** Write commands (storage, delete, arithmetic, touch, ms/md/ma). */
  writes = 0;
  /** Keys found. */
  hits = 0;
  /** Keys not found anywhere. */
  misses = 0;
  /** Reads answered by a backup (primary down, failed or missing the key). */
  fallbacks = 0;
  /** Writes whose primary was down or failed, done on a backup instead. */
  writeFallbacks = 0;
  /** Items copied back from a backup to their primary. */
  repairs = 0;
  /** Repairs that failed. */
  repairErrors = 0;
  /** Requests whose backend failed (connection lost, timeout, bad reply). */
  backendErrors = 0;
  /** Copies of writes to backups that failed. */
  backupWriteErrors = 0;
  /** Requests answered with "no backend available". */
  noBackend = 0;
  /** Client login attempts (--auth-file), as memcached's auth_cmds. */
  authCmds = 0;
  /** Refused client logins, as memcached's auth_errors. */
  authErrors = 0;
  /** Refills of returning backups started. */
  refills = 0;
  /** Items copied to backups by refills. */
  refillItems = 0;
  /** Heap trims after connection bursts (see lib/transport/burst_trim.ts). */
  heapTrims = 0;

  /** `stats reset`: every counter back to 0 but the open connections. */
  reset(): void {
    const curr = this.currConnections;
    Object.assign(this, new ProxyStats(), { startedAt: this.startedAt, currConnections: curr });
  }
}

/** magent's `stats` reply: version line, one line per server, END. */
export function agentStats(servers: readonly Backend[], backups: readonly Backend[]): string {
  let s = `memcached agent v${AGENT_VERSION}\r\n`;
  for (const b of servers) s += `matrix ${b.number} -> ${b.name}, pool size ${b.poolSize}\r\n`;
  for (const b of backups) s += `backup ${b.number} -> ${b.name}, pool size ${b.poolSize}\r\n`;
  return s + "END\r\n";
}

/**
 * `stats proxy`: counters and per-backend state as STAT lines, then END.
 * `zone`: the proxy's zone and the number of zones (servers in zones only).
 */
export function proxyStats(
  stats: ProxyStats,
  servers: readonly Backend[],
  backups: readonly Backend[],
  zone?: { name: string; count: number },
): string {
  const now = Date.now();
  const rows: [string, string | number][] = [
    ["pid", Deno.pid],
    ["uptime", Math.floor((now - stats.startedAt) / 1000)],
    ["time", Math.floor(now / 1000)],
    ["version", AGENT_VERSION],
    ["curr_connections", stats.currConnections],
    ["total_connections", stats.totalConnections],
    ["rejected_connections", stats.rejectedConnections],
    ["requests", stats.requests],
    ["binary_requests", stats.binaryRequests],
    ["cmd_get", stats.gets],
    ["cmd_write", stats.writes],
    ["hits", stats.hits],
    ["misses", stats.misses],
    ["fallbacks", stats.fallbacks],
    ["write_fallbacks", stats.writeFallbacks],
    ["repairs", stats.repairs],
    ["repair_errors", stats.repairErrors],
    ["backend_errors", stats.backendErrors],
    ["backup_write_errors", stats.backupWriteErrors],
    ["no_backend", stats.noBackend],
    ["auth_cmds", stats.authCmds],
    ["auth_errors", stats.authErrors],
    ["refills", stats.refills],
    ["refill_items", stats.refillItems],
    ["heap_trims", stats.heapTrims],
    // Reply bytes the client connections hold (pending ones estimated) and their bound.
    ["buffered_bytes", replyBudget.bytes],
    ["buffered_limit", replyBudget.limit],
  ];
  if (zone !== undefined) {
    // The proxy's zone and how many zones hold a copy (other zones' servers are listed as backups).
    rows.push(["zone", zone.name]);
    rows.push(["zones", zone.count]);
  }
  let ejections = 0;
  for (const b of [...servers, ...backups]) ejections += b.ejections;
  rows.push(["ejections", ejections]);
  for (const b of [...servers, ...backups]) {
    const p = `${b.role}:${b.name}`;
    rows.push([`${p}:state`, b.up ? "up" : "down"]);
    if (b.zone !== undefined) rows.push([`${p}:zone`, b.zone]);
    rows.push([`${p}:pool_size`, b.poolSize]);
    rows.push([`${p}:requests`, b.requests]);
    rows.push([`${p}:errors`, b.errors]);
    rows.push([`${p}:ejections`, b.ejections]);
    rows.push([`${p}:dirty_keys`, b.dirtyKeys]);
    rows.push([`${p}:retries`, b.retries]);
    rows.push([`${p}:overflows`, b.overflows]);
    if (b.role === "backup" || b.zone !== undefined) {
      rows.push([`${p}:refill`, b.refill]);
      rows.push([`${p}:refill_items`, b.refillItems]);
      rows.push([`${p}:refill_runs`, b.refillRuns]);
    }
  }
  return rows.map(([k, v]) => `STAT ${k} ${v}\r\n`).join("") + "END\r\n";
}
