/**
 * The proxy speaks memcached to clients: multi-gets across primaries in key
 * order, pipelining, noreply, meta quiet mode, large values, bad input, and
 * every write lands on its primary and, as the same final state, on the backup.
 */

import { deepEqual, equal, eventually, match, ok, waitUntil } from "../helpers/assert.ts";
import { connect, ignoreUnless, metaEnd, retrievalEnd, type TestConn } from "../helpers/mod.ts";
import { Ketama, ketamaName } from "../../lib/proxy/mod.ts";
import { type Cluster, directGet, getValue, setValue, startCluster } from "./cluster.ts";

function primaryPort(cluster: Cluster, key: string): number {
  const ring = new Ketama(
    cluster.servers.map((s) => ({ name: ketamaName("127.0.0.1", s.port), weight: 1 })),
  );
  const kb = new TextEncoder().encode(key);
  return cluster.servers[ring.pick(kb, 0, kb.length)].port;
}

/** Runs `fn` against a fresh 3-primary, 1-backup cluster (memcached -I 2m for 1 MB values). */
function withCluster(
  name: string,
  fn: (c: TestConn, cluster: Cluster) => Promise<void>,
  backups = 1,
): void {
  Deno.test({
    name,
    ignore: ignoreUnless(name, ["memcached"]),
    async fn() {
      const cluster = await startCluster({
        servers: 3,
        backups,
        memcachedArgs: ["-I", "2m", "-m", "64"],
      });
      const c = await connect(cluster.proxy.port);
      try {
        await fn(c, cluster);
      } finally {
        await c.close();
        await cluster.stop();
      }
    },
  });
}

withCluster(
  "multi-get spanning all primaries answers in the client's key order",
  async (c, cluster) => {
    const keys = Array.from({ length: 30 }, (_, i) => `mk:${i}`);
    const owners = new Set(keys.map((k) => primaryPort(cluster, k)));
    equal(owners.size, 3, "the keys span every primary");
    for (const k of keys.filter((_, i) => i % 3 !== 1)) {
      equal(
        await setValue(c, k, `v-${k}`, 7),
        "STORED\r\n",
      );
    }
    const reply = await c.request(`get ${keys.join(" ")} mk:missing mk:0`, retrievalEnd);
    let want = "";
    for (const k of [...keys, "mk:missing", "mk:0"]) {
      const i = keys.indexOf(k);
      if (i >= 0 && i % 3 !== 1) want += `VALUE ${k} 7 ${`v-${k}`.length}\r\nv-${k}\r\n`;
    }
    equal(reply, want + "END\r\n");
    // gets carries a CAS per item.
    const gets = await c.request(`gets ${keys[0]} ${keys[2]}`, retrievalEnd);
    match(gets, /^VALUE mk:0 7 6 \d+\r\nv-mk:0\r\nVALUE mk:2 7 6 \d+\r\nv-mk:2\r\nEND\r\n$/);
  },
);

withCluster("pipelined requests are answered in order", async (c) => {
  let batch = "";
  let want = "";
  for (let i = 0; i < 200; i++) {
    batch += `set p:${i} 0 0 ${String(i).length}\r\n${i}\r\nget p:${i - 1} p:${i}\r\n`;
    want += "STORED\r\n";
    if (i > 0) want += `VALUE p:${i - 1} 0 ${String(i - 1).length}\r\n${i - 1}\r\n`;
    want += `VALUE p:${i} 0 ${String(i).length}\r\n${i}\r\nEND\r\n`;
  }
  batch += "version\r\nmn\r\n";
  want += "VERSION 1.6.18\r\nMN\r\n";
  await c.send(batch);
  const got = await c.readUntilText((b) => b.length >= want.length ? want.length : -1, 10_000);
  equal(got, want);
});

