/**
 * Meta win tokens (`mg N` vivify, `mg R` recache, a stale item's `X W`)
 * across a pair: once a client on one node got W, a client on the peer must
 * get Z like a second client of one memcached, not a second W (two clients
 * recomputing) nor, after a vivify, the empty placeholder as a plain hit.
 * Each script runs on real memcached 1.6.18 with two connections and on a
 * pair (the first client on A, the second on B, the pair settled between
 * steps); the replies must be the same bytes.
 */

import { connect, ignoreUnless, metaEnd, startMemcached, type TestConn } from "../helpers/mod.ts";
import { equalBytes } from "../helpers/assert.ts";
import { settled, startPair } from "./pair.ts";

/** A step: which client sends it (0: the first, on A; 1: the second, on B) and the bytes. */
type Step = [0 | 1, string];

const SCRIPTS: { name: string; steps: Step[] }[] = [
  {
    name: "mg N vivify",
    steps: [
      [0, "mg viv N30 s v\r\n"],
      [1, "mg viv N30 s v\r\n"],
      [1, "mg viv s v f\r\n"],
      [0, "ms viv 3 T30 F5\r\nnew\r\n"],
      [1, "mg viv N30 s v f\r\n"],
    ],
  },
  {
    name: "md I, then mg X W",
    steps: [
      [0, "ms st 3 T100\r\nval\r\n"],
      [0, "md st I T30\r\n"],
      [0, "mg st v\r\n"],
      [1, "mg st v\r\n"],
      [1, "ms st 3 T100\r\nnew\r\n"],
      [0, "mg st v\r\n"],
    ],
  },
  {
    name: "mg R recache",
    steps: [
      [0, "ms rc 1 T20\r\nv\r\n"],
      [0, "mg rc R30 v\r\n"],
      [1, "mg rc R30 v\r\n"],
      [0, "mg rc R30 v\r\n"],
    ],
  },
];

async function run(steps: Step[], conns: TestConn[], between: () => Promise<void>) {
  const replies: string[] = [];
  for (const [who, bytes] of steps) {
    await between();
    replies.push(await conns[who].request(bytes, metaEnd, 10_000));
  }
  return replies;
}

for (const threads of ["1", "2"]) {
  Deno.test({
    name: `-t ${threads}: a win token handed out on one node makes the peer's clients get Z`,
    ignore: ignoreUnless("meta win tokens on a pair", ["memcached"]),
    async fn() {
      const mc = await startMemcached();
      const { a, b } = await startPair(["-t", threads]);
      try {
        for (const script of SCRIPTS) {
          const m = [await connect(mc.port), await connect(mc.port)];
          const p = [await connect(a.port), await connect(b.port)];
          try {
            const want = await run(script.steps, m, () => Promise.resolve());
            const got = await run(script.steps, p, () => settled(a, b));
            for (let i = 0; i < want.length; i++) {
              const [who, bytes] = script.steps[i];
              equalBytes(
                got[i],
                want[i],
                `${script.name}, step ${i} (client ${who}: ${JSON.stringify(bytes)})`,
              );
            }
          } finally {
            for (const c of [...m, ...p]) await c.close();
          }
        }
      } finally {
        await Promise.all([mc.stop(), a.proc.stop(), b.proc.stop()]);
      }
    },
  });
}
