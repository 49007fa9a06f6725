/**
 * A write whose primary fails must not fall back to a backup that is dirty
 * for the key (it lost the latest copies: its item is old or already
 * cleaned away): an `incr` there counted from an old value or answered
 * NOT_FOUND, so the client saw its counter go back or vanish. Nor may a
 * conditional write's retry take its item from such a backup. Found by a
 * chaos run (SIGSTOPs of primaries and backups under load).
 */

import { equal, ok } from "../helpers/assert.ts";
import { connect, ignoreUnless, startMemcached } from "../helpers/mod.ts";
import { getValue, proxyStats, setValue, sleep, startPair } from "./cluster.ts";

/** A primary and a backup behind a relay, the proxy over them; short timeouts. */
function startProxy() {
  return startPair({
    relay: "backup",
    proxyArgs: [
      "--timeout",
      "300",
      "--retry",
      "100",
      "--failure-limit",
      "1000", // the backup stays up: only its copies are lost
    ],
  });
}

/** Waits until the proxy counts a dirty key on the backup behind `relayPort` (its copies timed out). */
async function untilDirty(proxyPort: number, relayPort: number): Promise<void> {
  const name = `backup:127.0.0.1:${relayPort}:dirty_keys`;
  const deadline = Date.now() + 10_000;
  while ((await proxyStats(proxyPort)).get(name) === "0") {
    ok(Date.now() < deadline, "the lost copies made the key dirty on the backup");
    await sleep(20);
  }
}

const NAME =
  "an incr whose primary hangs does not fall back to a backup dirty for the key: never an older count";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const pair = await startProxy();
    const { primary, toBackup: relay, proxy } = pair;
    let stopped = false;
    try {
      const c = await connect(proxy.port);
      equal(await setValue(c, "ctr", "100"), "STORED\r\n");
      // The backup's link swallows the copies of five increments: it keeps 100 (or is cleaned).
      relay.blackhole(true);
      for (let i = 1; i <= 5; i++) equal(await c.request("incr ctr 1"), `${100 + i}\r\n`);
      // The copies time out: the key is dirty on the backup (waited for, while still cut).
      await untilDirty(proxy.port, relay.port);
      relay.blackhole(false);
      relay.drop();
      // Now the primary hangs: the next incr times out there.
      primary.kill("SIGSTOP");
      stopped = true;
      const reply = await c.request("incr ctr 1", "\r\n", 5000);
      ok(
        reply.startsWith("SERVER_ERROR") || reply === "106\r\n",
        `the incr is answered from no stale copy: ${JSON.stringify(reply)}`,
      );
      primary.kill("SIGCONT");
      stopped = false;
      // Back and cleaned (the hung incr may have landed late): never an older count.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const st = await proxyStats(proxy.port);
        if (
          st.get(`server:127.0.0.1:${primary.port}:state`) === "up" &&
          st.get(`server:127.0.0.1:${primary.port}:dirty_keys`) === "0"
        ) break;
        ok(Date.now() < deadline, "the primary came back");
        await sleep(100);
      }
      const v = await getValue(c, "ctr");
      ok(v === undefined || v === "105" || v === "106", `no older count: ${v}`);
      await c.close();
    } finally {
      if (stopped) primary.kill("SIGCONT");
      await pair.stop();
    }
  },
});

/** Drops client -> backup chunks holding an `ms` or `md` (copies and cleaning never arrive). */
function dropWrites(chunk: Uint8Array, toTarget: boolean): Uint8Array | null {
  if (!toTarget) return null;
  const text = new TextDecoder().decode(chunk);
  return /(^|\n)m[sd] /.test(text) ? new Uint8Array(0) : null;
}

const RETRY =
  "an incr that misses on a primary restarted empty is not retried on a copy taken from a backup dirty for the key";

Deno.test({
  name: RETRY,
  ignore: ignoreUnless(RETRY, ["memcached"]),
  async fn() {
    const pair = await startProxy();
    const { primary, toBackup: relay, proxy } = pair;
    try {
      const c = await connect(proxy.port);
      equal(await setValue(c, "ctr", "100"), "STORED\r\n");
      // The backup keeps 100: its link swallows every write (copies, cleaning) but passes reads.
      relay.tamper(dropWrites);
      for (let i = 1; i <= 5; i++) equal(await c.request("incr ctr 1"), `${100 + i}\r\n`);
      await untilDirty(proxy.port, relay.port);
      // The primary restarts empty while the key is still dirty on the backup.
      primary.kill("SIGKILL");
      await primary.stop();
      pair.primary = await startMemcached([], { port: primary.port });
      const reply = await c.request("incr ctr 1", "\r\n", 5000);
      ok(
        reply === "NOT_FOUND\r\n" || reply.startsWith("SERVER_ERROR"),
        `no increment of the backup's old 100: ${JSON.stringify(reply)}`,
      );
      await c.close();
    } finally {
      await pair.stop();
    }
  },
});
