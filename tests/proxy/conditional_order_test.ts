/**
 * A conditional write (append, prepend, replace, incr, decr, ms MA/MR, ma)
 * that misses on its primary is retried there once the item was copied
 * from a backup. A write of the key pipelined after it is on the primary by
 * then, so the retry lands after it: memcached runs the conditional write
 * first, the later write last. Here the primary lost the key (deleted
 * behind the proxy's back, as a restarted primary), the backup has it, and
 * each conditional write is followed in the same pipeline by a `set`: the
 * key must end as that set left it, as on memcached. (The conditional
 * write itself may answer NOT_STORED: its primary did not have the item.)
 * Found by tests/proxy/pipeline_model_test.ts.
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { CONDITIONAL_WRITES, getValue, setValue, startPair } from "./cluster.ts";

const NAME =
  "proxy: a conditional write retried after its primary missed does not land after a later pipelined write";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const pair = await startPair({ direct: true });
    const { primary, direct, proxy } = pair;
    const conns = [await connect(direct.port), await connect(proxy.port)];
    const onPrimary = await connect(primary.port);
    try {
      for (const [name, cond] of CONDITIONAL_WRITES) {
        const key = `k_${name.replace(" ", "_")}`;
        const finals: (string | undefined)[] = [];
        for (const c of conns) {
          equal(await setValue(c, key, "10"), "STORED\r\n");
          // The primary lost it (the proxy does not know): the backup still has it.
          if (c === conns[1]) equal(await onPrimary.request(`delete ${key}`), "DELETED\r\n");
          const script = cond.replaceAll("K", key) + `set ${key} 0 0 2\r\n77\r\n`;
          const replies = await c.request(
            script,
            /(STORED|HD|NS|NF|NOT_FOUND|\d+)\r\n.*STORED\r\n/s,
          );
          equal(replies.endsWith("STORED\r\n"), true, `${name}: ${JSON.stringify(replies)}`);
          finals.push(await getValue(c, key));
        }
        equal(finals[1], finals[0], `${name}: the key after the pipeline`);
        equal(finals[0], "77");
      }
    } finally {
      for (const c of [...conns, onPrimary]) await c.close();
      await pair.stop();
    }
  },
});
