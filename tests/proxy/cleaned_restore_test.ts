/**
 * A key written while its primary could not be written goes to the backup,
 * and the returning primary's cleaning deletes its old item there. The
 * backup then held the only copy: every read and conditional write of the
 * key missed on the primary and fell back, and a fallback behind a later
 * write of the key pipelined after it cannot run (it would see that write),
 * so `incr k` then `set k` answered NOT_FOUND and `get k` then `set k` a
 * miss, with every backend healthy. Found by the pipeline model test (lost
 * reads and NOT_FOUND / NS conditional writes in calm after a fault). The
 * cleaning now puts the backup's item back on the primary.
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { retrievalEnd } from "../helpers/conn.ts";
import { proxyStats, setValue, sleep, startPair } from "./cluster.ts";

/** Until the primary behind `port` is up with no dirty key. */
async function untilClean(proxyPort: number, port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const st = await proxyStats(proxyPort);
    if (
      st.get(`server:127.0.0.1:${port}:state`) === "up" &&
      st.get(`server:127.0.0.1:${port}:dirty_keys`) === "0"
    ) return;
    if (Date.now() > deadline) throw new Error("the primary was not taken back clean");
    await sleep(50);
  }
}

const NAME =
  "a key written to the backup while its primary was out is not missed by requests pipelined ahead of a write once the primary is back";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const pair = await startPair({
      relay: "primary",
      proxyArgs: ["--timeout", "300", "--retry", "100"],
    });
    const { toPrimary: relay, proxy } = pair;
    try {
      const c = await connect(proxy.port);
      for (const [k, v] of [["ctr", "1"], ["txt", "old"], ["app", "a"]]) {
        equal(await setValue(c, k, v), "STORED\r\n");
      }
      // The primary's link is cut and refused: the writes go to the backup (the primary keeps
      // its old items, which its cleaning deletes on return).
      relay.refuse(true);
      relay.drop();
      for (const [k, v] of [["ctr", "10"], ["txt", "new"], ["app", "b"]]) {
        equal(await setValue(c, k, v), "STORED\r\n");
      }
      relay.refuse(false);
      await untilClean(proxy.port, relay.port);
      // Each request pipelined right ahead of a write of its key, as memcached runs them.
      await c.send(
        "incr ctr 5\r\nset ctr 0 0 1\r\n7\r\n" +
          "get txt\r\nset txt 0 0 3\r\nnxt\r\n" +
          "append app 0 0 1\r\nc\r\nset app 0 0 1\r\nd\r\n",
      );
      const want = "15\r\nSTORED\r\n" +
        "VALUE txt 0 3\r\nnew\r\nEND\r\nSTORED\r\n" +
        "STORED\r\nSTORED\r\n";
      // Four replies end in STORED\r\n (the append's NOT_STORED too), the last one the last set's.
      equal(await c.readUntilText(/(?:[^]*?STORED\r\n){4}/, 5000), want);
      equal(
        await c.request("get ctr txt app", retrievalEnd),
        "VALUE ctr 0 1\r\n7\r\nVALUE txt 0 3\r\nnxt\r\nVALUE app 0 1\r\nd\r\nEND\r\n",
      );
      await c.close();
    } finally {
      await pair.stop();
    }
  },
});
