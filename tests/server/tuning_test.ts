/**
 * Run-time tuning with effects: `cache_memlimit` really moves the memory
 * limit (memcached's t/dyn-maxbytes.t), checked on memrep and on real
 * memcached with the same assertions.
 * @module
 */

import {
  connect,
  equal,
  ignoreUnless,
  ok,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

const VALUE = "B".repeat(66560);

async function fill(c: TestConn, from: number, to: number): Promise<void> {
  const batch: string[] = [];
  for (let k = from; k < to; k++) batch.push(`set key${k} 0 0 ${VALUE.length}\r\n${VALUE}\r\n`);
  await c.send(batch.join("") + "mn\r\n");
  const reply = await c.readUntilText("MN\r\n", 20_000);
  equal(reply, "STORED\r\n".repeat(to - from) + "MN\r\n");
}

async function evictions(c: TestConn): Promise<number> {
  return Number((await c.stats()).get("evictions"));
}

async function checkMemlimit(server: ProcessHandle): Promise<void> {
  const c = await connect(server.port);
  try {
    // 8 MB hold ~120 values of 65 KB: 200 evict.
    await fill(c, 0, 200);
    const evicted = await evictions(c);
    ok(evicted > 0, `evictions at 8m: ${evicted}`);
    equal(await c.request("cache_memlimit 32\r\n"), "OK\r\n");
    equal((await c.stats("settings")).get("maxbytes"), String(32 * 1048576));
    equal((await c.stats()).get("limit_maxbytes"), String(32 * 1048576));
    // Room for 200 more without evicting any.
    await fill(c, 200, 400);
    equal(await evictions(c), evicted, "no evictions below the raised limit");
    const malloced = Number((await c.stats("slabs")).get("total_malloced"));
    ok(malloced > 8 * 1048576, `pages grew past the old limit: ${malloced}`);
    // Lowered: new items evict old ones instead of taking pages.
    equal(await c.request("cache_memlimit 8\r\n"), "OK\r\n");
    await fill(c, 400, 600);
    ok(await evictions(c) > evicted + 100, "evictions after lowering the limit");
    equal((await c.stats("settings")).get("maxbytes"), String(8 * 1048576));
    // The newest items survive.
    const last = await c.request("get key599\r\n", "END\r\n");
    ok(last.startsWith("VALUE key599 0 66560\r\n"), "the last item is kept");
  } finally {
    await c.close();
  }
}

const NAME = "cache_memlimit raises and lowers the memory limit at run time (dyn-maxbytes.t)";

Deno.test(NAME, async () => {
  const server = await startMemrep(["serve", "-m", "8", "-t", "1"]);
  try {
    await checkMemlimit(server);
  } finally {
    await server.stop();
  }
});

const REF = "cache_memlimit checks hold on real memcached too";

Deno.test({
  name: REF,
  ignore: ignoreUnless(REF, ["memcached"]),
  async fn() {
    const server = await startMemcached(["-m", "8"]);
    try {
      await checkMemlimit(server);
    } finally {
      await server.stop();
    }
  },
});

const THREADS = "cache_memlimit set on one serve thread applies to every thread";

Deno.test(THREADS, async () => {
  const server = await startMemrep(["serve", "-m", "8", "-t", "2"]);
  try {
    // Connections spread over the threads; each must see the new limit.
    const conns = await Promise.all(Array.from({ length: 6 }, () => connect(server.port)));
    try {
      equal(await conns[0].request("cache_memlimit 24\r\n"), "OK\r\n");
      for (const c of conns) {
        equal((await c.stats("settings")).get("maxbytes"), String(24 * 1048576));
      }
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
  } finally {
    await server.stop();
  }
});
