/**
 * Binary gets through `memrep proxy` when primaries fail: a primary killed
 * with -9 (the backup answers), primaries restarted empty (the seed's bug:
 * reads still hit through the fallback on a miss, and the primaries are
 * repaired).
 */

import { equal, eventually } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { OP, roundTrip, text } from "../helpers/binary.ts";
import { keysOn, markedDown, startCluster } from "./cluster.ts";
import { cat, directValue, get, NEED, set } from "./binary_cluster.ts";

Deno.test({
  name:
    "proxy binary: kill -9 a primary, binary gets answer from the backup; restarted empty, it is repaired",
  ignore: ignoreUnless("proxy binary failover", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const ports = cluster.servers.map((s) => s.port);
      const keys = keysOn(ports, 0, "fo:", 30);
      const c = await connect(cluster.proxy.port);
      const stored = await roundTrip(c, cat(keys.map((k, i) => set(k, `v-${k}`, i, OP.SETQ, i))));
      equal(stored.length, 0);
      const readAll = async (op: number) => {
        const replies = await roundTrip(c, cat(keys.map((k, i) => get(k, op, i))), 10_000);
        let wrong = 0;
        replies.forEach((r, i) => {
          if (r.status !== 0 || text(r.value) !== `v-${keys[i]}` || r.opaque !== i) wrong++;
        });
        return { n: replies.length, wrong };
      };
      cluster.servers[0].kill("SIGKILL");
      await cluster.servers[0].status;
      await markedDown(cluster.proxy.port, ports[0], keys[0]);
      const down = await readAll(OP.GETK);
      equal(down.n, keys.length);
      equal(down.wrong, 0, "every get answered from the backup while the primary is dead");
      // Back, empty: reads still hit (miss fallback), and the primary is repaired.
      await cluster.restart("server", 0);
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        const st = await connect(cluster.proxy.port);
        const s = await st.stats("proxy");
        await st.close();
        if (s.get(`server:127.0.0.1:${ports[0]}:state`) === "up") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const back = await readAll(OP.GET);
      equal(back.wrong, 0, "every get hit after the restart");
      let repaired = 0;
      for (let i = 0; i < 50 && repaired < keys.length; i++) {
        repaired = 0;
        for (const k of keys) if ((await directValue(ports[0], k)) === `v-${k}`) repaired++;
        if (repaired < keys.length) await new Promise((r) => setTimeout(r, 100));
      }
      equal(repaired, keys.length, "the restarted primary holds every key again");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name:
    "proxy binary: every primary restarted empty at once, a getkq multi-get still hits everything",
  ignore: ignoreUnless("proxy binary restart empty", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const c = await connect(cluster.proxy.port);
      const keys = Array.from({ length: 200 }, (_, i) => `re:${i}`);
      equal((await roundTrip(c, cat(keys.map((k, i) => set(k, `v${i}`, i, OP.SETQ))))).length, 0);
      await eventually(
        () => directValue(cluster.backups[0].port, keys[keys.length - 1]),
        `v${keys.length - 1}`,
      );
      // The seed's open bug: the primaries come back empty (no down period noticed).
      await cluster.restart("server", 0);
      await cluster.restart("server", 1);
      // The very first read after the restart: a miss here would be a lost item.
      const r = await roundTrip(c, cat(keys.map((k, i) => get(k, OP.GETKQ, i))), 10_000);
      equal(r.length, keys.length, "no getkq went silent (a miss)");
      const hits = r.filter((x, j) => x.status === 0 && x.opaque === j && text(x.value) === `v${j}`)
        .length;
      equal(hits, keys.length, "every key answered from the backup, in order");
      let onPrimaries = 0;
      await eventually(
        async () => {
          onPrimaries = 0;
          for (const k of keys.slice(0, 50)) {
            for (const s of cluster.servers) {
              if ((await directValue(s.port, k)) !== undefined) onPrimaries++;
            }
          }
          return onPrimaries;
        },
        50,
        "the primaries were repaired",
      );
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});
