/**
 * `stats conns` and `watch` with serve threads: they cover the connections
 * of every thread, not only the one the asking connection landed on
 * (memcached's worker threads all report into one connection list and one
 * logger).
 * @module
 */

import {
  connect,
  deepEqual,
  equal,
  ok,
  type ProcessHandle,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

const CLIENTS = 16; // SO_REUSEPORT spreads by hash: with 2 threads, all on one is 2^-15

async function startThreads(n: number): Promise<ProcessHandle> {
  const server = await startMemrep(["serve", "-t", String(n), "-vv"]);
  await server.waitForLog(new RegExp(`^memrep serve: listening on .*, ${n} threads$`));
  return server;
}

Deno.test("serve -t 2: stats conns from any connection lists the connections of every thread", async () => {
  const server = await startThreads(2);
  const conns: TestConn[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const c = await connect(server.port);
      conns.push(c);
      equal(await c.request("version\r\n"), "VERSION 1.6.18\r\n");
    }
    await conns[3].send("set half 0 0 5\r\nab"); // inside a value: conn_nread, on its thread
    await new Promise((r) => setTimeout(r, 200));
    for (const asker of conns) {
      if (asker === conns[3]) continue;
      const stats = await asker.request("stats conns\r\n", "END\r\n", 5000);
      const ids = [...stats.matchAll(/STAT (\d+):listen_addr /g)].map((m) => Number(m[1]));
      equal(ids.length, CLIENTS, stats);
      equal(new Set(ids).size, CLIENTS, "connection ids are unique over the threads");
      deepEqual(ids, [...ids].sort((a, b) => a - b), "in id order");
      equal(stats.match(/:state conn_parse_cmd\r\n/g)?.length, 1, "only the asking one");
      equal(stats.match(/:state conn_nread\r\n/g)?.length, 1, "the one inside a set");
      equal(stats.match(/:state conn_listening\r\n/g)?.length, 1, "the asking thread's listener");
      ok(stats.endsWith("END\r\n"));
    }
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
});

Deno.test("serve -t 2: watch sees the mutations, fetches and connection events of every thread", async () => {
  const server = await startThreads(2);
  const conns: TestConn[] = [];
  const watcher = await connect(server.port);
  try {
    equal(await watcher.request("watch mutations fetchers connevents\r\n"), "OK\r\n");
    const seed = Math.floor(Math.random() * 1e9);
    for (let i = 0; i < CLIENTS; i++) {
      const c = await connect(server.port);
      conns.push(c);
      equal(await c.request(`set w${seed}_${i} 0 0 1\r\nx\r\n`), "STORED\r\n");
      equal(
        await c.request(`get w${seed}_${i}\r\n`, "END\r\n"),
        `VALUE w${seed}_${i} 0 1\r\nx\r\nEND\r\n`,
      );
    }
    // Per key: the store's lookup (not_found), the store, the get (found).
    const want = new Set<string>();
    for (let i = 0; i < CLIENTS; i++) {
      want.add(`item_get w${seed}_${i} not_found`);
      want.add(`item_store w${seed}_${i} stored`);
      want.add(`item_get w${seed}_${i} found`);
    }
    const seen = new Set<string>();
    const gids: number[] = [];
    let opened = 0;
    const deadline = Date.now() + 10_000;
    while ((seen.size < want.size || opened < CLIENTS) && Date.now() < deadline) {
      const line = (await watcher.readUntilText("\n", 10_000)).trimEnd();
      if (/ type=conn_new rip=127\.0\.0\.1 /.test(line)) opened++;
      const m = /gid=(\d+) type=(item_get|item_store) key=(\S+) status=(\S+)/.exec(line);
      if (!m || !m[3].startsWith(`w${seed}_`)) continue;
      gids.push(Number(m[1]));
      seen.add(`${m[2]} ${m[3]} ${m[4]}`);
    }
    deepEqual(
      [...want].filter((w) => !seen.has(w)),
      [],
      "every thread's events reached the watcher",
    );
    equal(new Set(gids).size, gids.length, "gids are unique over the threads");
    ok(opened >= CLIENTS, `every thread's conn_new: ${opened}`);
  } finally {
    for (const c of conns) await c.close();
    await watcher.close();
    await server.stop();
  }
});
