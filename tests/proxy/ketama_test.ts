/**
 * Key placement: memrep proxy's ketama ring is twemproxy's (`distribution:
 * ketama`, `hash: md5`), so keys written through nutcracker are found
 * through memrep proxy over the same servers; `--hash modula` is magent's.
 */

import { equal, ok } from "../helpers/assert.ts";
import {
  connect,
  ignoreUnless,
  startMemcached,
  startMemrep,
  startNutcracker,
} from "../helpers/mod.ts";
import { Ketama, ketamaName, md5, Modula } from "../../lib/proxy/mod.ts";
import { directGet, getValue, startCluster } from "./cluster.ts";
import { createHash } from "node:crypto";

Deno.test("md5 matches node:crypto for every padding case", () => {
  const out = new Uint32Array(4);
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 250, 1000]) {
    const b = new Uint8Array(n + 4).map((_, i) => (i * 31 + n) & 255);
    md5(b, 2, n + 2, out);
    const mine = Array.from(new Uint8Array(out.buffer), (x) => x.toString(16).padStart(2, "0"))
      .join("");
    equal(mine, createHash("md5").update(b.subarray(2, n + 2)).digest("hex"), `length ${n}`);
  }
});

Deno.test("ketama: 160 points per server, names drop port 11211 like twemproxy", () => {
  equal(ketamaName("10.0.0.1", 11211), "10.0.0.1");
  equal(ketamaName("10.0.0.1", 11212), "10.0.0.1:11212");
  for (const n of [1, 2, 3, 5, 7]) {
    const ring = new Ketama(Array.from({ length: n }, (_, i) => ({ name: `h:${i}`, weight: 1 })));
    equal(ring.values.length, 160 * n, `${n} servers`);
    for (let i = 1; i < ring.values.length; i++) ok(ring.values[i - 1] <= ring.values[i]);
  }
});

Deno.test("modula: magent's DJB hash modulo the server count", () => {
  const m = new Modula(3);
  const key = new TextEncoder().encode("key1");
  let h = 5381;
  for (const c of key) h = (h * 33 + c) >>> 0;
  equal(m.pick(key, 0, key.length), (h & 0x7fffffff) % 3);
});

const NC = "keys written through nutcracker (ketama, md5) are found through memrep proxy";
Deno.test({
  name: NC,
  ignore: ignoreUnless(NC, ["memcached", "nutcracker"]),
  async fn() {
    const servers = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    const addrs = servers.map((s) => `127.0.0.1:${s.port}`);
    const nutcracker = await startNutcracker({
      servers: addrs,
      hash: "md5",
      distribution: "ketama",
    });
    const proxy = await startMemrep(["proxy", ...addrs.flatMap((a) => ["-s", a])]);
    try {
      const nc = await connect(nutcracker.port);
      const keys = Array.from({ length: 300 }, (_, i) => `nc:${i}:${"x".repeat(i % 11)}`);
      for (const k of keys) {
        equal(await nc.request(`set ${k} 0 0 ${k.length}\r\n${k}`), "STORED\r\n");
      }
      await nc.close();
      // Each key sits on exactly one server, and the proxy reads it from there.
      const mp = await connect(proxy.port);
      let found = 0;
      for (const k of keys) if (await getValue(mp, k) === k) found++;
      equal(found, keys.length, "every key found through memrep proxy");
      // And the proxy writes where nutcracker reads.
      for (const k of keys.slice(0, 50)) {
        equal(await mp.request(`set ${k} 0 0 3\r\nnew`), "STORED\r\n");
      }
      await mp.close();
      const nc2 = await connect(nutcracker.port);
      for (const k of keys.slice(0, 50)) equal(await getValue(nc2, k), "new", k);
      await nc2.close();
      const spread = await Promise.all(servers.map(async (s) => {
        let n = 0;
        for (const k of keys) if (await directGet(s.port, k) !== undefined) n++;
        return n;
      }));
      equal(spread.reduce((a, b) => a + b, 0), keys.length, `each key on one server: ${spread}`);
      ok(spread.every((n) => n > 30), `keys spread over all servers: ${spread}`);
    } finally {
      await proxy.stop();
      await nutcracker.stop();
      await Promise.all(servers.map((s) => s.stop()));
    }
  },
});

Deno.test({
  name: "--hash modula places keys like magent without -k",
  ignore: ignoreUnless("modula placement", ["memcached"]),
  async fn() {
    const cluster = await startCluster({
      servers: 3,
      backups: 0,
      proxyArgs: ["--hash", "modula"],
    });
    try {
      const c = await connect(cluster.proxy.port);
      const m = new Modula(3);
      const enc = new TextEncoder();
      for (let i = 0; i < 60; i++) {
        const k = `mod:${i}`;
        equal(await c.request(`set ${k} 0 0 1\r\nv`), "STORED\r\n");
        const kb = enc.encode(k);
        const want = m.pick(kb, 0, kb.length);
        for (let s = 0; s < 3; s++) {
          equal(await directGet(cluster.servers[s].port, k) !== undefined, s === want, k);
        }
      }
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});
