/**
 * nutcracker's stats port (`--stats-port`, `stats_port`): every connection
 * gets one JSON document and is closed. The shape is nutcracker's: service,
 * source, version, uptime, timestamp, connection totals, then one object
 * per pool with its counters and one object per server (keyed by the
 * server's name) with its counters. memrep's backups appear as servers of
 * their pool; counters memrep does not keep are 0. With zones, the pool has
 * its local `zone` and every server its own `zone` (memrep's additions).
 * @module
 */

import { log } from "../log.ts";
import { serverName } from "../client/mod.ts";
import { closeQuietly, writeAll } from "../transport/mod.ts";
import type { ProxyPools } from "./pools.ts";
import type { Backend } from "./pool.ts";

/** One JSON value of the stats document. */
type Json = number | string | { [key: string]: Json };

function serverStats(b: Backend): Record<string, Json> {
  const zone: Record<string, Json> = b.zone === undefined ? {} : { zone: b.zone };
  return {
    ...zone,
    server_eof: 0,
    server_err: b.errors,
    server_timedout: 0,
    server_connections: b.poolSize,
    server_ejected_at: 0,
    requests: b.requests,
    request_bytes: 0,
    responses: 0,
    response_bytes: 0,
    in_queue: 0,
    in_queue_bytes: 0,
    out_queue: 0,
    out_queue_bytes: 0,
  };
}

/** The stats document for `pools` now. */
export function statsJson(pools: ProxyPools, version: string): string {
  const now = Date.now();
  let total = 0, curr = 0;
  for (const p of pools.pools.values()) {
    total += p.router.stats.totalConnections;
    curr += p.router.stats.currConnections;
  }
  const doc: Record<string, Json> = {
    service: "memrep",
    source: hostname(),
    version,
    uptime: Math.floor((now - pools.startedAt) / 1000),
    timestamp: Math.floor(now / 1000),
    total_connections: total,
    curr_connections: curr,
  };
  for (const [name, p] of pools.pools) {
    const s = p.router.stats;
    const pool: Record<string, Json> = {
      client_eof: 0,
      client_err: 0,
      client_connections: s.currConnections,
      server_ejects: p.backends.reduce((n, b) => n + b.ejections, 0),
      forward_error: s.backendErrors + s.noBackend,
      fragments: 0,
    };
    // memrep: the pool's local zone (its servers answer reads first).
    if (p.router.zone !== undefined) pool.zone = p.router.zone;
    const names = new Map<string, string>();
    for (const spec of [...p.config.servers, ...p.config.backups]) {
      names.set(serverName(spec.host, spec.port), spec.name);
    }
    for (const b of p.backends) pool[names.get(b.name) ?? b.name] = serverStats(b);
    doc[name] = pool;
  }
  return JSON.stringify(doc);
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** The stats listener. */
export class StatsPort {
  readonly #listener: Deno.TcpListener;

  /** Bind `hostname:port` (throws if taken) and answer every connection. */
  constructor(hostname: string, port: number, pools: ProxyPools, version: string) {
    this.#listener = Deno.listen({ hostname, port, transport: "tcp" });
    this.#serve(pools, version);
  }

  /** The bound port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  async #serve(pools: ProxyPools, version: string): Promise<void> {
    const enc = new TextEncoder();
    try {
      for await (const conn of this.#listener) {
        writeAll(conn, enc.encode(statsJson(pools, version)))
          .catch(() => {})
          .finally(() => closeQuietly(conn));
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource)) log.warn(`proxy: stats port: ${err}`);
    }
  }

  /** Stop listening. */
  close(): void {
    closeQuietly(this.#listener);
  }
}
