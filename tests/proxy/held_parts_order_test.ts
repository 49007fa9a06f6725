/**
 * A multi-get held behind an add being checked on the backup (a key of
 * its slot) waits in the router, and the requests read after it that
 * share its keys wait behind it. Released, it may go in parts (pipelined
 * behind replies not written yet on a new connection): its keys are then
 * fetched only once the replies before it are out. A set of one of its
 * keys, released right after it, used to reach the primary first, and the
 * get returned that later write, which memcached never does. And a get in
 * parts read after the held one let the connection read on as soon as the
 * held one was complete (one reply in parts was tracked, not two): a set
 * of its last part's key went ahead of that part. Found by the pipeline
 * model test (seed 1's future read at its start).
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { startPair } from "./cluster.ts";

const NAME =
  "proxy: a multi-get held behind an add's check does not see a write pipelined after it";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const pair = await startPair({ direct: true });
    const { direct, proxy } = pair;
    const mask = (s: string) => s.replace(/^(VALUE \S+ \d+ \d+) \d+\r\n/gm, "$1 CAS\r\n");
    try {
      for (let round = 0; round < 3; round++) {
        const a = `a${round}`, b = `b${round}`, c = `c${round}`;
        const many = Array.from({ length: 40 }, (_, i) => `m${round}_${i}`);
        // A new connection each, and no reply before the add's (the last mg misses on the primary
        // and then on the backup, after the add's check there): the reply sizes are unknown when
        // a get is read or released, so it goes in parts.
        const scripts = [
          // Released behind the add, the get's keys are fetched once the add's reply is out,
          // and the requests held behind it wait for that.
          `add ${a} 0 0 1\r\nA\r\nget ${a} ${b} ${c}\r\nset ${b} 0 0 1\r\nB\r\n` +
          `delete ${a}\r\ngets ${c} ${b}\r\nset ${c} 0 0 1\r\nC\r\nget ${a} ${b} ${c}\r\n`,
          // A get of 40 keys (in two parts) read after the held one: nothing after it is read
          // until its last part is fetched, not merely until the held get is complete.
          `add ${a} 0 0 1\r\nA\r\nget ${a} ${b}\r\nget ${many.join(" ")}\r\n` +
          `set ${many[39]} 0 0 1\r\nM\r\nget ${many[39]}\r\n`,
        ];
        for (const [i, script] of scripts.entries()) {
          const replies: string[] = [];
          for (const port of [direct.port, proxy.port]) {
            const conn = await connect(port);
            try {
              const end = `mg none${round} v\r\n`;
              replies.push(mask(await conn.request(script + end, /(^|\n)EN\r\n$/, 10_000)));
            } finally {
              await conn.close();
            }
          }
          equal(replies[1], replies[0], `round ${round}, script ${i}: ${JSON.stringify(replies)}`);
        }
      }
    } finally {
      await pair.stop();
    }
  },
});
