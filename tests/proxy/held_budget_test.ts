/**
 * A whole multi-get is counted in the process's reply budget (its values
 * estimated) until its reply is in. One held in the router (behind an add
 * being checked) and released later was counted under the connection's
 * latest ticket, not its own: when that reply was in already, the
 * estimate stayed counted as long as the connection lived (a long-lived
 * client doing this again and again would spend the budget, and every
 * connection holding more than a little would then stall).
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { proxyStats, startPair } from "./cluster.ts";

const NAME = "proxy: a held multi-get's budget estimate ends with its reply";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const pair = await startPair();
    const { proxy } = pair;
    const c = await connect(proxy.port);
    try {
      for (let round = 0; round < 3; round++) {
        // The get waits for the add's check; the mn after it is answered at once (the
        // connection's latest ticket when the get is released is the mn's, answered already).
        const script = `add a${round} 0 0 1\r\nA\r\nget a${round} b${round}\r\nmn\r\n`;
        equal(
          await c.request(script, /MN\r\n$/, 10_000),
          `STORED\r\nVALUE a${round} 0 1\r\nA\r\nEND\r\nMN\r\n`,
        );
        // The connection stays open, every reply of it out: it holds nothing.
        const held = (await proxyStats(proxy.port)).get("buffered_bytes");
        equal(held, "0", `round ${round}: ${held} bytes counted`);
      }
    } finally {
      await c.close();
      await pair.stop();
    }
  },
});
