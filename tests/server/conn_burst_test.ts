/**
 * What a burst of connections leaves behind (issue 9, item 8), read from
 * the server's own counters rather than RSS timing: once thousands of
 * connections have been served and closed, each serve thread trims its
 * heap (`heap_trims`), the heap is back near its starting size
 * (`heap_total_bytes`), and `stats conns` lists no connection but the
 * asking one. A binary client's first write over the 1 KB idle buffer is
 * still read as memcached's 16 KB first read takes it.
 * @module
 */

import {
  connect,
  connectionBurst,
  deepEqual,
  equal,
  ok,
  startMemcached,
  startMemrep,
  waitUntil,
} from "../helpers/mod.ts";
import { firstWriteCases, firstWriteReplies } from "../helpers/binary.ts";

const MB = 1048576;
async function stat(port: number, command: string, name: string): Promise<number> {
  const c = await connect(port);
  try {
    const text = await c.request(`${command}\r\n`, "END\r\n");
    const m = new RegExp(`^STAT ${name} (\\d+)\\r$`, "m").exec(text);
    return m ? Number(m[1]) : NaN;
  } finally {
    await c.close();
  }
}

async function checkServe(threads: number, rounds: number): Promise<void> {
  const server = await startMemrep([
    "serve",
    "-m",
    "64",
    "-c",
    "20000",
    "-U",
    "0",
    "-t",
    `${threads}`,
  ]);
  try {
    const port = server.port;
    const start = await stat(port, "stats memrep", "heap_total_bytes");
    ok(start > 0, "heap_total_bytes in stats");
    equal(await stat(port, "stats memrep", "heap_trims"), 0, "no trim before a burst");
    for (let round = 1; round <= rounds; round++) {
      // 3,000 connections over `threads` listeners: each thread sees a burst.
      await connectionBurst(port, 3000, "version\r\n", "VERSION 1.6.18\r\n");
      let trims = NaN;
      await waitUntil(
        async () => (trims = await stat(port, "stats memrep", "heap_trims")) >= threads * round,
        `every thread's heap trimmed after burst ${round}`,
        60_000, // generous: a loaded machine may keep a thread's closes coming in bulk for long
      ).catch(async (err) => {
        // What the next failure needs to be told apart: trims counted, connections left open.
        const open = await stat(port, "stats", "curr_connections");
        throw new Error(`${err.message}: heap_trims ${trims}, curr_connections ${open}`);
      });
    }
    await waitUntil(
      async () => await stat(port, "stats", "curr_connections") === 1,
      "every burst connection closed",
      15_000,
    );
    // A poll's connection, closed by the client, may still be listed until
    // its thread has read the close (seen on a loaded machine): poll the list.
    let conns = "";
    const others = () =>
      (conns.match(/:state conn_[a-z_]+/g) ?? []).filter((s) => !s.endsWith("conn_listening"));
    await waitUntil(
      async () => {
        const c = await connect(port);
        try {
          conns = await c.request("stats conns\r\n", "END\r\n");
        } finally {
          await c.close();
        }
        return others().length === 1;
      },
      "stats conns lists only the asking connection",
      15_000,
    ).catch(() => {});
    deepEqual(
      others(),
      [":state conn_parse_cmd"],
      `no connection of the bursts is still listed: ${conns.slice(0, 600)}`,
    );
    // Whichever thread answers has given its burst heap back.
    const now = await stat(port, "stats memrep", "heap_total_bytes");
    ok(
      now < start + 16 * MB,
      `heap ${(start / MB).toFixed(1)} MB at start, ${(now / MB).toFixed(1)} MB after the bursts`,
    );
  } finally {
    await server.stop();
  }
}

Deno.test("serve -t 1 trims its heap after bursts of 3,000 connections and lists none of them", () =>
  checkServe(1, 2));

Deno.test("serve -t 2 trims every thread's heap after bursts of 3,000 connections", () =>
  checkServe(2, 1));

Deno.test("serve answers binary first writes of and over its 1 KB idle buffer as memcached", async () => {
  const mc = await startMemcached();
  const mr = await startMemrep(["serve"]);
  try {
    for (const port of [mc.port, mr.port]) {
      const s = await connect(port);
      for (let i = 0; i < 60; i++) equal(await s.request(`set bm:${i} 0 0 1\r\nv`), "STORED\r\n");
      await s.close();
    }
    for (const [bytes, n, what] of firstWriteCases()) {
      deepEqual(
        await firstWriteReplies(mr.port, bytes, n),
        await firstWriteReplies(mc.port, bytes, n),
        `${what}: replies as memcached's`,
      );
    }
  } finally {
    await mr.stop();
    await mc.stop();
  }
});
