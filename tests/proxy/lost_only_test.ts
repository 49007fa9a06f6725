/**
 * A write that times out on its primary while no backup can take it is
 * answered with an error, and its bytes may still land on the primary. The
 * key is held dirty there until they can no longer land, but nothing changed
 * elsewhere: the primary's item is still the key's latest (the write's or
 * the one before), and often its only copy. Its cleaning deleted it, so the
 * key was lost everywhere once the backup returned. Now it is kept, and the
 * returning backup gets it. Found by the pipeline model test (seeds 44 and
 * 14: lost reads in calm after a primary's timeouts during a backup's pause).
 */

import { equal, eventually } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import {
  directGet,
  getValue,
  proxyStats,
  setValue,
  sleep,
  startPair,
  waitForState,
} from "./cluster.ts";

const NAME =
  "proxy: a write lost on its primary with no backup up does not cost the primary's item";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pair = await startPair({
      relay: "both",
      proxyArgs: ["--timeout", "300", "--retry", "100"],
    });
    const { backup, toPrimary: rp, toBackup: rb, proxy } = pair;
    const c = await connect(proxy.port);
    let release = () => {};
    const stat = async (name: string) => (await proxyStats(proxy.port)).get(name);
    try {
      equal(await setValue(c, "k", "v1"), "STORED\r\n");
      await sleep(100); // its copy is answered
      rb.refuse(true);
      rb.drop();
      for (let i = 0; await stat(`backup:127.0.0.1:${rb.port}:state`) !== "down"; i++) {
        if (i > 200) throw new Error("the backup was not marked down");
        await setValue(c, `other${i}`, "x");
        await sleep(20);
      }
      // The primary holds what its link is sent: the set times out, and no backup takes it.
      release = rp.holdLinks();
      const reply = await c.request("set k 0 0 2\r\nv2\r\n");
      equal(reply.startsWith("SERVER_ERROR"), true, reply);
      release(); // its bytes land late
      await eventually(() => stat(`server:127.0.0.1:${rp.port}:dirty_keys`), "0");
      const got = await getValue(c, "k");
      equal(got === "v1" || got === "v2", true, `read ${got}`);
      // The returning backup gets the primary's item.
      rb.refuse(false);
      await waitForState(proxy.port, "backup", rb.port, "up");
      await eventually(() => directGet(backup.port, "k"), got);
      equal(await getValue(c, "k"), got);
    } finally {
      release();
      await c.close();
      await pair.stop();
    }
  },
});
