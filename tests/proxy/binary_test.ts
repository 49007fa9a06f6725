/**
 * Binary clients through `memrep proxy` over real memcached primaries and
 * backups: keys placed exactly as text keys, getkq...noop multi-gets fanned
 * out over the primaries and answered in order, quiet semantics, backups
 * holding the result of every binary write, keys text cannot carry, and a
 * bad magic byte after pipelined requests. Failover: binary_failover_test.ts;
 * fuzz: binary_fuzz_test.ts.
 */

import { deepEqual, equal, eventually, ok } from "../helpers/assert.ts";
import { connect, ignoreUnless, metaEnd, startMemcached } from "../helpers/mod.ts";
import { Ketama, ketamaName } from "../../lib/proxy/mod.ts";
import {
  arithExtras,
  decodeResponse,
  OP,
  packet,
  responseEnd,
  roundTrip,
  setExtras,
  splitResponses,
  text,
  u32Extras,
} from "../helpers/binary.ts";
import { getValue, keysOn, seeded, setValue, startCluster } from "./cluster.ts";
import { cat, directValue, get, NEED, one, set } from "./binary_cluster.ts";

Deno.test({
  name:
    "proxy binary: getkq...noop over 3 primaries comes back in request order, quiet misses silent",
  ignore: ignoreUnless("proxy binary multi-get", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 3, backups: 1 });
    try {
      const c = await connect(cluster.proxy.port);
      const rand = seeded(10);
      const keys = Array.from({ length: 300 }, (_, i) => `mk:${i}:${Math.floor(rand() * 1e6)}`);
      const present = keys.filter(() => rand() < 0.6);
      const presentSet = new Set(present);
      // setq for all present keys, then one noop: nothing but the noop answers.
      const stored = await roundTrip(
        c,
        cat(present.map((k, i) => set(k, `v-${k}`, i, OP.SETQ, i))),
        10_000,
      );
      equal(stored.length, 0, "setq is silent on success");
      // Every primary holds some of them: the multi-get really is split.
      const ports = cluster.servers.map((s) => s.port);
      for (let i = 0; i < 3; i++) {
        const on = keysOn(ports, i, "mk:", 1);
        ok(on.length === 1);
      }
      const perServer = await Promise.all(
        cluster.servers.map(async (s) => {
          let n = 0;
          for (const k of present.slice(0, 60)) {
            if ((await directValue(s.port, k)) !== undefined) n++;
          }
          return n;
        }),
      );
      ok(perServer.every((n) => n > 0), `keys on every primary: ${perServer}`);
      // getkq for every key (opaque = index), then noop.
      const replies = await roundTrip(
        c,
        cat(keys.map((k, i) => get(k, OP.GETKQ, i))),
        10_000,
      );
      const expected = keys.map((k, i) => [k, i] as const).filter(([k]) => presentSet.has(k));
      equal(replies.length, expected.length, "one reply per hit, none per miss");
      let wrong = 0;
      replies.forEach((r, j) => {
        const [k, i] = expected[j];
        const flags = new DataView(r.extras.buffer).getUint32(0);
        if (
          r.op !== OP.GETKQ || r.status !== 0 || r.opaque !== i || text(r.key) !== k ||
          text(r.value) !== `v-${k}` || flags !== present.indexOf(k) || r.cas === 0n
        ) wrong++;
      });
      equal(wrong, 0, "every hit in request order with its key, flags, value, opaque and CAS");
      // getk (loud) misses answer with the key and status 1, in order with hits.
      const mixed = await roundTrip(c, cat(keys.slice(0, 20).map((k, i) => get(k, OP.GETK, i))));
      equal(mixed.length, 20);
      mixed.forEach((r, i) => {
        equal(r.opaque, i);
        equal(text(r.key), keys[i]);
        equal(r.status, presentSet.has(keys[i]) ? 0 : 1);
      });
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "proxy binary: a key written binary lands where a text write of it lands, backups included",
  ignore: ignoreUnless("proxy binary placement", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 3, backups: 1 });
    try {
      const bc = await connect(cluster.proxy.port);
      const tc = await connect(cluster.proxy.port);
      const keys = Array.from({ length: 40 }, (_, i) => `place:${i}`);
      const where = async (k: string, v: string) => {
        const on: number[] = [];
        for (let i = 0; i < cluster.servers.length; i++) {
          if ((await directValue(cluster.servers[i].port, k)) === v) on.push(i);
        }
        return on;
      };
      let mismatches = 0;
      for (const k of keys) {
        equal((await one(bc, set(k, "bin"))).status, 0);
        const binOn = await where(k, "bin");
        await eventually(() => directValue(cluster.backups[0].port, k), "bin", "the backup has it");
        equal((await one(bc, packet({ op: OP.DELETE, key: k }))).status, 0);
        await eventually(
          () => directValue(cluster.backups[0].port, k),
          undefined,
          "deleted on the backup",
        );
        equal(await setValue(tc, k, "txt"), "STORED\r\n");
        const txtOn = await where(k, "txt");
        equal(binOn.length, 1);
        if (binOn[0] !== txtOn[0]) mismatches++;
        // And each protocol reads what the other wrote.
        const r = await one(bc, get(k));
        equal(text(r.value), "txt");
        equal((await one(bc, set(k, "bin2"))).status, 0);
        equal(await getValue(tc, k), "bin2");
      }
      equal(mismatches, 0, "binary and text writes of a key reach the same primary");
      await bc.close();
      await tc.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name:
    "proxy binary: the backup holds the result of every binary write (set, append, incr, touch, delete, flush)",
  ignore: ignoreUnless("proxy binary backups", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const c = await connect(cluster.proxy.port);
      const bk = cluster.backups[0].port;
      equal((await one(c, set("bk:s", "one", 1, OP.SET, 7))).status, 0);
      equal((await one(c, packet({ op: OP.APPEND, key: "bk:s", value: "-two" }))).status, 0);
      equal((await one(c, packet({ op: OP.PREPEND, key: "bk:s", value: "zero-" }))).status, 0);
      await eventually(() => directValue(bk, "bk:s"), "zero-one-two");
      // incr with an initial value creates the counter; the backup gets the result, not the delta.
      const created = await one(
        c,
        packet({ op: OP.INCR, key: "bk:n", extras: arithExtras(5n, 40n, 0) }),
      );
      equal(created.status, 0);
      deepEqual([...created.value], [0, 0, 0, 0, 0, 0, 0, 40]);
      const incr = await one(
        c,
        packet({ op: OP.INCR, key: "bk:n", extras: arithExtras(5n, 0n, 0) }),
      );
      deepEqual([...incr.value], [0, 0, 0, 0, 0, 0, 0, 45]);
      await eventually(() => directValue(bk, "bk:n"), "45");
      // Quiet writes replicate too.
      equal((await roundTrip(c, set("bk:q", "quiet", 0, OP.SETQ))).length, 0);
      await eventually(() => directValue(bk, "bk:q"), "quiet");
      equal((await roundTrip(c, packet({ op: OP.DELETEQ, key: "bk:q" }))).length, 0);
      await eventually(() => directValue(bk, "bk:q"), undefined);
      // touch reaches the backup: a 1 s expiry there too.
      const touched = await one(c, packet({ op: OP.TOUCH, key: "bk:s", extras: u32Extras(1) }));
      equal(touched.status, 0);
      deepEqual([...touched.extras], [0, 0, 0, 7], "touch answers the flags");
      ok(touched.cas !== 0n);
      // gat too (a backup left with the old expiry would bring the item back after it).
      equal((await one(c, set("bk:g", "gv", 0, OP.SET, 3))).status, 0);
      const gat = await one(c, packet({ op: OP.GATK, key: "bk:g", extras: u32Extras(1) }));
      deepEqual([gat.status, text(gat.key), text(gat.value), [...gat.extras]], [0, "bk:g", "gv", [
        0,
        0,
        0,
        3,
      ]]);
      await new Promise((r) => setTimeout(r, 2100));
      await eventually(() => directValue(bk, "bk:s"), undefined, "expired on the backup as well");
      equal((await one(c, get("bk:s"))).status, 1, "and through the proxy");
      await eventually(() => directValue(bk, "bk:g"), undefined, "gat's expiry on the backup");
      equal((await one(c, get("bk:g"))).status, 1, "no stale copy comes back");
      // flush empties every backend.
      equal((await one(c, set("bk:f", "x"))).status, 0);
      equal((await one(c, packet({ op: OP.FLUSH }))).status, 0);
      await eventually(() => directValue(bk, "bk:f"), undefined);
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name:
    "proxy binary: quiet errors come out in order among hits across primaries; stats; no backend",
  ignore: ignoreUnless("proxy binary quiet errors", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 3, backups: 0 });
    try {
      const c = await connect(cluster.proxy.port);
      const rand = seeded(77);
      // Random pipelines of quiet commands; the expected replies follow memcached's rules.
      const model = new Map<string, string>();
      let wrong = 0;
      for (let round = 0; round < 20; round++) {
        const parts: Uint8Array[] = [];
        const expect: [number, number][] = []; // [opaque, status] of each reply that must come
        for (let i = 0; i < 40; i++) {
          const k = `qe:${Math.floor(rand() * 30)}`;
          const opaque = round * 1000 + i;
          const r = rand();
          const has = model.has(k);
          if (r < 0.25) {
            parts.push(set(k, `v${opaque}`, opaque, OP.ADDQ));
            if (has) expect.push([opaque, 2]);
            else model.set(k, `v${opaque}`);
          } else if (r < 0.45) {
            parts.push(set(k, `r${opaque}`, opaque, OP.REPLACEQ));
            if (!has) expect.push([opaque, 1]);
            else model.set(k, `r${opaque}`);
          } else if (r < 0.7) {
            parts.push(get(k, OP.GETQ, opaque));
            if (has) expect.push([opaque, 0]);
          } else if (r < 0.85) {
            parts.push(packet({ op: OP.DELETEQ, key: k, opaque }));
            if (!has) expect.push([opaque, 1]);
            model.delete(k);
          } else {
            // incr of a non-numeric value: DELTA_BADVAL; of a missing key (no create): ENOENT.
            parts.push(packet({
              op: OP.INCRQ,
              key: k,
              opaque,
              extras: arithExtras(1n, 0n, 0xffffffff),
            }));
            expect.push([opaque, has ? 6 : 1]);
          }
        }
        const replies = await roundTrip(c, cat(parts), 10_000);
        const got = replies.map((r) => [r.opaque, r.status]);
        if (JSON.stringify(got) !== JSON.stringify(expect)) wrong++;
      }
      equal(wrong, 0, "rounds whose replies differ from memcached's quiet rules");
      // Stats: the proxy's aggregated stats as stat packets, then the empty one.
      const stats = await roundTrip(c, packet({ op: OP.STAT, opaque: 5 }));
      const names = stats.map((r) => text(r.key));
      ok(names.includes("curr_items") && names.includes("pid"), "aggregated stats");
      equal(names[names.length - 1], "", "ends with the empty packet");
      ok(stats.every((r) => r.opaque === 5 && r.op === OP.STAT && r.status === 0));
      const proxy = await roundTrip(c, packet({ op: OP.STAT, key: "proxy" }));
      const br = proxy.find((r) => text(r.key) === "binary_requests");
      ok(br !== undefined && Number(text(br.value)) > 800, "stat proxy counts binary requests");
      const bogus = await one(c, packet({ op: OP.STAT, key: "bogus", opaque: 9 }));
      deepEqual([bogus.status, text(bogus.value), bogus.opaque], [1, "Not found", 9]);
      // No backend at all: a temporary failure, never a hang or a close.
      await Promise.all(cluster.servers.map((s) => s.stop()));
      const deadline = Date.now() + 15_000;
      let r = await one(c, get("qe:1"));
      while (r.status !== 0x86 && Date.now() < deadline) r = await one(c, get("qe:1"));
      deepEqual([r.status, text(r.value)], [0x86, "No backend available"]);
      const w = await one(c, set("qe:1", "x", 3));
      deepEqual([w.status, w.opaque], [0x86, 3]);
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "proxy binary: keys text cannot carry go base64 to the same primary; over 186 bytes EINVAL",
  ignore: ignoreUnless("proxy binary keys", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 3, backups: 1 });
    try {
      let c = await connect(cluster.proxy.port);
      const rand = seeded(99);
      const ring = new Ketama(
        cluster.servers.map((x) => ({ name: ketamaName("127.0.0.1", x.port), weight: 1 })),
      );
      let wrong = 0;
      for (let i = 0; i < 40; i++) {
        const n = 1 + Math.floor(rand() * 186);
        const key = new Uint8Array(n).map(() => Math.floor(rand() * 256));
        key[0] = 0x20; // never text-safe
        const value = `value-${i}`;
        const s = await one(
          c,
          packet({ op: OP.SET, key, value, extras: setExtras(i, 0), opaque: i }),
        );
        const g = await one(c, packet({ op: OP.GETK, key, opaque: i }));
        // On the primary the ring picks for the key's bytes, as a text key's.
        const b64 = btoa(String.fromCharCode(...key));
        const on = ring.pick(key, 0, key.length);
        for (let j = 0; j < cluster.servers.length; j++) {
          const d = await connect(cluster.servers[j].port);
          const hit = (await d.request(`mg ${b64} b v`, metaEnd)).startsWith("VA ");
          await d.close();
          if (hit !== (j === on)) wrong++;
        }
        if (
          s.status !== 0 || g.status !== 0 || text(g.value) !== value ||
          text(g.key) !== text(key) || new DataView(g.extras.buffer).getUint32(0) !== i
        ) wrong++;
        const d = await one(c, packet({ op: OP.DELETE, key }));
        if (d.status !== 0) wrong++;
      }
      equal(wrong, 0, "binary keys stored, read back and deleted");
      // Over 186 bytes: memcached's answer to an over-long key (binary_long_key_test.ts).
      const long = "\x01".repeat(187);
      await c.send(packet({ op: OP.SET, key: long, value: "v", extras: setExtras(0, 0) }));
      const r = decodeResponse(await c.readUntil((b) => responseEnd(b, 0), 10_000));
      deepEqual([r.status, text(r.value)], [4, "Invalid arguments"]);
      ok(await c.waitClosed(10_000), "closed after it, as memcached");
      await c.close();
      c = await connect(cluster.proxy.port);
      // A text-safe key of 250 bytes is fine.
      const k250 = "k".repeat(250);
      equal((await one(c, set(k250, "v"))).status, 0);
      equal(text((await one(c, get(k250))).value), "v");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test({
  name: "proxy binary: bad magic after pipelined gets over 3 primaries sends what memcached sends",
  ignore: ignoreUnless("proxy binary bad magic", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 3, backups: 1 });
    const ref = await startMemcached();
    try {
      const keys = Array.from({ length: 60 }, (_, i) => `bm:${i}`);
      for (const port of [cluster.proxy.port, ref.port]) {
        const c = await connect(port);
        equal((await roundTrip(c, cat(keys.map((k) => set(k, "v", 0, OP.SETQ))))).length, 0);
        await c.close();
      }
      const bad = packet({ op: OP.GET, key: "bm:0", magic: 0x00 });
      /** Opaques of the replies before the close. */
      const replies = async (port: number, n: number, miss: number) => {
        const d = await connect(port);
        const gets = keys.slice(0, n).map((k, i) => get(i === miss ? "bm:none" : k, OP.GET, i));
        await d.send(cat([...gets, bad]));
        ok(await d.waitClosed(10_000), "closed");
        const { packets, rest } = splitResponses(await d.readIdle(1, 1));
        await d.close();
        return [packets.map((r) => `${r.opaque}:${r.status}`), rest.length];
      };
      // [gets, index of a miss ("Not found", an error) or -1]: memcached transmits after 21
      // requests of a read, then every 20, and at an error; the rest is lost.
      const cases: [number, number][] = [[20, -1], [21, -1], [45, -1], [45, 42], [10, 4], [3, 2]];
      for (const [n, miss] of cases) {
        const expected = await replies(ref.port, n, miss);
        deepEqual(
          await replies(cluster.proxy.port, n, miss),
          expected,
          `${n} gets, miss at ${miss}`,
        );
      }
    } finally {
      await ref.stop();
      await cluster.stop();
    }
  },
});
