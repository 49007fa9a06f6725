/**
 * A write whose primary fails goes to the first backup, and the other
 * backups get its result once that backup answered. A delete pipelined
 * after it whose primary failed too went to every backup at once: it
 * reached the other backups before the write's copy, which then brought the
 * deleted item back there (once the primary was cleaned, a read fell back
 * to that backup and returned it). Here the primary hangs (a paused relay)
 * under a pipelined `set` then `delete` of a key; afterwards no backup
 * holds it and a read through the proxy misses, as on memcached.
 * Found by tests/proxy/pipeline_model_test.ts.
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless, startMemcached, startMemrep, startRelay } from "../helpers/mod.ts";
import { directGet, getValue, proxyStats, setValue, sleep } from "./cluster.ts";

const NAME =
  "proxy: a delete after a write, both failed over from a hung primary, is not overtaken by the write's copies";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const primary = await startMemcached();
    const backups = [await startMemcached(), await startMemcached(), await startMemcached()];
    const relay = startRelay(primary.port);
    const args = ["proxy", "-s", `127.0.0.1:${relay.port}`];
    for (const b of backups) args.push("-b", `127.0.0.1:${b.port}`);
    const proxy = await startMemrep([...args, "--timeout", "300", "--retry", "100"]);
    const c = await connect(proxy.port);
    try {
      const keys = ["k0", "k1", "k2", "k3"];
      for (const k of keys) equal(await setValue(c, k, "old"), "STORED\r\n");
      relay.pause();
      // set then delete (or md), pipelined: both time out on the primary and fail over.
      const script = keys.map((k, i) =>
        `set ${k} 0 0 3\r\nnew\r\n` + (i % 2 === 0 ? `delete ${k}\r\n` : `md ${k}\r\n`)
      ).join("");
      const replies = await c.request(script, /(?:.*\r\n){8}/s, 10_000);
      equal(
        replies,
        "STORED\r\nDELETED\r\nSTORED\r\nHD\r\nSTORED\r\nDELETED\r\nSTORED\r\nHD\r\n",
      );
      await sleep(300); // the copies' answers
      relay.resume();
      // The primary is cleaned and taken back; the keys miss there, and on every backup.
      const deadline = Date.now() + 20_000;
      for (;;) {
        const st = await proxyStats(proxy.port);
        if ([...st].every(([k, v]) => !k.endsWith(":dirty_keys") || v === "0")) break;
        if (Date.now() > deadline) throw new Error("not clean");
        await sleep(50);
      }
      for (const k of keys) equal(await getValue(c, k), undefined, k);
      for (const b of backups) {
        for (const k of keys) equal(await directGet(b.port, k), undefined, `${k} on ${b.port}`);
      }
    } finally {
      await c.close();
      await proxy.stop();
      await relay.close();
      for (const s of [primary, ...backups]) await s.stop();
    }
  },
});
