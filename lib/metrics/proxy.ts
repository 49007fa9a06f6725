/**
 * `/metrics` of `memrep proxy`: its counters ({@linkcode ProxyStats}), the
 * state of every backend, and the latency histograms of
 * {@linkcode TimedRouter}. With `-c` (pools) every series has a `pool` label.
 * @module
 */

import type { Backend, ProxyStats, Router } from "../proxy/mod.ts";
import { type Labels, MetricsText, type Sample } from "./exposition.ts";
import { COMMAND_CLASSES, TimedRouter } from "./timed_router.ts";

/** One router to report, with its pool's name when there are pools. */
export interface ProxySource {
  /** Pool name (`-c`), or undefined for the `-s`/`-b` proxy. */
  pool?: string;
  /** The router (a {@linkcode TimedRouter} adds the latency histogram). */
  router: Router;
}

type Counter = readonly [string, string, (s: ProxyStats) => number];

const COUNTERS: readonly Counter[] = [
  ["connections", "Client connections accepted.", (s) => s.totalConnections],
  [
    "rejected_connections",
    "Client connections refused at the limit.",
    (s) => s.rejectedConnections,
  ],
  ["requests", "Client requests handled.", (s) => s.requests],
  ["cmd_get", "Keys looked up (get, gets, gat, gats, mg).", (s) => s.gets],
  ["cmd_write", "Write commands.", (s) => s.writes],
  ["get_hits", "Keys found.", (s) => s.hits],
  ["get_misses", "Keys found nowhere.", (s) => s.misses],
  ["fallbacks", "Reads answered by a backup.", (s) => s.fallbacks],
  [
    "write_fallbacks",
    "Writes done on a backup, the primary down or failing.",
    (s) => s.writeFallbacks,
  ],
  ["repairs", "Items copied back from a backup to their primary.", (s) => s.repairs],
  ["refills", "Refills of returning backups started.", (s) => s.refills],
  ["refill_items", "Items copied to backups by refills.", (s) => s.refillItems],
  ["auth_cmds", "Client login attempts.", (s) => s.authCmds],
  ["auth_errors", "Refused client logins.", (s) => s.authErrors],
];

/** Renders the proxy's exposition text over the routers `sources()` returns at each scrape. */
export function proxyMetrics(sources: () => readonly ProxySource[]): () => string {
  return () => {
    const list = sources();
    const m = new MetricsText();
    const base = (src: ProxySource, extra?: Labels): Labels | undefined =>
      src.pool === undefined ? extra : { pool: src.pool, ...extra };
    const each = (f: (s: ProxyStats) => number): Sample[] =>
      list.map((src) => ({ labels: base(src), value: f(src.router.stats) }));
    const now = Date.now();
    m.gauge(
      "memrep_proxy_uptime_seconds",
      "Seconds since the proxy started.",
      each((s) => Math.floor((now - s.startedAt) / 1000)),
    );
    m.gauge(
      "memrep_proxy_curr_connections",
      "Client connections open now.",
      each((s) => s.currConnections),
    );
    for (const [name, help, f] of COUNTERS) m.counter(`memrep_proxy_${name}_total`, help, each(f));
    const errors: Sample[] = [];
    for (const src of list) {
      const s = src.router.stats;
      errors.push(
        { labels: base(src, { kind: "backend" }), value: s.backendErrors },
        { labels: base(src, { kind: "backup_write" }), value: s.backupWriteErrors },
        { labels: base(src, { kind: "no_backend" }), value: s.noBackend },
        { labels: base(src, { kind: "repair" }), value: s.repairErrors },
      );
      if (src.router instanceof TimedRouter) {
        errors.push({
          labels: base(src, { kind: "client" }),
          value: src.router.times.clientErrors,
        });
      }
    }
    m.counter(
      "memrep_proxy_errors_total",
      "Failures by kind: backend requests, copies to backups, requests with no backend up, repairs, refused client requests.",
      errors,
    );
    const timed = list.filter((src) => src.router instanceof TimedRouter);
    if (timed.length > 0) {
      m.histogram(
        "memrep_proxy_request_duration_seconds",
        "Time from a request's arrival to its reply being ready, by command class.",
        timed.flatMap((src) =>
          COMMAND_CLASSES.map((command, i) => ({
            labels: base(src, { command }),
            histogram: (src.router as TimedRouter).times.byClass[i],
          }))
        ),
      );
    }
    const backends = list.flatMap((src) => src.router.backends.map((b) => ({ src, b })));
    const per = (f: (b: Backend) => number): Sample[] =>
      backends.map(({ src, b }) => ({
        labels: base(
          src,
          b.zone === undefined
            ? { role: b.role, backend: b.name }
            : { role: b.role, backend: b.name, zone: b.zone },
        ),
        value: f(b),
      }));
    const states: Sample[] = [];
    for (const src of list) {
      let up = 0, down = 0;
      for (const b of src.router.backends) b.up ? up++ : down++;
      states.push({ labels: base(src, { state: "up" }), value: up });
      states.push({ labels: base(src, { state: "down" }), value: down });
    }
    m.gauge("memrep_proxy_backends", "Backends (servers and backups) by state.", states);
    m.gauge(
      "memrep_proxy_backend_up",
      "1 while the backend is up, 0 while marked down.",
      per((b) => b.up ? 1 : 0),
    );
    m.counter(
      "memrep_proxy_backend_requests_total",
      "Requests sent to the backend.",
      per((b) => b.requests),
    );
    m.counter(
      "memrep_proxy_backend_errors_total",
      "Connection failures, timeouts and bad replies of the backend.",
      per((b) => b.errors),
    );
    m.counter(
      "memrep_proxy_backend_ejections_total",
      "Times the backend was marked down.",
      per((b) => b.ejections),
    );
    m.gauge(
      "memrep_proxy_backend_queue",
      "Requests sent to the backend and not answered yet (for a backup: copies on their way).",
      per((b) => b.queued),
    );
    m.gauge(
      "memrep_proxy_backend_dirty_keys",
      "Keys changed elsewhere still to invalidate on the backend (-1: it will be flushed).",
      per((b) => b.dirtyKeys),
    );
    const backups = backends.filter(({ b }) => b.role === "backup" || b.zone !== undefined);
    if (backups.length > 0) {
      m.gauge(
        "memrep_proxy_backup_refill_running",
        "1 while a refill of the backup runs.",
        backups.map(({ src, b }) => ({
          labels: base(src, { backend: b.name }),
          value: b.refill === "running" ? 1 : 0,
        })),
      );
    }
    return m.text();
  };
}
