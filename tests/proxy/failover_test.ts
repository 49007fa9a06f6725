/**
 * Health and failover: a primary that stops answering (SIGSTOP) is backed
 * by the backup within the timeout; writes made meanwhile are not hidden by
 * the primary's stale copy when it returns; with no backend left requests
 * get SERVER_ERROR at once.
 */

import { equal, ok } from "../helpers/assert.ts";
import { connect, ignoreUnless, retrievalEnd } from "../helpers/mod.ts";
import { Ketama, ketamaName } from "../../lib/proxy/mod.ts";
import { getValue, setValue, sleep, startCluster, waitForState } from "./cluster.ts";

const TIMEOUT_MS = 300;

Deno.test({
  name: "a stopped primary: reads fall back to the backup without hanging, writes survive SIGCONT",
  ignore: ignoreUnless("SIGSTOP failover", ["memcached"]),
  async fn() {
    const cluster = await startCluster({
      servers: 2,
      backups: 1,
      proxyArgs: ["--timeout", String(TIMEOUT_MS), "--retry", "200"],
    });
    const [s1, s2] = cluster.servers;
    let stopped = false;
    try {
      const ring = new Ketama(
        [s1, s2].map((s) => ({ name: ketamaName("127.0.0.1", s.port), weight: 1 })),
      );
      const enc = new TextEncoder();
      const keys = Array.from({ length: 40 }, (_, i) => `stop:${i}`);
      const onS1 = keys.filter((k) => ring.pick(enc.encode(k), 0, k.length) === 0);
      ok(onS1.length > 0, "some keys live on the primary that will be stopped");
      const c = await connect(cluster.proxy.port);
      for (const k of keys) equal(await setValue(c, k, `v1-${k}`), "STORED\r\n");

      // Load from 4 connections while the primary is stopped mid-way.
      let running = true;
      let maxLatency = 0;
      let reads = 0;
      const wrong: string[] = [];
      const load = async () => {
        const lc = await connect(cluster.proxy.port);
        try {
          for (let i = 0; running; i++) {
            const k = keys[i % keys.length];
            const t0 = performance.now();
            const v = await getValue(lc, k);
            maxLatency = Math.max(maxLatency, performance.now() - t0);
            reads++;
            if (v !== `v1-${k}`) wrong.push(`${k}=${v}`);
          }
        } finally {
          await lc.close();
        }
      };
      const loaders = Array.from({ length: 4 }, load);
      await sleep(200);
      s1.kill("SIGSTOP");
      stopped = true;
      await waitForState(cluster.proxy.port, "server", s1.port, "down", 10_000);
      await sleep(300);
      running = false;
      await Promise.all(loaders);
      equal(wrong.length, 0, `every read returned the value: ${wrong.slice(0, 5)}`);
      ok(reads > 100, `load ran (${reads} reads)`);
      ok(
        maxLatency < TIMEOUT_MS + 5000,
        `slowest read ${maxLatency.toFixed(0)} ms, timeout ${TIMEOUT_MS} ms`,
      );

      // While it is down, writes go to the backup.
      const k = onS1[0];
      equal(await setValue(c, k, "v2"), "STORED\r\n");
      equal(await getValue(c, k), "v2");

      // Back: the primary's stale v1 must not win over v2.
      s1.kill("SIGCONT");
      stopped = false;
      await waitForState(cluster.proxy.port, "server", s1.port, "up", 10_000);
      equal(await getValue(c, k), "v2", "the write made while the primary was stopped");
      for (const other of onS1.slice(1)) equal(await getValue(c, other), `v1-${other}`);
      await c.close();
    } finally {
      if (stopped) s1.kill("SIGCONT");
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "no backend available: SERVER_ERROR at once, never a hang",
  ignore: ignoreUnless("no backend", ["memcached"]),
  async fn() {
    // A long timeout: answers that waited for it would take seconds each.
    const cluster = await startCluster({
      servers: 1,
      backups: 1,
      proxyArgs: ["--timeout", "5000", "--retry", "200"],
    });
    try {
      const c = await connect(cluster.proxy.port);
      equal(await setValue(c, "a", "1"), "STORED\r\n");
      cluster.servers[0].kill("SIGKILL");
      await cluster.servers[0].status;
      // Primary gone, backup there: served by the backup; a missing key is a plain miss.
      equal(await getValue(c, "a"), "1");
      equal(await c.request("get nothing", retrievalEnd), "END\r\n");
      cluster.backups[0].kill("SIGKILL");
      await cluster.backups[0].status;
      const t0 = performance.now();
      equal(await c.request("get a", retrievalEnd, 3000), "SERVER_ERROR no backend available\r\n");
      equal(
        await c.request("set a 0 0 1\r\nx", "\r\n", 3000),
        "SERVER_ERROR no backend available\r\n",
      );
      equal(
        await c.request("get a b c", retrievalEnd, 3000),
        "SERVER_ERROR no backend available\r\n",
      );
      equal(await c.request("delete a", "\r\n", 3000), "SERVER_ERROR no backend available\r\n");
      equal(await c.request("incr n 1", "\r\n", 3000), "SERVER_ERROR no backend available\r\n");
      equal(await c.request("mg a v", "\r\n", 3000), "SERVER_ERROR no backend available\r\n");
      ok(performance.now() - t0 < 5000, "answered without waiting for timeouts");
      // The proxy itself is still fine.
      equal(await c.request("version"), "VERSION 1.6.18\r\n");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "without backups a dead server's keys fail fast and the others keep working",
  ignore: ignoreUnless("no backups", ["memcached"]),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 0 });
    try {
      const [s1, s2] = cluster.servers;
      const ring = new Ketama(
        [s1, s2].map((s) => ({ name: ketamaName("127.0.0.1", s.port), weight: 1 })),
      );
      const enc = new TextEncoder();
      const keys = Array.from({ length: 20 }, (_, i) => `nb:${i}`);
      const c = await connect(cluster.proxy.port);
      for (const k of keys) equal(await setValue(c, k, k), "STORED\r\n");
      s1.kill("SIGKILL");
      await s1.status;
      for (const k of keys) {
        const onDead = ring.pick(enc.encode(k), 0, k.length) === 0;
        const reply = await c.request(`get ${k}`, retrievalEnd, 3000);
        equal(
          reply,
          onDead
            ? "SERVER_ERROR no backend available\r\n"
            : `VALUE ${k} 0 ${k.length}\r\n${k}\r\nEND\r\n`,
        );
      }
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});
