/**
 * What a burst of client connections leaves behind in the proxy (issue 9,
 * item 8), read from its own counters: once 3,000 clients have been
 * answered and closed, `stats proxy` counts a heap trim and no connection
 * but the asking one. Each idle client holds a 1 KB receive buffer and no
 * output buffer (both are lent from pools while busy); a binary client's
 * first read still takes what memcached's 16 KB one would (which replies
 * a bad magic byte loses depends on it), and a first send of exactly 1 KB
 * is answered.
 * @module
 */

import { OP, packet, splitResponses } from "../helpers/binary.ts";
import { cat } from "./binary_cluster.ts";

import {
  connect,
  connectionBurst,
  deepEqual,
  equal,
  ok,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  waitUntil,
} from "../helpers/mod.ts";

async function proxyStat(port: number, name: string): Promise<number> {
  const c = await connect(port);
  try {
    const text = await c.request("stats proxy\r\n", "END\r\n");
    const m = new RegExp(`^STAT ${name} (\\d+)\\r$`, "m").exec(text);
    return m ? Number(m[1]) : NaN;
  } finally {
    await c.close();
  }
}

Deno.test("proxy trims its heap after a burst of 3,000 client connections", async () => {
  const backend: ProcessHandle = await startMemcached(["-c", "20000"]);
  let proxy: ProcessHandle | undefined;
  try {
    proxy = await startMemrep(["proxy", "-s", `127.0.0.1:${backend.port}`, "-n", "20000"]);
    const port = proxy.port;
    equal(await proxyStat(port, "heap_trims"), 0, "no trim before a burst");
    // Half of them go through to the backend (a get), half are answered by the proxy.
    await connectionBurst(port, 1500, "get nothing\r\n", "END\r\n");
    await connectionBurst(port, 3000, "version\r\n", "VERSION 1.6.18\r\n");
    await waitUntil(
      async () => await proxyStat(port, "heap_trims") >= 1,
      "the proxy's heap trimmed after the burst",
      15_000,
    );
    await waitUntil(
      async () => await proxyStat(port, "curr_connections") === 1,
      "every burst connection closed",
      15_000,
    );
  } finally {
    await proxy?.stop();
    await backend.stop();
  }
});

/** Opaque:status of every reply to `bytes` sent as a first write, until `n` replies or the close. */
async function firstWrite(port: number, bytes: Uint8Array, n: number): Promise<string[]> {
  const c = await connect(port);
  try {
    await c.send(bytes);
    const raw = await c.readUntil((b) => {
      const { packets, rest } = splitResponses(b);
      return packets.length >= n ? b.length - rest.length : -1;
    }, 10_000).catch(async () => await c.readIdle(1, 1));
    return splitResponses(raw).packets.map((r) => `${r.opaque}:${r.status}`);
  } finally {
    await c.close();
  }
}

Deno.test("proxy answers a binary first write of exactly 1 KB, and one ending in a bad magic byte as memcached", async () => {
  const backend: ProcessHandle = await startMemcached();
  let proxy: ProcessHandle | undefined;
  try {
    proxy = await startMemrep(["proxy", "-s", `127.0.0.1:${backend.port}`]);
    const noops = (n: number) =>
      Array.from({ length: n }, (_, i) => packet({ op: OP.NOOP, opaque: i + 1 }));
    // 40 noops and a 40-byte-key get: the idle buffer exactly full, nothing behind it.
    const exact = cat([...noops(40), packet({ op: OP.GET, key: "x".repeat(40), opaque: 99 })]);
    equal(exact.length, 1024);
    // 60 hits, over 1 KB, then a bad magic byte: memcached sends the replies up to its last
    // transmit (after 21 requests of one read, then every 20), so what is sent depends on the read.
    const setter = await connect(backend.port);
    for (let i = 0; i < 60; i++) {
      equal(await setter.request(`set bm:${i} 0 0 1\r\nv`), "STORED\r\n");
    }
    await setter.close();
    const gets = Array.from(
      { length: 60 },
      (_, i) => packet({ op: OP.GET, key: `bm:${i}`, opaque: i + 1 }),
    );
    const bad = cat([...gets, packet({ op: OP.GET, key: "k", magic: 0x00 })]);
    ok(bad.length > 1024 && bad.length < 16384);
    // 41 noops and a bad magic byte, exactly 1 KB.
    const badExact = cat([...noops(41), packet({ op: OP.GET, key: "k".repeat(16), magic: 0 })]);
    equal(badExact.length, 1024);
    for (
      const [bytes, n, what] of [[exact, 41, "exact"], [bad, 61, "bad"], [
        badExact,
        42,
        "bad exact",
      ]] as const
    ) {
      const expected = await firstWrite(backend.port, bytes, n);
      deepEqual(
        await firstWrite(proxy.port, bytes, n),
        expected,
        `${what}: replies as memcached's`,
      );
    }
    // Still serving.
    const c = await connect(proxy.port);
    equal(await c.request("version\r\n"), "VERSION 1.6.18\r\n");
    await c.close();
  } finally {
    await proxy?.stop();
    await backend.stop();
  }
});
