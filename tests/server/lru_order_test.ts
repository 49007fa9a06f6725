/**
 * Eviction order under -m, against memcached 1.6.18: an item read once is
 * only "fetched" and goes like an unread one; an item read twice is active and
 * outlives a fill that evicts every colder key.
 * @module
 */

import {
  connect,
  equal,
  ignoreUnless,
  mulberry32,
  ok,
  startMemcached,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

const KEYS = 60;
const VALUE = "v".repeat(500);

/** Per key: present after the fill, and its `me` fetch= field. */
interface Outcome {
  present: boolean[];
  fetch: string[];
}

async function meAll(c: TestConn, keys: number[]): Promise<string[]> {
  let batch = "";
  for (const k of keys) batch += `me k${k}\r\n`;
  const text = await c.request(batch + "mn", "MN\r\n");
  return text.split("\r\n").slice(0, keys.length);
}

/** Stores KEYS keys, reads each reads[k] times, then fills until every unread key is gone. */
async function scenario(port: number, reads: number[]): Promise<Outcome> {
  const c = await connect(port);
  try {
    let batch = "";
    for (let k = 0; k < KEYS; k++) batch += `set k${k} 0 0 ${VALUE.length} noreply\r\n${VALUE}\r\n`;
    await c.request(batch + "mn", "MN\r\n");
    for (let k = 0; k < KEYS; k++) {
      for (let r = 0; r < reads[k]; r++) {
        const got = await c.request(`get k${k}`, "END\r\n");
        equal(got, `VALUE k${k} 0 ${VALUE.length}\r\n${VALUE}\r\nEND\r\n`);
      }
    }
    const cold = reads.flatMap((r, k) => r === 0 ? [k] : []);
    let n = 0;
    for (;;) {
      const left = (await meAll(c, cold)).filter((l) => l !== "EN").length;
      if (left === 0) break;
      ok(n < 40_000, `unread keys still present after ${n} fill items`);
      batch = "";
      for (let j = 0; j < 100; j++, n++) {
        batch += `set f${n} 0 0 ${VALUE.length} noreply\r\n${VALUE}\r\n`;
      }
      await c.request(batch + "mn", "MN\r\n");
    }
    const all = Array.from({ length: KEYS }, (_, k) => k);
    const lines = await meAll(c, all);
    return {
      present: lines.map((l) => l !== "EN"),
      fetch: lines.map((l) => /fetch=(\w+)/.exec(l)?.[1] ?? "-"),
    };
  } finally {
    await c.close();
  }
}

const NAME =
  "an item read twice survives a fill that evicts keys read once or never, as in memcached";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const seed = Number(Deno.env.get("LRU_SEED") ?? Date.now() >>> 0); // LRU_SEED replays a run
    const rnd = mulberry32(seed);
    // Every group non-empty: keys 0..2 get 0, 1, 2 reads, the rest at random.
    const reads = Array.from({ length: KEYS }, (_, k) => k < 3 ? k : Math.floor(rnd() * 3));
    const why = `seed ${seed}`;
    const ref = await startMemcached(["-m", "2"]);
    let sut;
    try {
      sut = await startMemrep(["serve", "-m", "2", "-U", "0"]);
      const [mc, mr] = await Promise.all([scenario(ref.port, reads), scenario(sut.port, reads)]);
      for (let k = 0; k < KEYS; k++) {
        if (reads[k] < 2) {
          // Deterministic in memcached: never active, so evicted from COLD like the fill.
          equal(mc.present[k], false, `memcached k${k} (${reads[k]} reads), ${why}`);
          equal(mr.present[k], false, `memrep k${k} (${reads[k]} reads), ${why}`);
        } else {
          // memcached's WARM ages items by its clock, so only memrep's survivor is exact.
          equal(mr.present[k], true, `memrep k${k} (2 reads), ${why}`);
          equal(mr.fetch[k], "yes", `memrep k${k} fetch=, ${why}`);
          if (mc.present[k]) equal(mc.fetch[k], "yes", `memcached k${k} fetch=, ${why}`);
        }
      }
      if (Deno.env.get("LRU_SHOW")) {
        console.log("memcached kept", mc.present.filter((p, k) => p && reads[k] === 2).length);
      }
      const c = await connect(sut.port);
      try {
        const items = await c.stats("items");
        const moves = [...items].filter(([k]) => k.endsWith(":moves_to_warm"))
          .reduce((s, [, v]) => s + Number(v), 0);
        const twice = reads.filter((r) => r === 2).length;
        equal(moves, twice, `moves_to_warm counts each rescue once, ${why}`);
      } finally {
        await c.close();
      }
    } finally {
      await Promise.all([ref.stop(), sut?.stop()]);
    }
  },
});

Deno.test({
  name:
    "a first read leaves an item's last-access time (mg l, me la=), as memcached's do_item_bump",
  ignore: ignoreUnless("last access after one read", ["memcached"]),
  async fn() {
    const servers = [await startMemcached([]), await startMemrep(["serve", "-t", "1"])];
    try {
      const conns = await Promise.all(servers.map((s) => connect(s.port)));
      for (const c of conns) equal(await c.request("set a 0 0 1\r\n1"), "STORED\r\n");
      await new Promise((r) => setTimeout(r, 3100));
      for (const c of conns) {
        equal(await c.request("get a", "END\r\n"), "VALUE a 0 1\r\n1\r\nEND\r\n");
        // `u`: this check does not bump the item itself.
        const l = Number(/ l(\d+)/.exec(await c.request("mg a l u"))?.[1]);
        ok(l >= 3, `l${l} after one read: the read made the item recent`);
      }
      await Promise.all(conns.map((c) => c.close()));
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  },
});
