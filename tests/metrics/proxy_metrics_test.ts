/**
 * `memrep proxy --metrics` over real memcached: /metrics parsed strictly;
 * requests, hits and misses, the latency histogram per command class,
 * client errors, backend up/down, fallbacks and repairs follow what happens.
 */

import {
  connect,
  equal,
  freePort,
  ignoreUnless,
  ok,
  startMemcached,
  waitUntil,
} from "../helpers/mod.ts";
import { type Cluster, proxyStats, startCluster } from "../proxy/cluster.ts";
import { fill, startConfigProxy } from "../proxy/nc_config.ts";
import { type PromFamily, sampleValue, scrape } from "./prom_parser.ts";

/** Reply timeout: generous, the machine may be loaded. */
const T = 10_000;

const NEED = ignoreUnless("proxy metrics", ["memcached"]);

/**
 * `servers` primaries and a backup behind a proxy with `--timeout` `timeout`
 * that serves /metrics; and the metrics port.
 */
async function startMetered(servers: number, timeout: string): Promise<[Cluster, number]> {
  const mport = freePort();
  const cluster = await startCluster({
    servers,
    backups: 1,
    proxyArgs: ["--timeout", timeout, "--retry", "200", "--metrics", `127.0.0.1:${mport}`],
  });
  return [cluster, mport];
}

function total(f: Map<string, PromFamily>, name: string, labels?: Record<string, string>) {
  return sampleValue(f, name, labels);
}

