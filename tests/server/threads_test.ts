/**
 * `memrep serve -t N`: several threads accept on one port and share one
 * cache; every connection sees every other connection's writes.
 * @module
 */

import { hashBytes } from "../../lib/store/mod.ts";
import {
  connect,
  equal,
  ok,
  type ProcessHandle,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

/**
 * `serve -t n`, returned once every thread listens: the port answers as soon
 * as the first one does, and connections made before the others join would
 * all land on it.
 */
async function startThreads(n: number, ...args: string[]): Promise<ProcessHandle> {
  const server = await startMemrep(["serve", "-t", String(n), "-vv", ...args]);
  await server.waitForLog(new RegExp(`^memrep serve: listening on .*, ${n} threads$`));
  return server;
}

Deno.test("serve -t 3 shares one cache between threads: writes on any connection are read on all", async () => {
  const server = await startThreads(3);
  const conns: TestConn[] = [];
  try {
    // SO_REUSEPORT spreads connections over the threads by hash: open plenty.
    for (let i = 0; i < 24; i++) conns.push(await connect(server.port));
    for (let i = 0; i < conns.length; i++) {
      equal(await conns[i].request(`set k${i} ${i} 0 2\r\nv${i % 10}`), "STORED\r\n");
    }
    for (let i = 0; i < conns.length; i++) {
      const reader = conns[(i * 7 + 3) % conns.length];
      equal(
        await reader.request(`get k${i}`, "END\r\n"),
        `VALUE k${i} ${i} 2\r\nv${i % 10}\r\nEND\r\n`,
      );
    }
    // Concurrent increments from every connection on one counter lose nothing.
    equal(await conns[0].request("set counter 0 0 1\r\n0"), "STORED\r\n");
    await Promise.all(conns.map(async (c) => {
      let batch = "";
      for (let j = 0; j < 100; j++) batch += "incr counter 1 noreply\r\n";
      await c.request(batch + "mn", "MN\r\n");
    }));
    equal(
      await conns[5].request("get counter", "END\r\n"),
      `VALUE counter 0 4\r\n${24 * 100}\r\nEND\r\n`,
    );
    equal((await conns[1].stats()).get("threads"), "3");
    equal((await conns[2].stats()).get("curr_items"), String(conns.length + 1));
    ok(Number((await conns[3].stats()).get("cmd_set")) >= conns.length + 1);
    equal((await conns[4].stats()).get("curr_connections"), String(conns.length));
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
});

Deno.test("serve -t 2: a thread idle while another grew the hash table finds every key on its first command", async () => {
  const server = await startThreads(2, "-m", "256");
  const conns: TestConn[] = [];
  try {
    // Open them all first: some land on the thread that will stay idle during the fill.
    for (let i = 0; i < 16; i++) conns.push(await connect(server.port));
    // 110,000 items through one connection: the table grows from 2^16 buckets to 2^17.
    const N = 110_000;
    for (let i = 0; i < N; i += 10_000) {
      let batch = "";
      for (let j = i; j < i + 10_000; j++) batch += `set k${j} 0 0 1 noreply\r\nx\r\n`;
      await conns[0].request(batch + "mn", "MN\r\n");
    }
    equal((await conns[0].stats()).get("hash_power_level"), "17");
    // Keys in the new upper half of the buckets (bit 16 of the hash): an out-of-date view of
    // the buckets cannot see them.
    const enc = new TextEncoder();
    const upper: string[] = [];
    for (let j = 0; upper.length < conns.length; j++) {
      const k = enc.encode(`k${j}`);
      if ((hashBytes(k, 0, k.length) >>> 16) & 1) upper.push(`k${j}`);
    }
    // Each other connection's first command deletes one of them.
    for (let i = 1; i < conns.length; i++) {
      equal(await conns[i].request(`delete ${upper[i]}`), "DELETED\r\n", `delete ${upper[i]}`);
    }
    for (let i = 1; i < conns.length; i++) {
      equal(await conns[0].request(`get ${upper[i]}`, "END\r\n"), "END\r\n");
    }
    equal((await conns[0].stats()).get("curr_items"), String(N - (conns.length - 1)));
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
});

Deno.test("serve -t 2 stops every thread on SIGTERM and on shutdown from any connection", async () => {
  const server = await startThreads(2, "-A");
  const conns: TestConn[] = [];
  for (let i = 0; i < 8; i++) conns.push(await connect(server.port));
  try {
    await conns[7].send("shutdown\r\n");
    const status = await server.status;
    equal(status.code, 0);
    for (const c of conns) ok(await c.waitClosed(3000), "every connection closed");
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
  const again = await startMemrep(["serve", "-t", "2"]);
  again.kill("SIGTERM");
  equal((await again.status).code, 0);
});

Deno.test("serve -t 3: stats reset from one connection resets the counters of every thread", async () => {
  const server = await startThreads(3);
  const conns: TestConn[] = [];
  try {
    for (let i = 0; i < 24; i++) conns.push(await connect(server.port));
    for (const c of conns) equal(await c.request("get nothing", "END\r\n"), "END\r\n");
    equal((await conns[0].stats()).get("cmd_get"), "24");
    equal(await conns[7].request("stats reset"), "RESET\r\n");
    for (const c of conns) {
      const s = await c.stats();
      equal(s.get("cmd_get"), "0");
      equal(s.get("get_misses"), "0");
      equal(s.get("curr_connections"), "24", "open connections are not reset");
    }
    await conns[3].request("get nothing", "END\r\n");
    equal((await conns[11].stats()).get("cmd_get"), "1");
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
});

Deno.test("serve -t 3: stats detail counts every thread's connections into one table", async () => {
  const server = await startThreads(3);
  const conns: TestConn[] = [];
  try {
    for (let i = 0; i < 24; i++) conns.push(await connect(server.port));
    equal(await conns[5].request("stats detail on"), "OK\r\n");
    equal(await conns[0].request("set p:k 0 0 1\r\nx"), "STORED\r\n");
    for (const c of conns) {
      equal(await c.request("get p:k q:k", "END\r\n"), "VALUE p:k 0 1\r\nx\r\nEND\r\n");
    }
    await conns[9].request("delete p:k");
    const want =
      "PREFIX q get 24 hit 0 set 0 del 0\r\nPREFIX p get 24 hit 24 set 1 del 1\r\nEND\r\n";
    for (const c of conns) {
      const dump = await c.request("stats detail dump", "END\r\n");
      equal(dump.split("\r\n").sort().join(), want.split("\r\n").sort().join());
    }
    equal(await conns[17].request("stats detail off"), "OK\r\n");
    for (const c of conns) await c.request("get p:k", "END\r\n");
    ok((await conns[2].request("stats detail dump", "END\r\n")).includes("PREFIX p get 24 "));
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
});

Deno.test("serve -t 4: once one connection finds items gone with a delayed flush_all's second, no thread serves them", async () => {
  const server = await startThreads(4);
  const conns: TestConn[] = [];
  try {
    for (let i = 0; i < 16; i++) conns.push(await connect(server.port));
    // A key for each read: a read reaps what it finds flushed, so a key is read only once.
    const N = 40_000;
    for (let i = 0; i < N; i += 10_000) {
      let batch = "";
      for (let j = i; j < i + 10_000; j++) batch += `set k${j} 0 0 1 noreply\r\nx\r\n`;
      await conns[0].request(batch + "mn", "MN\r\n");
    }
    equal(await conns[0].request("flush_all 2"), "OK\r\n"); // flushed when the next second begins
    // Through the connections in turn (the threads' clocks ticking at their own phases), each
    // read after the reply of the one before: none may find an item that an earlier one missed.
    let firstMiss = -1;
    for (let i = 0; i < N && (firstMiss < 0 || i < firstMiss + 160); i++) {
      const hit = await conns[i % conns.length].request(`get k${i}`, "END\r\n") !== "END\r\n";
      if (!hit && firstMiss < 0) firstMiss = i;
      ok(
        !hit || firstMiss < 0,
        `k${i} served on connection ${i % conns.length} after k${firstMiss} was gone`,
      );
    }
    ok(firstMiss > 0, "the flush came while reading");
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
});
