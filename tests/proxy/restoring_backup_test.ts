/**
 * A backup that returns deletes the keys written while it was down. It got
 * nothing back for them but what its refill copies from the primaries, so a
 * key its primary had lost too stayed missing there, while that backup was
 * the first clean copy: an add (stored on the primary) was checked there,
 * stored, and answered STORED, and its copy overwrote the other backup's
 * item; memcached, holding the key, answers NOT_STORED. A copy's cleaning
 * now puts each item back, as a primary's does, and until it is sent the
 * copy does not stand in for the key. Found by the pipeline model test
 * (seed 55: an add stored after a backup's sigstop and a primary's kill).
 */

import { equal, eventually } from "../helpers/assert.ts";
import { connect, ignoreUnless, startMemcached, startMemrep, startRelay } from "../helpers/mod.ts";
import { directGet, getValue, proxyStats, setValue, sleep, waitForState } from "./cluster.ts";

const NAME =
  "proxy: a returning backup gets its cleaned items back, and no add is checked there before";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const primary = await startMemcached();
    const first = await startMemcached(), second = await startMemcached();
    const r1 = startRelay(first.port), r2 = startRelay(second.port);
    const proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${primary.port}`,
      "-b",
      `127.0.0.1:${r1.port}`,
      "-b",
      `127.0.0.1:${r2.port}`,
      "--timeout",
      "2000",
      "--retry",
      "100",
    ]);
    const c = await connect(proxy.port), onPrimary = await connect(primary.port);
    try {
      equal(await setValue(c, "k", "old"), "STORED\r\n");
      await sleep(100); // its copies are answered (one cut now would keep k dirty longer)
      // The first backup goes down; the write of k while it is down marks k dirty there.
      r1.refuse(true);
      r1.drop();
      for (
        let i = 0;
        (await proxyStats(proxy.port)).get(`backup:127.0.0.1:${r1.port}:state`) !== "down";
        i++
      ) {
        if (i > 200) throw new Error("the first backup was not marked down");
        await setValue(c, `other${i}`, "x");
        await sleep(20);
      }
      equal(await setValue(c, "k", "new"), "STORED\r\n");
      // The primary loses k, and the second backup answers slowly: the returning backup's
      // cleaning deletes k there and reads its item from the second one for 600 ms or more.
      equal(await onPrimary.request("delete k"), "DELETED\r\n");
      r2.setLatency(300);
      await sleep(700); // the second backup's pooled connection idles through the latency
      r1.refuse(false);
      await waitForState(proxy.port, "backup", r1.port, "up");
      equal(await c.request("add k 0 0 3\r\nadd\r\n"), "NOT_STORED\r\n");
      equal(await getValue(c, "k"), "new");
      // The returning backup holds k again (put back from the second one).
      await eventually(() => directGet(first.port, "k"), "new");
    } finally {
      for (const x of [c, onPrimary]) await x.close();
      await proxy.stop();
      for (const r of [r1, r2]) await r.close();
      for (const s of [primary, first, second]) await s.stop();
    }
  },
});
