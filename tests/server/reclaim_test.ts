/**
 * An expired item at the LRU tail gives its memory to the next item stored in
 * its slab class, counted as `reclaimed` (and `expired_unfetched` when it was
 * never read), as memcached 1.6.18 counts it: compared with memcached started
 * with the same flags (its LRU maintainer does it in the background, or with
 * `-o no_modern` the allocation itself).
 */

import { connect, equal, ignoreUnless, startMemcached, startMemrep } from "../helpers/mod.ts";

const COUNTERS = ["reclaimed", "expired_unfetched", "curr_items", "total_items"];

async function script(port: number): Promise<string> {
  const c = await connect(port);
  try {
    await c.request("set gone 0 1 1\r\nx\r\n");
    await c.request("set stays 0 0 1\r\ny\r\n");
    await new Promise((r) => setTimeout(r, 2500));
    await c.request("set next 0 0 1\r\nz\r\n");
    const s = await c.stats();
    return COUNTERS.map((n) => `${n}=${s.get(n)}`).join(" ");
  } finally {
    await c.close();
  }
}

for (const flags of [[], ["-o", "no_modern"]]) {
  const name = `an expired tail item is reclaimed by the next store (${
    flags.join(" ") || "defaults"
  })`;
  Deno.test({
    name,
    ignore: ignoreUnless(name, ["memcached"]),
    async fn() {
      const ref = await startMemcached(flags);
      let sut;
      try {
        sut = await startMemrep(["serve", "-t", "1", ...flags]);
        const [expected, actual] = await Promise.all([script(ref.port), script(sut.port)]);
        equal(actual, expected);
      } finally {
        await Promise.all([ref.stop(), sut?.stop()]);
      }
    },
  });
}
