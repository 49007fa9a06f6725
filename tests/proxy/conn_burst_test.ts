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

import { firstWriteCases, firstWriteReplies } from "../helpers/binary.ts";
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

Deno.test("proxy answers a binary first write of exactly 1 KB, and one ending in a bad magic byte as memcached", async () => {
  const backend: ProcessHandle = await startMemcached();
  let proxy: ProcessHandle | undefined;
  try {
    proxy = await startMemrep(["proxy", "-s", `127.0.0.1:${backend.port}`]);
    const setter = await connect(backend.port);
    for (let i = 0; i < 60; i++) {
      equal(await setter.request(`set bm:${i} 0 0 1\r\nv`), "STORED\r\n");
    }
    await setter.close();
    for (const [bytes, n, what] of firstWriteCases()) {
      ok(bytes.length >= 1024 && bytes.length < 16384, what);
      deepEqual(
        await firstWriteReplies(proxy.port, bytes, n),
        await firstWriteReplies(backend.port, bytes, n),
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
