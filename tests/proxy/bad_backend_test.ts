/**
 * A backend that answers nonsense (or nothing) never takes the proxy down:
 * its requests fail over to the backup and the proxy keeps serving.
 */

import { equal, ok } from "../helpers/assert.ts";
import {
  connect,
  type FakeServer,
  fakeServer,
  ignoreUnless,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";
import { getValue, proxyStats, setValue } from "./cluster.ts";

/** A TCP server answering every read with `reply` (a function of the bytes read). */
function fakeBackend(reply: (got: Uint8Array) => Uint8Array | null): FakeServer {
  return fakeServer(async (conn) => {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        const out = reply(buf.subarray(0, n));
        if (out === null) break;
        await conn.write(out);
      }
    } catch { /* reset */ }
    try {
      conn.close();
    } catch { /* closed */ }
  });
}

const garbage = new TextEncoder().encode("VALUE x notanumber\r\n\x00\xff junk\r\nEND\r\nEND\r\n");

for (
  const [what, reply] of [
    ["garbage", () => garbage],
    ["an unsolicited huge line", () => new Uint8Array(200_000).fill(65)],
    ["a closed connection", () => null],
  ] as const
) {
  const name = `a backend answering ${what} fails over to the backup`;
  Deno.test({
    name,
    ignore: ignoreUnless(name, ["memcached"]),
    async fn() {
      const bad = fakeBackend(reply);
      const backup = await startMemcached();
      const proxy = await startMemrep([
        "proxy",
        "-s",
        `127.0.0.1:${bad.port}`,
        "-b",
        `127.0.0.1:${backup.port}`,
        "--timeout",
        "300",
        "--retry",
        "200",
      ]);
      try {
        const c = await connect(proxy.port);
        for (let i = 0; i < 5; i++) {
          equal(await setValue(c, `k${i}`, `v${i}`), "STORED\r\n");
          equal(await getValue(c, `k${i}`), `v${i}`);
        }
        equal(await c.request("incr nope 1"), "NOT_FOUND\r\n");
        equal(await c.request("delete k0"), "DELETED\r\n");
        const stats = await proxyStats(proxy.port);
        ok(Number(stats.get("backend_errors")) > 0, "the failures were counted");
        equal(stats.get(`server:127.0.0.1:${bad.port}:state`), "down");
        ok(!proxy.exited(), "the proxy is still running");
        await c.close();
      } finally {
        await proxy.stop();
        await backup.stop();
        await bad.close();
      }
    },
  });
}

/** Answers every get with another key's item (a stream out of step, a broken middlebox). */
const intruder = new TextEncoder().encode("VALUE intruder 0 3\r\nbad\r\nEND\r\n");
const WRONG_KEY = "a backend answering a get with another key's item: the client gets the backup's";

Deno.test({
  name: WRONG_KEY,
  ignore: ignoreUnless(WRONG_KEY, ["memcached"]),
  async fn() {
    const bad = fakeBackend((got) => {
      const line = new TextDecoder().decode(got);
      return line.startsWith("get") ? intruder : new TextEncoder().encode("ERROR\r\n");
    });
    const backup = await startMemcached();
    const proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${bad.port}`,
      "-b",
      `127.0.0.1:${backup.port}`,
      "--timeout",
      "300",
    ]);
    try {
      const direct = await connect(backup.port);
      equal(await setValue(direct, "a", "good"), "STORED\r\n");
      await direct.close();
      const c = await connect(proxy.port);
      equal(await getValue(c, "a"), "good", "get a: never the intruder's item");
      equal(
        await c.request("get a b", "END\r\n"),
        "VALUE a 0 4\r\ngood\r\nEND\r\n",
        "a multi-get matches keys already",
      );
      await c.close();
    } finally {
      await proxy.stop();
      await backup.stop();
      await bad.close();
    }
  },
});
