/**
 * What a burst of client connections leaves behind in the proxy (issue 9,
 * item 8), read from its own counters: once 3,000 clients have been
 * answered and closed, `stats proxy` counts a heap trim and no connection
 * but the asking one. Each idle client holds a 1 KB receive buffer and no
 * output buffer (both are lent from pools while busy).
 * @module
 */

import {
  connect,
  connectionBurst,
  equal,
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