withCluster("noreply and meta q: nothing is sent back, the writes happen", async (c, cluster) => {
  await c.send(
    "set nr 0 0 1 noreply\r\na\r\nadd nr 0 0 1 noreply\r\nb\r\nappend nr 0 0 1 noreply\r\nc\r\n" +
      "set cnt 0 0 1 noreply\r\n5\r\nincr cnt 3 noreply\r\ntouch nr 100 noreply\r\n" +
      "delete nothing noreply\r\nflush_all noreply\r\nset after 0 0 1 noreply\r\nz\r\n" +
      "ms q1 2 q\r\nhi\r\nmg nothing v q\r\nmd nothing q\r\nma cnt q\r\nmg q1 v q\r\nmn\r\n",
  );
  // md q and ma q still report NF (memcached does too; cnt was flushed).
  equal(await c.readLine(), "NF");
  equal(await c.readLine(), "NF");
  equal(await c.readLine(), "VA 2");
  equal(await c.readLine(), "hi");
  equal(await c.readLine(), "MN");
  equal(await getValue(c, "after"), "z");
  equal(await getValue(c, "nr"), undefined, "flush_all noreply flushed the earlier keys");
  await eventually(() => directGet(cluster.backups[0].port, "q1"), "hi");
  // Quiet ma: HD suppressed; the value moved on the primary and the backup.
  await c.send("ms n 1 q\r\n5\r\nma n q\r\nmg n v\r\n");
  equal(await c.readUntilText(metaEnd), "VA 1\r\n6\r\n");
  await eventually(() => directGet(cluster.backups[0].port, "n"), "6");
});

withCluster("writes reach the backup as the primary's final state", async (c, cluster) => {
  const backup = cluster.backups[0].port;
  equal(await setValue(c, "w", "base", 3, 1000), "STORED\r\n");
  equal(await c.request("append w 0 0 2\r\n++"), "STORED\r\n");
  equal(await c.request("prepend w 0 0 2\r\n--"), "STORED\r\n");
  equal(await c.request("add w 0 0 1\r\nx"), "NOT_STORED\r\n");
  equal(await c.request("replace w 5 0 3\r\nnew"), "STORED\r\n");
  equal(await c.request("set n 9 0 2\r\n10"), "STORED\r\n");
  equal(await c.request("incr n 5"), "15\r\n");
  equal(await c.request("decr n 3"), "12\r\n");
  const gets = await c.request("gets w", retrievalEnd);
  const cas = /VALUE w 5 3 (\d+)/.exec(gets)?.[1];
  ok(cas, gets);
  equal(await c.request(`cas w 6 0 3 ${cas}\r\ncas`), "STORED\r\n");
  equal(await c.request(`cas w 6 0 3 ${cas}\r\nbad`), "EXISTS\r\n");
  equal(await c.request("touch w 500"), "TOUCHED\r\n");
  await eventually(() => directGet(backup, "w"), "cas");
  await eventually(() => directGet(backup, "n"), "12", "incr/decr applied once on the backup");
  equal(await directGet(primaryPort(cluster, "n"), "n"), "12");
  const b = await connect(backup);
  equal(await b.request("mg w f v", metaEnd), "VA 3 f6\r\ncas\r\n");
  let ttl = -1; // no TTL until the touch arrives
  await waitUntil(async () => {
    ttl = Number(/^HD t(-?\d+)/.exec(await b.request("mg w t"))?.[1]);
    return ttl !== -1;
  }, "touch on the backup");
  ok(ttl > 400 && ttl <= 500, `touch reached the backup (ttl ${ttl})`);
  equal(await b.request("mg n f", metaEnd), "HD f9\r\n");
  await b.close();
  equal(await c.request("delete w"), "DELETED\r\n");
  await eventually(() => directGet(backup, "w"), undefined);
  // Meta writes too.
  equal(await c.request("ms m 3 F4 T0\r\nabc"), "HD\r\n");
  equal(await c.request("ms m 1 MA\r\nd"), "HD\r\n");
  equal(await c.request("ma m2 N0 J10 v", metaEnd), "VA 2\r\n10\r\n");
  equal(await c.request("ma m2 D5 v", metaEnd), "VA 2\r\n15\r\n");
  equal(await c.request("md m O7 k"), "HD O7 km\r\n");
  await eventually(() => directGet(backup, "m"), undefined);
  await eventually(() => directGet(backup, "m2"), "15");
});

