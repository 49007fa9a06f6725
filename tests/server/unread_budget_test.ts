/**
 * serve's memory under many clients that pipeline large gets and never
 * read, for the whole process: each connection's own bound (1 MB of output
 * and one reply) times 300 connections was ~430 MB, and ~770 MB after four
 * rounds of them; past its output budget
 * (-m / 4 by default) each such connection holds about one reply more.
 * A reading client gets memcached's replies meanwhile, and once the hogs
 * are gone the memory they took serves the next ones.
 * @module
 */

import { closeHogs, openHogs, rss, settledPeak, storeHogItems } from "../helpers/unread.ts";
import {
  connect,
  equal,
  ignoreUnless,
  ok,
  startMemcached,
  startMemrep,
  type TestConn,
  waitUntil,
} from "../helpers/mod.ts";

const MB = 1048576;
const HOGS = 300;

/**
 * Peak RSS growth of `pid` over its RSS at `base` while HOGS unread clients
 * load `port`; `check` runs meanwhile. Returns once the hogs are closed.
 */
async function hogPeak(
  pid: number,
  port: number,
  base: number,
  check: () => Promise<void>,
): Promise<number> {
  const hogs = await openHogs(port, HOGS);
  try {
    return await settledPeak(pid, check) - base;
  } finally {
    closeHogs(hogs);
  }
}

const NAME =
  "serve bounds what 300 clients that pipeline large gets and never read cost the process together; a reader gets memcached's replies meanwhile";
Deno.test({
  name: NAME,
  ignore: Deno.build.os !== "linux" || ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const server = await startMemrep(["serve", "-m", "64", "-U", "0"]);
    const mc = await startMemcached(["-m", "64"]);
    const conns: TestConn[] = [];
    try {
      const reader = await connect(server.port);
      const ref = await connect(mc.port);
      conns.push(reader, ref);
      await storeHogItems(reader);
      await storeHogItems(ref);
      const ask = "get hog:3 hog:4 nope hog:5";
      const want = await ref.request(ask, "END\r\n");
      const check = async () => equal(await reader.request(ask, "END\r\n", 10_000), want);
      const mcGrowth = await hogPeak(mc.pid, mc.port, await rss(mc.pid), async () => {});
      const base = await rss(server.pid);
      const growth = await hogPeak(server.pid, server.port, base, check);
      // Held output: the 16 MB budget, then about one 256 KB reply per connection (and the
      // buffers they were built in): ~90-130 MB. Each connection's 1 MB alone was ~430 MB.
      ok(
        growth < 200 * MB,
        `serve's RSS grew ${(growth / MB).toFixed(0)} MB for ${HOGS} unread clients (memcached: ${
          (mcGrowth / MB).toFixed(0)
        } MB)`,
      );
      // Once they are gone, the next ones reuse what they took (freed buffers are reused once
      // collected: the second round may add about as much again, not more each time).
      for (let round = 1; round <= 3; round++) {
        await waitUntil(
          async () => Number((await reader.stats()).get("curr_connections")) < 10,
          "the hogs' connections to close",
          15_000,
        );
        const peak = await hogPeak(server.pid, server.port, base, check);
        ok(
          peak < 400 * MB,
          `serve's RSS grew ${
            (peak / MB).toFixed(0)
          } MB by round ${round} of ${HOGS} unread clients`,
        );
      }
      await check();
    } finally {
      await Promise.all(conns.map((c) => c.close()));
      await mc.stop();
      await server.stop();
    }
  },
});