Deno.test({
  name: "proxy metrics: requests, latency, errors, backends up/down, fallbacks and repairs",
  ignore: NEED,
  async fn() {
    const [cluster, mport] = await startMetered(2, "500");
    const c = await connect(cluster.proxy.port);
    try {
      const before = (await scrape(mport)).families;
      equal(total(before, "memrep_proxy_backends", { state: "up" }), 3);
      for (const s of [...cluster.servers, ...cluster.backups]) {
        const backend = `127.0.0.1:${s.port}`;
        equal(total(before, "memrep_proxy_backend_up", { backend }), 1, backend);
        ok(total(before, "memrep_proxy_backend_queue", { backend }) >= 0);
      }
      const tag = Math.random().toString(36).slice(2, 8);
      const n = 40 + Math.floor(Math.random() * 40), misses = 3 + Math.floor(Math.random() * 10);
      const keys = Array.from({ length: n }, (_, i) => `p${tag}-${i}`);
      for (const k of keys) {
        equal(await c.request(`set ${k} 0 0 ${k.length}\r\n${k}`, "\r\n", T), "STORED\r\n");
      }
      for (const k of keys) {
        equal(
          await c.request(`get ${k}`, "END\r\n", T),
          `VALUE ${k} 0 ${k.length}\r\n${k}\r\nEND\r\n`,
        );
      }
      for (let i = 0; i < misses; i++) {
        equal(await c.request(`get none-${tag}-${i}`, "END\r\n", T), "END\r\n");
      }
      equal(await c.request("bogus-command", "\r\n", T), "ERROR\r\n");
      const after = (await scrape(mport)).families;
      const grew = (name: string, labels?: Record<string, string>) =>
        total(after, name, labels) - total(before, name, labels);
      equal(grew("memrep_proxy_get_hits_total"), n);
      equal(grew("memrep_proxy_get_misses_total"), misses);
      // The scrape's own requests are HTTP, not counted: exactly the client's.
      equal(grew("memrep_proxy_requests_total"), 2 * n + misses + 1);
      equal(grew("memrep_proxy_request_duration_seconds_count", { command: "get" }), n + misses);
      equal(grew("memrep_proxy_request_duration_seconds_count", { command: "set" }), n);
      equal(
        grew("memrep_proxy_request_duration_seconds_bucket", { command: "set", le: "+Inf" }),
        n,
      );
      ok(grew("memrep_proxy_request_duration_seconds_sum", { command: "get" }) > 0);
      equal(grew("memrep_proxy_errors_total", { kind: "client" }), 1);
      // Every write reached the backup as a copy.
      const backup = `127.0.0.1:${cluster.backups[0].port}`;
      ok(grew("memrep_proxy_backend_requests_total", { backend: backup }) >= n);

      // A primary dies: its up gauge drops to 0, its keys come from the backup.
      const dead = `127.0.0.1:${cluster.servers[0].port}`;
      await cluster.servers[0].stop();
      for (const k of keys) {
        equal(
          await c.request(`get ${k}`, "END\r\n", T),
          `VALUE ${k} 0 ${k.length}\r\n${k}\r\nEND\r\n`,
        );
      }
      await waitUntil(async () => {
        const f = (await scrape(mport)).families;
        return total(f, "memrep_proxy_backend_up", { backend: dead }) === 0 &&
          total(f, "memrep_proxy_backends", { state: "down" }) === 1;
      }, "the dead primary's up gauge at 0");
      const down = (await scrape(mport)).families;
      ok(
        total(down, "memrep_proxy_fallbacks_total") > total(after, "memrep_proxy_fallbacks_total"),
      );
      ok(total(down, "memrep_proxy_backend_ejections_total", { backend: dead }) >= 1);

      // It returns empty: reads fall back on the misses and repair it.
      await cluster.restart("server", 0);
      await waitUntil(async () => {
        const f = (await scrape(mport)).families;
        return total(f, "memrep_proxy_backend_up", { backend: dead }) === 1;
      }, "the restarted primary up again");
      for (const k of keys) {
        equal(
          await c.request(`get ${k}`, "END\r\n", T),
          `VALUE ${k} 0 ${k.length}\r\n${k}\r\nEND\r\n`,
        );
      }
      await waitUntil(async () => {
        const f = (await scrape(mport)).families;
        return total(f, "memrep_proxy_repairs_total") > total(down, "memrep_proxy_repairs_total");
      }, "repairs counted");
    } finally {
      await c.close();
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "proxy metrics: a request is timed until its reply, not until it was sent",
  ignore: NEED,
  async fn() {
    const [cluster, mport] = await startMetered(1, "600");
    const c = await connect(cluster.proxy.port);
    try {
      equal(await c.request("set slow 0 0 1\r\nv", "\r\n", T), "STORED\r\n");
      // On a loaded machine a start-up probe may have timed out: then the set skipped the
      // primary and the get would go to the backup at once. Time the get on a clean primary.
      const name = `server:127.0.0.1:${cluster.servers[0].port}`;
      await waitUntil(async () => {
        const st = await proxyStats(cluster.proxy.port);
        return st.get(`${name}:state`) === "up" && st.get(`${name}:dirty_keys`) === "0";
      }, "the primary up and clean");
      const before = (await scrape(mport)).families;
      const get = { command: "get" };
      // A stopped primary answers nothing: the proxy waits --timeout, then asks the backup.
      cluster.servers[0].kill("SIGSTOP");
      try {
        equal(await c.request("get slow", "END\r\n", T), "VALUE slow 0 1\r\nv\r\nEND\r\n");
      } finally {
        cluster.servers[0].kill("SIGCONT");
      }
      const after = (await scrape(mport)).families;
      const grew = (name: string, labels: Record<string, string>) =>
        total(after, name, labels) - total(before, name, labels);
      equal(grew("memrep_proxy_request_duration_seconds_count", get), 1);
      // It took at least the timeout (0.6 s): not in the 0.5 s bucket, but in +Inf.
      equal(grew("memrep_proxy_request_duration_seconds_bucket", { ...get, le: "0.5" }), 0);
      equal(grew("memrep_proxy_request_duration_seconds_bucket", { ...get, le: "+Inf" }), 1);
      // The client's timer works in whole Date.now() ms: allow it one ms early.
      ok(grew("memrep_proxy_request_duration_seconds_sum", get) >= 0.599);
    } finally {
      await c.close();
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "proxy metrics: -c pools are labelled by pool; a reload's new pool appears",
  ignore: NEED,
  async fn() {
    const [m1, m2, m3] = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    const mport = freePort();
    const pool = (name: string, listen: string, servers: number[]) =>
      `${name}:\n  listen: 127.0.0.1:${listen}\n  distribution: ketama\n  hash: md5\n  timeout: 500\n` +
      `  servers:\n${servers.map((p) => `    - 127.0.0.1:${p}:1\n`).join("")}`;
    const first = pool("alpha", "{port}", [m1.port]) + pool("beta", "{port2}", [m2.port]);
    const nc = await startConfigProxy(first, ["--metrics", `127.0.0.1:${mport}`]);
    try {
      const n = 10 + Math.floor(Math.random() * 20);
      const ca = await connect(nc.port);
      for (let i = 0; i < n; i++) {
        equal(await ca.request(`set a${i} 0 0 1\r\nx`, "\r\n", T), "STORED\r\n");
      }
      for (let i = 0; i < n; i++) {
        equal(await ca.request(`get a${i}`, "END\r\n", T), `VALUE a${i} 0 1\r\nx\r\nEND\r\n`);
      }
      await ca.close();
      const f = (await scrape(mport)).families;
      equal(total(f, "memrep_proxy_get_hits_total", { pool: "alpha" }), n);
      equal(total(f, "memrep_proxy_get_hits_total", { pool: "beta" }), 0);
      equal(
        total(f, "memrep_proxy_request_duration_seconds_count", { pool: "alpha", command: "get" }),
        n,
      );
      equal(
        total(f, "memrep_proxy_backend_up", { pool: "beta", backend: `127.0.0.1:${m2.port}` }),
        1,
      );
      // SIGHUP with a third pool: it is reported at the next scrape.
      const gamma = freePort();
      await Deno.writeTextFile(
        nc.file,
        fill(first, nc.port, nc.port2) + pool("gamma", String(gamma), [m3.port]),
      );
      nc.proc.kill("SIGHUP");
      await waitUntil(async () => {
        const g = (await scrape(mport)).families;
        return g.get("memrep_proxy_requests_total")!.samples.some((s) => s.labels.pool === "gamma");
      }, "pool gamma in /metrics");
    } finally {
      await nc.proc.stop();
      await Promise.all([m1.stop(), m2.stop(), m3.stop()]);
    }
  },
});
