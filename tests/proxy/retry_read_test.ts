/**
 * A read pipelined after a conditional write (append, prepend, replace,
 * incr, decr, ms MA/MR, ma) whose primary lost the key sees that write, as
 * on memcached: the write misses on the primary and is retried there once
 * the item was copied from the backup, and the read, which also missed on
 * the primary, must not be answered from the backup (which has the item
 * from before the write) before the retry is in. Here the primary lost the
 * key behind the proxy's back (as a restarted primary); each conditional
 * write is followed in the same pipeline by a get and an mg of the key,
 * and the replies must be memcached's. Found by
 * tests/proxy/pipeline_model_test.ts (its stale reads).
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless, startMemcached, startMemrep } from "../helpers/mod.ts";
import { setValue } from "./cluster.ts";

const CASES: [string, string][] = [
  ["append", "append K 0 0 1\r\nX\r\n"],
  ["prepend", "prepend K 0 0 1\r\nX\r\n"],
  ["replace", "replace K 0 0 1\r\nX\r\n"],
  ["incr", "incr K 3\r\n"],
  ["decr", "decr K 3\r\n"],
  ["ms MA", "ms K 1 MA\r\nX\r\n"],
  ["ms MR", "ms K 1 MR\r\nX\r\n"],
  ["ma", "ma K D2\r\n"],
];

const NAME =
  "proxy: a read pipelined after a conditional write retried on its primary returns that write's result";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const primary = await startMemcached(), backup = await startMemcached();
    const direct = await startMemcached();
    const proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${primary.port}`,
      "-b",
      `127.0.0.1:${backup.port}`,
    ]);
    const conns = [await connect(direct.port), await connect(proxy.port)];
    const onPrimary = await connect(primary.port);
    try {
      for (const [name, cond] of CASES) {
        const key = `k_${name.replace(" ", "_")}`;
        const replies: string[] = [];
        for (const c of conns) {
          equal(await setValue(c, key, "10"), "STORED\r\n");
          // The primary lost it (the proxy does not know): the backup still has it.
          if (c === conns[1]) equal(await onPrimary.request(`delete ${key}`), "DELETED\r\n");
          const script = cond.replaceAll("K", key) + `get ${key}\r\nmg ${key} v\r\nmn\r\n`;
          replies.push(await c.request(script, /MN\r\n$/));
        }
        equal(replies[1], replies[0], `${name}: ${JSON.stringify(replies)}`);
      }
    } finally {
      for (const c of [...conns, onPrimary]) await c.close();
      await proxy.stop();
      for (const s of [primary, backup, direct]) await s.stop();
    }
  },
});
