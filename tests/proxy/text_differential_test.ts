/**
 * The text protocol through `memrep proxy`: the scripts of the serve
 * differential suite (tests/conformance/differential_cases.ts) go to a real
 * memcached 1.6.18 and to the proxy over a memcached primary and a backup;
 * the normalised replies must be identical. Excluded: the cases whose
 * answer is the proxy's own business by design (see EXCLUDED).
 * Env: `DIFF_FILTER=<regex>`, `DIFF_SHOW=1`.
 */

import { connect } from "../helpers/conn.ts";
import { ignoreUnless, startMemcached } from "../helpers/process.ts";
import { CASES } from "../conformance/differential_cases.ts";
import { describeDiff, runCase } from "../conformance/differential.ts";
import { startCluster } from "./cluster.ts";

const SERVER_ARGS = ["-m", "64", "-I", "1m"];
const NAME = "proxy answers text commands as memcached 1.6 does (differential, primary + backup)";

/** Cases whose difference is known, with why (README, "Proxy"). */
const EXCLUDED: RegExp[] = [
  // Server administration: the proxy answers SERVER_ERROR not supported (a cluster has no
  // one slab allocator, LRU crawler or memory limit to tune or dump).
  /^shutdown/,
  /^slabs /,
  /^cache_memlimit/,
  /^lru /,
  /^lru_crawler/,
  // Per-server stats the proxy answers for the whole cluster its own way.
  /^stats cachedump/,
  /^stats detail/,
  // memcached loses the replies queued before a get whose key is too long; the proxy,
  // whose replies come from its backends, sends them (not emulated).
  /^a get with a 251-byte key drops the replies pipelined before it$/,
  /^a too-long get key keeps what a get or an mn before it wrote out$/,
];

/**
 * Cases where memcached pads a shrunk counter in place only while no one else holds the item:
 * the proxy's read-back after an incr/decr/ma is released at its `mn`, but memcached may let go
 * of it on its own worker thread after the proxy's next command reached another one. A
 * difference there is tried again (at most 3 runs); the stored bytes themselves are checked by
 * tests/proxy/arith_bytes_test.ts.
 */
const RACED: RegExp[] = [
  /^incr and decr basics/,
  /^decr that shrinks the length pads in place$/,
  /^ma that grows and shrinks the value$/,
];

async function flushAll(port: number): Promise<void> {
  const c = await connect(port);
  try {
    await c.request("flush_all");
  } finally {
    await c.close();
  }
}

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn(t) {
    const filter = Deno.env.get("DIFF_FILTER");
    const cases = CASES.filter((c) =>
      !c.expect && !EXCLUDED.some((x) => x.test(c.name)) &&
      (!filter || new RegExp(filter).test(c.name))
    );
    const ref = await startMemcached(SERVER_ARGS);
    const cluster = await startCluster({ servers: 1, backups: 1, memcachedArgs: SERVER_ARGS });
    const sut = cluster.proxy;
    try {
      for (const c of cases) {
        await t.step(c.name, async () => {
          const runs = RACED.some((x) => x.test(c.name)) ? 3 : 1;
          for (let run = 1;; run++) {
            await Promise.all([flushAll(ref.port), flushAll(sut.port)]);
            const [expected, actual] = await Promise.all([
              runCase(ref.port, c),
              runCase(sut.port, c),
            ]);
            const diff = describeDiff(c, expected, actual, "memcached", "proxy");
            if (Deno.env.get("DIFF_SHOW")) console.log(diff);
            const same = expected.normalised.length === actual.normalised.length &&
              expected.normalised.every((e, i) => e === actual.normalised[i]);
            if (same) break;
            if (run >= runs) throw new Error(`replies differ\n${diff}`);
          }
        });
      }
    } finally {
      await cluster.stop();
      await ref.stop();
    }
  },
});
