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
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { CONDITIONAL_WRITES, setValue, sleep, startPair } from "./cluster.ts";

const NAME =
  "proxy: a read pipelined after a conditional write retried on its primary returns that write's result";
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
      await pair.stop();
    }
  },
});

const NAME2 =
  "proxy: a read sent while a conditional write is repaired and retried waits for the retry";
for (const read of ["get k", "get ka k kb", "flush_all\r\nget k"]) {
  Deno.test({
    name: `${NAME2} (${JSON.stringify(read)})`,
    ignore: ignoreUnless(NAME2, ["memcached"]),
    fn: () => readDuringRetry(read),
  });
}

async function readDuringRetry(read: string): Promise<void> {
  // The primary behind a slow link (150 ms each way): the append misses there, the item is
  // copied back from the backup, the retry follows. A get sent once the copy is in (after the
  // append, from the same connection) reached the primary between the copy and the retry: it
  // hit the item without the append (a multi-get did, before it waited in the key's line too).
  const pair = await startPair({
    relay: "primary",
    direct: true,
    proxyArgs: ["--timeout", "5000"],
  });
  const { primary, direct, toPrimary: relay, proxy } = pair;
  const c = await connect(proxy.port);
  const onPrimary = await connect(primary.port);
  try {
    for (const k of ["k", "ka", "kb"]) equal(await setValue(c, k, `${k}10`), "STORED\r\n");
    equal(await onPrimary.request("delete k"), "DELETED\r\n");
    relay.setLatency(150);
    await c.send("append k 0 0 1\r\nX\r\n");
    // Wait (on the primary directly, not through the relay) for the copy from the backup: the
    // retry is then at least one relay delay behind, and the get sent now reaches the primary
    // before it, whatever the machine's speed.
    while (!(await onPrimary.request("mg k v\r\nmn\r\n", /MN\r\n$/, 5000)).startsWith("VA ")) {
      await sleep(5);
    }
    const replies = await c.request(`${read}\r\n`, /END\r\n$/, 5000);
    // memcached's replies to the same requests.
    const d = await connect(direct.port);
    for (const k of ["k", "ka", "kb"]) equal(await setValue(d, k, `${k}10`), "STORED\r\n");
    const want = await d.request(`append k 0 0 1\r\nX\r\n${read}\r\n`, /END\r\n$/);
    await d.close();
    equal(replies, want);
  } finally {
    for (const x of [c, onPrimary]) await x.close();
    await pair.stop();
  }
}
