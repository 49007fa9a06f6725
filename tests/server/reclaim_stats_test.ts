/**
 * Dead items and memcached 1.6.18's counters for them (its t/stats.t,
 * t/issue_183.t, t/lru-crawler.t): flushed items stay until a read finds
 * them (get_flushed) or they are reclaimed, by a store that needs their
 * memory or by the sweep a second later (reclaimed, curr_items back to 0);
 * `lru_crawler crawl` reclaims a class's expired items (crawler_reclaimed,
 * crawler_items_checked). Each scenario runs on memcached and on serve,
 * with the same assertions.
 * @module
 */

import {
  connect,
  equal,
  ignoreUnless,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  type TestConn,
  waitUntil,
} from "../helpers/mod.ts";

async function stat(c: TestConn, name: string): Promise<string | undefined> {
  return (await c.stats()).get(name);
}

/** `fn` against memcached and serve, both started with `args`. */
async function onBoth(args: string[], fn: (c: TestConn, who: string) => Promise<void>) {
  const servers: ProcessHandle[] = [
    await startMemcached(args),
    await startMemrep(["serve", "-U", "0", ...args]),
  ];
  try {
    for (const [i, s] of servers.entries()) {
      const c = await connect(s.port);
      try {
        await fn(c, i === 0 ? "memcached" : "memrep");
      } finally {
        await c.close();
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const NAME = "flush_all: a read of a flushed item counts get_flushed; the rest are reclaimed";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    await onBoth([], async (c, who) => {
      for (const k of ["a", "b", "c"]) {
        equal(await c.request(`set ${k} 0 0 1\r\nx\r\n`), "STORED\r\n");
      }
      equal(await c.request("flush_all"), "OK\r\n");
      equal(await c.request("get a"), "END\r\n", who);
      equal(await stat(c, "get_flushed"), "1", `${who}: get_flushed`);
      equal(await stat(c, "cmd_flush"), "1", `${who}: cmd_flush`);
      // A store after the flush is live; the two flushed items still count until reclaimed.
      equal(await c.request("set d 0 0 1\r\ny\r\n"), "STORED\r\n");
      equal(await c.request("get d", "END\r\n"), "VALUE d 0 1\r\ny\r\nEND\r\n", who);
      await waitUntil(async () => await stat(c, "curr_items") === "1", `${who}: swept`, 5000);
      equal(await stat(c, "reclaimed"), "2", `${who}: reclaimed`);
      equal(await c.request("get b c"), "END\r\n", who);
      equal(await stat(c, "get_flushed"), "1", `${who}: nothing left to find`);
    });
  },
});

const NAME_183 = "flush_all: a set of a flushed key reclaims the old item (t/issue_183.t)";

Deno.test({
  name: NAME_183,
  ignore: ignoreUnless(NAME_183, ["memcached"]),
  async fn() {
    await onBoth(["-o", "no_modern"], async (c, who) => {
      equal(await c.request("set key 0 0 1\r\n1\r\n"), "STORED\r\n");
      equal(await stat(c, "reclaimed"), "0", who);
      equal(await c.request("flush_all"), "OK\r\n");
      equal(await c.request("set key 0 0 1\r\n1\r\n"), "STORED\r\n");
      equal(await stat(c, "reclaimed"), "1", `${who}: reclaimed`);
      equal(await c.request("get key", "END\r\n"), "VALUE key 0 1\r\n1\r\nEND\r\n", who);
    });
  },
});

Deno.test("flush_all kills an item stored with an explicit CAS above the counter's (meta E)", async () => {
  const server = await startMemrep(["serve", "-U", "0"]);
  const c = await connect(server.port);
  try {
    equal(await c.request("ms big 1 E9007199254740000\r\nx\r\n"), "HD\r\n");
    equal(await c.request("ms small 1\r\ny\r\n"), "HD\r\n");
    equal(await c.request("flush_all"), "OK\r\n");
    equal(await c.request("mg big v"), "EN\r\n");
    equal(await c.request("mg small v"), "EN\r\n");
    equal(await c.request("ms after 1\r\nz\r\n"), "HD\r\n");
    equal(await c.request("mg after v", "\r\nz\r\n"), "VA 1\r\nz\r\n");
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test("a store with an explicit CAS below a flush_all's bound lives; the flushed items stay gone", async () => {
  const server = await startMemrep(["serve", "-U", "0"]);
  const c = await connect(server.port);
  try {
    for (let i = 0; i < 20; i++) equal(await c.request(`set k${i} 0 0 1\r\nx\r\n`), "STORED\r\n");
    equal(await c.request("flush_all"), "OK\r\n");
    equal(await c.request("ms low 1 E3\r\ny\r\n"), "HD\r\n");
    equal(await c.request("mg low v c", "\r\ny\r\n"), "VA 1 c3\r\ny\r\n");
    for (let i = 0; i < 20; i++) equal(await c.request(`mg k${i} v`), "EN\r\n");
    equal((await c.stats()).get("curr_items"), "1");
  } finally {
    await c.close();
    await server.stop();
  }
});

const NAME_CRAWL =
  "lru_crawler crawl reclaims a class's expired items and counts them (t/lru-crawler.t)";

Deno.test({
  name: NAME_CRAWL,
  ignore: ignoreUnless(NAME_CRAWL, ["memcached"]),
  async fn() {
    await onBoth(["-m", "32", "-o", "no_modern"], async (c, who) => {
      for (const [prefix, ttl] of [["i", 0], ["l", 3600], ["s", 1]] as const) {
        for (let i = 0; i < 30; i++) {
          equal(await c.request(`set ${prefix}foo${i} 0 ${ttl} 2\r\nok\r\n`), "STORED\r\n");
        }
      }
      equal((await c.stats("slabs")).get("1:used_chunks"), "90", who);
      await new Promise((r) => setTimeout(r, 2200));
      equal(await c.request("lru_crawler enable"), "OK\r\n", who);
      equal(await c.request("lru_crawler crawl 1"), "OK\r\n", who);
      await waitUntil(async () => await stat(c, "lru_crawler_running") === "0", `${who}: crawled`);
      equal((await c.stats("slabs")).get("1:used_chunks"), "60", `${who}: used chunks`);
      const items = await c.stats("items");
      equal(items.get("items:1:crawler_reclaimed"), "30", `${who}: reclaimed`);
      equal(await stat(c, "crawler_reclaimed"), "30", `${who}: total`);
      equal(await c.request("get lfoo1 ifoo1", "END\r\n").then((r) => r.split("VALUE").length), 3);
    });
  },
});

const NAME_RESET =
  "stats reset zeroes the item event counters (stored, evicted, reclaimed, expired), as memcached";

Deno.test({
  name: NAME_RESET,
  ignore: ignoreUnless(NAME_RESET, ["memcached"]),
  async fn() {
    await onBoth(["-m", "4"], async (c, who) => {
      const v = "x".repeat(60_000);
      for (let i = 0; i < 200; i++) {
        equal(await c.request(`set k${i} 0 0 ${v.length}\r\n${v}\r\n`), "STORED\r\n");
      }
      equal(await c.request("set e 0 1 1\r\n1\r\n"), "STORED\r\n");
      await new Promise((r) => setTimeout(r, 2100));
      equal(await c.request("get e"), "END\r\n");
      const before = await c.stats();
      for (const k of ["total_items", "evictions", "evicted_unfetched"]) {
        equal(Number(before.get(k)) > 0, true, `${who}: ${k} before the reset`);
      }
      equal(await c.request("stats reset"), "RESET\r\n");
      const after = await c.stats();
      for (
        const k of ["total_items", "evictions", "evicted_unfetched", "get_expired", "reclaimed"]
      ) {
        equal(after.get(k), "0", `${who}: ${k} after the reset`);
      }
      equal(after.get("curr_items"), before.get("curr_items"), `${who}: what is held stays`);
      for (const [k, n] of await c.stats("items")) {
        if (k.endsWith(":evicted") || k.endsWith(":evicted_unfetched")) {
          equal(n, "0", `${who}: ${k}`);
        }
      }
    });
  },
});

Deno.test("20,000 pipelined flush_all: the server answers, and every flushed item is reclaimed within seconds", async () => {
  const server = await startMemrep(["serve", "-U", "0"]);
  const c = await connect(server.port);
  try {
    for (let i = 0; i < 200; i++) equal(await c.request(`set k${i} 0 0 1\r\nx\r\n`), "STORED\r\n");
    await c.send("flush_all\r\n".repeat(20_000) + "mn\r\n");
    equal((await c.readUntilText("MN\r\n", 20_000)).length, "OK\r\n".length * 20_000 + 4);
    equal(await c.request("set after 0 0 1\r\ny\r\n"), "STORED\r\n");
    await waitUntil(async () => await stat(c, "curr_items") === "1", "swept", 5000);
    equal(await stat(c, "reclaimed"), "200");
    equal(await c.request("get after", "END\r\n"), "VALUE after 0 1\r\ny\r\nEND\r\n");
  } finally {
    await c.close();
    await server.stop();
  }
});