withCluster(
  "reads and conditional writes of a restarted-empty primary use the backup",
  async (c, cluster) => {
    const key = "restart:k";
    const port = primaryPort(cluster, key);
    const idx = cluster.servers.findIndex((s) => s.port === port);
    equal(await setValue(c, key, "v", 2, 0), "STORED\r\n");
    equal(await setValue(c, "ctr", "41"), "STORED\r\n");
    equal(await setValue(c, "txt", "mid"), "STORED\r\n");
    equal(await setValue(c, "ttl", "t", 9, 100), "STORED\r\n");
    // Empty every primary without the proxy noticing a failure: flush them directly.
    for (const s of cluster.servers) {
      const d = await connect(s.port);
      equal(await d.request("flush_all"), "OK\r\n");
      await d.close();
    }
    // gets via the backup returns a CAS that works with the primary.
    const gets = await c.request(`gets ${key}`, retrievalEnd);
    const cas = /^VALUE restart:k 2 1 (\d+)\r\nv\r\nEND\r\n$/.exec(gets)?.[1];
    ok(cas, gets);
    equal(await directGet(port, key), "v", "repaired before the reply");
    // A repair keeps the flags and the remaining TTL.
    equal(await getValue(c, "ttl"), "t");
    const t = await connect(primaryPort(cluster, "ttl"));
    let meta = "";
    await waitUntil(
      async () => (meta = await t.request("mg ttl f t")) !== "EN\r\n",
      "ttl repaired",
    );
    await t.close();
    const m = /^HD f9 t(\d+)\r\n$/.exec(meta);
    ok(m && Number(m[1]) > 90 && Number(m[1]) <= 100, `flags and TTL repaired: ${meta}`);
    equal(await c.request(`cas ${key} 2 0 1 ${cas}\r\nw`), "STORED\r\n");
    equal(await directGet(cluster.servers[idx].port, key), "w");
    // incr/append/touch/delete find the item in the backup.
    equal(await c.request("incr ctr 1"), "42\r\n");
    equal(await c.request("append txt 0 0 1\r\n!"), "STORED\r\n");
    equal(await getValue(c, "txt"), "mid!");
    equal(await c.request("touch nothing 10"), "NOT_FOUND\r\n");
    for (const s of cluster.servers) {
      const d = await connect(s.port);
      equal(await d.request("flush_all"), "OK\r\n");
      await d.close();
    }
    equal(await c.request("touch ctr 100"), "TOUCHED\r\n");
    equal(await c.request("delete txt"), "DELETED\r\n");
    equal(await getValue(c, "txt"), undefined);
    equal(await c.request("mg ctr v f", metaEnd), "VA 2 f0\r\n42\r\n");
    // mg with c: the CAS is the primary's after repair.
    for (const s of cluster.servers) {
      const d = await connect(s.port);
      await d.request("flush_all");
      await d.close();
    }
    const mg = await c.request("mg ctr v c", metaEnd);
    const mcas = /^VA 2 c(\d+)\r\n42\r\n$/.exec(mg)?.[1];
    ok(mcas, mg);
    equal(await c.request(`ms ctr 2 C${mcas}\r\n43`), "HD\r\n");
  },
);

withCluster(
  "large values pass through and reach the backup",
  async (c, cluster) => {
    const big = "x".repeat(1048576);
    equal(await c.request(`set big 0 0 ${big.length}\r\n${big}`, "\r\n", 10_000), "STORED\r\n");
    const reply = await c.request("get big", retrievalEnd, 10_000);
    equal(reply.length, `VALUE big 0 ${big.length}\r\n`.length + big.length + 7);
    ok(reply.endsWith(`${"x".repeat(10)}\r\nEND\r\n`));
    await eventually(
      async () => (await directGet(cluster.backups[0].port, "big"))?.length,
      big.length,
    );
    // Too large for memcached -I 2m: memcached's own answer, and like memcached the old
    // value is gone, from the backup too (a read falling back there must not find it).
    equal(await setValue(c, "huge", "old"), "STORED\r\n");
    await eventually(() => directGet(cluster.backups[0].port, "huge"), "old");
    const huge = "y".repeat(3 * 1048576);
    equal(
      await c.request(`set huge 0 0 ${huge.length}\r\n${huge}`, "\r\n", 10_000),
      "SERVER_ERROR object too large for cache\r\n",
    );
    await eventually(() => directGet(cluster.backups[0].port, "huge"), undefined);
    equal(await c.request("get huge", retrievalEnd), "END\r\n");
  },
);

