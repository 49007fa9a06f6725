/**
 * A read repair (the add of a backup's item onto a primary that missed)
 * that times out may still be applied by the primary later: its bytes are
 * on the way (here a link that delivers that connection's bytes a second
 * late). A delete of the key sent meanwhile on a new connection lands first,
 * then the repair brings the deleted item back on the primary, and a read
 * through the proxy returned it. The key must be treated as a lost write's:
 * dirty on the primary until such bytes can no longer land, then cleaned.
 * Found by tests/proxy/pipeline_model_test.ts (latency faults).
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless, startMemcached, startMemrep } from "../helpers/mod.ts";
import { getValue, proxyStats, sleep } from "./cluster.ts";

/** A relay to `port` that delivers a connection's bytes `ms` late once one of its chunks holds a repair (`ME`). */
function slowRepairRelay(port: number, ms: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const down of listener) {
      const up = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(down, up);
      (async () => {
        const buf = new Uint8Array(65536);
        let slow = false;
        try {
          for (;;) {
            const n = await down.read(buf);
            if (n === null) break;
            const chunk = buf.slice(0, n);
            if (!slow && new TextDecoder().decode(chunk).includes(" ME c")) slow = true;
            if (slow) await sleep(ms); // in order: this connection's later bytes wait too
            await up.write(chunk);
          }
          await up.closeWrite();
        } catch { /* closed */ }
      })();
      (async () => {
        try {
          await up.readable.pipeTo(down.writable);
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

const NAME =
  "proxy: a read repair that timed out and lands late does not bring back a key deleted meanwhile";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const primary = await startMemcached(), backup = await startMemcached();
    const relay = slowRepairRelay(primary.port, 1500);
    const proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${relay.port}`,
      "-b",
      `127.0.0.1:${backup.port}`,
      "--timeout",
      "300",
      "--retry",
      "100",
    ]);
    const c = await connect(proxy.port), onBackup = await connect(backup.port);
    try {
      // On the backup only (the primary lost it): a read falls back and repairs the primary.
      equal(await onBackup.request("set k 0 0 3\r\nold"), "STORED\r\n");
      equal(await getValue(c, "k"), "old");
      await sleep(500); // the repair timed out; its bytes are still on the way
      equal(await c.request("delete k"), "DELETED\r\n");
      await sleep(2000); // the repair has landed on the primary by now
      const deadline = Date.now() + 20_000;
      for (;;) {
        const st = await proxyStats(proxy.port);
        if ([...st].every(([k, v]) => !k.endsWith(":dirty_keys") || v === "0")) break;
        if (Date.now() > deadline) throw new Error("not clean");
        await sleep(100);
      }
      equal(await getValue(c, "k"), undefined, "the deleted key read back");
    } finally {
      await c.close();
      await onBackup.close();
      await proxy.stop();
      relay.close();
      for (const s of [primary, backup]) await s.stop();
    }
  },
});
