/**
 * `/metrics` of `memrep proxy`: its counters ({@linkcode ProxyStats}), the
 * state of every backend, and the latency histograms of
 * {@linkcode TimedRouter}.
 * @module
 */

import type { Router } from "../proxy/mod.ts";
import { MetricsText, type Sample } from "./exposition.ts";
import { COMMAND_CLASSES, type RequestTimes } from "./timed_router.ts";

/** Renders the proxy's exposition text. */
export function proxyMetrics(router: Router, times?: RequestTimes): () => string {
  return () => {
    const s = router.stats;
    const m = new MetricsText();
    m.gauge(
      "memrep_proxy_uptime_seconds",
      "Seconds since the proxy started.",
      Math.floor((Date.now() - s.startedAt) / 1000),
    );
    m.gauge("memrep_proxy_curr_connections", "Client connections open now.", s.currConnections);
    m.counter("memrep_proxy_connections_total", "Client connections accepted.", s.totalConnections);
    m.counter(
      "memrep_proxy_rejected_connections_total",
      "Client connections refused at -n.",
      s.rejectedConnections,
    );
    m.counter("memrep_proxy_requests_total", "Client requests handled.", s.requests);
    m.counter("memrep_proxy_cmd_get_total", "Keys looked up (get, gets, gat, gats, mg).", s.gets);
    m.counter("memrep_proxy_cmd_write_total", "Write commands.", s.writes);
    m.counter("memrep_proxy_get_hits_total", "Keys found.", s.hits);
    m.counter("memrep_proxy_get_misses_total", "Keys found nowhere.", s.misses);
    m.counter("memrep_proxy_fallbacks_total", "Reads answered by a backup.", s.fallbacks);
    m.counter(
      "memrep_proxy_write_fallbacks_total",
      "Writes done on a backup, the primary down or failing.",
      s.writeFallbacks,
    );
    m.counter(
      "memrep_proxy_repairs_total",
      "Items copied back from a backup to their primary.",
      s.repairs,
    );
    m.counter("memrep_proxy_refills_total", "Refills of returning backups started.", s.refills);
    m.counter(
      "memrep_proxy_refill_items_total",
      "Items copied to backups by refills.",
      s.refillItems,
    );
    m.counter("memrep_proxy_auth_cmds_total", "Client login attempts.", s.authCmds);
    m.counter("memrep_proxy_auth_errors_total", "Refused client logins.", s.authErrors);
    const errors: Sample[] = [
      { labels: { kind: "backend" }, value: s.backendErrors },
      { labels: { kind: "backup_write" }, value: s.backupWriteErrors },
      { labels: { kind: "no_backend" }, value: s.noBackend },
      { labels: { kind: "repair" }, value: s.repairErrors },
    ];
    if (times) errors.push({ labels: { kind: "client" }, value: times.clientErrors });
    m.counter(
      "memrep_proxy_errors_total",
      "Failures by kind: backend requests, copies to backups, requests with no backend up, repairs, refused client requests.",
      errors,
    );
    if (times) {
      m.histogram(
        "memrep_proxy_request_duration_seconds",
        "Time from a request's arrival to its reply being ready, by command class.",
        COMMAND_CLASSES.map((c, i) => ({ labels: { command: c }, histogram: times.byClass[i] })),
      );
    }
    const backends = [...router.servers, ...router.backups];
    const per = (f: (b: typeof backends[number]) => number): Sample[] =>
      backends.map((b) => ({ labels: { role: b.role, backend: b.name }, value: f(b) }));
    let up = 0, down = 0;
    for (const b of backends) b.up ? up++ : down++;
    m.gauge("memrep_proxy_backends", "Backends (servers and backups) by state.", [
      { labels: { state: "up" }, value: up },
      { labels: { state: "down" }, value: down },
    ]);
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
    const backups = router.backups;
    if (backups.length > 0) {
      m.gauge(
        "memrep_proxy_backup_refill_running",
        "1 while a refill of the backup runs.",
        backups.map((b) => ({
          labels: { backend: b.name },
          value: b.refill === "running" ? 1 : 0,
        })),
      );
    }
    return m.text();
  };
}
