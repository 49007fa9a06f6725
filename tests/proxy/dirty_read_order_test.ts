/**
 * A key whose write timed out on its primary is read from the backup until
 * the primary is cleaned, and its later writes go to the backup directly. A
 * read pipelined ahead of such a write must answer the item from before it,
 * as memcached does: its request reaches the backup first, on the proxy's
 * one connection there. A single-key read used to drop that answer as a
 * miss (a write of the key had been sent since), and a multi-get read the
 * key only once its other keys' primary answered, after a later delete had
 * reached the backup. Found by the pipeline model test (seeds 44 and 14:
 * lost reads in calm after a holdLinks or a stall on a primary).
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { setValue, startPair } from "./cluster.ts";

const NAME =
  "proxy: a read of a key dirty on its primary is not changed by a write pipelined after it";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pair = await startPair({
      relay: "primary",
      direct: true,
      proxyArgs: ["--timeout", "300", "--retry", "100"],
    });
    const { direct, toPrimary: relay, proxy } = pair;
    const c = await connect(proxy.port), d = await connect(direct.port);
    let release = () => {};
    try {
      for (const x of [c, d]) equal(await setValue(x, "k", "old"), "STORED\r\n");
      // The primary's link holds what it is sent: this set times out there and goes to the
      // backup. The key stays dirty on the primary while the held bytes may still land.
      release = relay.holdLinks();
      for (const x of [c, d]) equal(await setValue(x, "k", "new"), "STORED\r\n");
      // New links flow, slowly: the multi-get's other key is answered after the delete below
      // has reached the backup.
      relay.setLatency(150);
      const script = "get k\r\nset k 0 0 2\r\nv2\r\nmg k v\r\nset k 0 0 2\r\nv3\r\n" +
        "gets k\r\nappend k 0 0 1\r\n!\r\nget x k\r\ndelete k\r\nget k x\r\nversion\r\n";
      const mask = (s: string) => s.replace(/^(VALUE \S+ \d+ \d+) \d+\r\n/gm, "$1 CAS\r\n");
      const want = await d.request(script, "VERSION 1.6.18\r\n", 10_000);
      const got = await c.request(script, "VERSION 1.6.18\r\n", 10_000);
      equal(mask(got), mask(want));
    } finally {
      release();
      for (const x of [c, d]) await x.close();
      await pair.stop();
    }
  },
});
