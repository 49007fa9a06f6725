/**
 * The seed's magent scenario end to end, including its open bug: two
 * primaries and a backup; after kill -9 of both primaries reads come from
 * the backup, and after the primaries restart empty reads still return the
 * data and the primaries are repaired.
 */

import { deepEqual, equal, eventually, ok } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { Ketama, ketamaName } from "../../lib/proxy/mod.ts";
import {
  directGet,
  getValue,
  proxyStats,
  setValue,
  startCluster,
  waitForState,
} from "./cluster.ts";

const NAME = "seed scenario: data survives dead and restarted-empty primaries";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const [s1, s2] = cluster.servers;
      const [backup] = cluster.backups;
      const c = await connect(cluster.proxy.port);
      const keys = ["key1", "key2", ...Array.from({ length: 100 }, (_, i) => `k:${i}`)];
      for (const k of keys) equal(await setValue(c, k, `zhangyan-${k}`), "STORED\r\n");

      // Placement: each key on exactly its ketama primary and on the backup.
      const ring = new Ketama(
        [s1, s2].map((s) => ({ name: ketamaName("127.0.0.1", s.port), weight: 1 })),
      );
      const enc = new TextEncoder();
      const placed = [0, 0];
      for (const k of keys) {
        const kb = enc.encode(k);
        const want = ring.pick(kb, 0, kb.length);
        placed[want]++;
        const onS1 = await directGet(s1.port, k);
        const onS2 = await directGet(s2.port, k);
        deepEqual([onS1 !== undefined, onS2 !== undefined], [want === 0, want === 1], k);
        await eventually(() => directGet(backup.port, k), `zhangyan-${k}`, `backup holds ${k}`);
      }
      ok(placed[0] > 0 && placed[1] > 0, `keys spread over both primaries: ${placed}`);

      // kill -9 both primaries: every read is served by the backup.
      s1.kill("SIGKILL");
      s2.kill("SIGKILL");
      await Promise.all([s1.status, s2.status]);
      for (const k of keys) {
        equal(await getValue(c, k), `zhangyan-${k}`, `${k} with primaries dead`);
      }

      // Restart them empty; once the proxy sees them up, reads still return
      // everything (the seed's open bug), and repair the primaries.
      const r1 = await cluster.restart("server", 0);
      const r2 = await cluster.restart("server", 1);
      await waitForState(cluster.proxy.port, "server", r1.port, "up");
      await waitForState(cluster.proxy.port, "server", r2.port, "up");
      let found = 0;
      for (const k of keys) if (await getValue(c, k) === `zhangyan-${k}`) found++;
      equal(found, keys.length, "every key read back after the restart");

      // The background repairs land: each key is back on its primary.
      const deadline = Date.now() + 5000;
      let repaired = 0;
      while (Date.now() < deadline) {
        repaired = 0;
        for (const k of keys) {
          const kb = enc.encode(k);
          const port = ring.pick(kb, 0, kb.length) === 0 ? r1.port : r2.port;
          if (await directGet(port, k) === `zhangyan-${k}`) repaired++;
        }
        if (repaired === keys.length) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      equal(repaired, keys.length, "every primary repaired from the backup");
      const stats = await proxyStats(cluster.proxy.port);
      ok(Number(stats.get("repairs")) >= keys.length, `repairs counted: ${stats.get("repairs")}`);
      ok(Number(stats.get("ejections")) >= 2, "both primaries were ejected once");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "the seed's magent command line and stats output work",
  ignore: ignoreUnless("seed command line", ["memcached"]),
  async fn() {
    const cluster = await startCluster({
      servers: 2,
      backups: 1,
      proxyArgs: ["-u", "root", "-n", "51200"],
    });
    try {
      const c = await connect(cluster.proxy.port);
      // magent's server list moved to `stats agent` (`stats` answers STAT lines).
      const stats = await c.request("stats agent", "END\r\n");
      const [s1, s2] = cluster.servers;
      equal(
        stats,
        "memcached agent v0.6-memrep\r\n" +
          `matrix 1 -> 127.0.0.1:${s1.port}, pool size 0\r\n` +
          `matrix 2 -> 127.0.0.1:${s2.port}, pool size 0\r\n` +
          `backup 1 -> 127.0.0.1:${cluster.backups[0].port}, pool size 0\r\n` +
          "END\r\n",
      );
      equal(await c.request("set key1 0 0 8\r\nzhangyan"), "STORED\r\n");
      equal(await c.request("set key2 0 0 8\r\nzhangyan"), "STORED\r\n");
      equal(await c.request("get key1", "END\r\n"), "VALUE key1 0 8\r\nzhangyan\r\nEND\r\n");
      await c.send("quit\r\n");
      ok(await c.waitClosed(), "quit closes the connection");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});