withCluster(
  "bad client input gets the same replies as from memcached itself",
  async (c, cluster) => {
    // Differential: the same bytes to the proxy and straight to a memcached.
    const direct = await connect(cluster.backups[0].port);
    const inputs = [
      "bogus\r\n",
      "set k 0 0 notanumber\r\n",
      "set k 0 0 2\r\nabcd\r\n",
      "incr k abc\r\n",
      `get ${"k".repeat(251)}\r\n`,
      "mg k zz\r\n",
      "ms k 2 MX\r\nab\r\n",
      "ma k D-1\r\n",
      "\x00\xff\xfe garbage \x01\r\n",
      "gat 10\r\n",
      "get\r\n",
      "delete k 5\r\n",
      "touch k\r\n",
      "cas k 0 0 1\r\nx\r\n",
      "\r\n",
    ];
    for (const input of inputs) {
      await c.send(input + "mn\r\n");
      await direct.send(input + "mn\r\n");
      const want = await direct.readUntilText("MN\r\n");
      equal(await c.readUntilText("MN\r\n"), want, JSON.stringify(input));
    }
    await direct.close();
    equal(await c.request("shutdown"), "SERVER_ERROR not supported\r\n");
    equal(await c.request("verbosity 1"), "OK\r\n");
    equal(await c.request("set ok 0 0 2\r\nok"), "STORED\r\n");
    // A client leaving mid-request does not disturb others.
    const d = await connect(cluster.proxy.port);
    await d.send("set partial 0 0 100\r\nonly some");
    await d.close();
    equal(await getValue(c, "ok"), "ok");
    equal(await getValue(c, "partial"), undefined);
  },
);

Deno.test({
  name: "stats proxy reports counters and backend states",
  ignore: ignoreUnless("stats proxy", ["memcached"]),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const c = await connect(cluster.proxy.port);
      equal(await setValue(c, "a", "1"), "STORED\r\n");
      equal(await getValue(c, "a"), "1");
      equal(await getValue(c, "zz"), undefined);
      const reply = await c.request("stats proxy", "END\r\n");
      const names = [...reply.matchAll(/^STAT (\S+) /gm)].map((m) => m[1]);
      for (
        const n of [
          "requests",
          "hits",
          "misses",
          "fallbacks",
          "repairs",
          "backend_errors",
          "ejections",
        ]
      ) {
        ok(names.includes(n), `stats proxy has ${n}`);
      }
      match(reply, new RegExp(`STAT server:127.0.0.1:${cluster.servers[0].port}:state up\r\n`));
      match(reply, new RegExp(`STAT backup:127.0.0.1:${cluster.backups[0].port}:state up\r\n`));
      match(reply, /STAT hits 1\r\n/);
      match(reply, /STAT misses 1\r\n/);
      deepEqual(reply.endsWith("END\r\n"), true);
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "--no-miss-fallback: a primary's miss is the answer",
  ignore: ignoreUnless("no miss fallback", ["memcached"]),
  async fn() {
    const cluster = await startCluster({
      servers: 1,
      backups: 1,
      proxyArgs: ["--no-miss-fallback", "--timeout", "500", "--retry", "200"],
    });
    try {
      const c = await connect(cluster.proxy.port);
      equal(await setValue(c, "a", "1"), "STORED\r\n");
      const d = await connect(cluster.servers[0].port);
      equal(await d.request("flush_all"), "OK\r\n");
      await d.close();
      equal(await getValue(c, "a"), undefined, "the primary's miss");
      await eventually(() => directGet(cluster.backups[0].port, "a"), "1", "the backup has it");
      // A dead primary is still backed by the backup.
      cluster.servers[0].kill("SIGKILL");
      await cluster.servers[0].status;
      equal(await getValue(c, "a"), "1");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

withCluster(
  "without backups, noreply and quiet writes are relayed once and answer nothing",
  async (c) => {
    await c.send(
      "set a 0 0 1 noreply\r\n1\r\nappend a 0 0 1 noreply\r\n2\r\nincr a 5 noreply\r\n" +
        "ms m 1 q\r\n7\r\nma m q v\r\nma m q\r\nset d 0 0 1 noreply\r\nx\r\ndelete d noreply\r\n" +
        "mn\r\n",
    );
    equal(await c.readLine(), "MN");
    equal(await getValue(c, "a"), "17", "append and incr applied once");
    equal(await c.request("mg m v", metaEnd), "VA 1\r\n9\r\n");
    equal(await getValue(c, "d"), undefined);
  },
  0,
);
