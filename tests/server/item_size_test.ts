/**
 * The largest value `-I` lets through is memcached's, byte for byte: its
 * item_size_ok counts a 48-byte header, the key's NUL, 4 flag bytes and 8
 * CAS bytes (none under -C), so serve's smaller header must not let a value
 * in that memcached refuses ("SERVER_ERROR object too large for cache"),
 * and `replicate` can copy serve's largest items to memcached.
 * @module
 */

import {
  connect,
  equal,
  ignoreUnless,
  startMemcached,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

async function stores(c: TestConn, key: string, flags: number, n: number): Promise<boolean> {
  const reply = await c.request(`set ${key} ${flags} 0 ${n}\r\n${"v".repeat(n)}\r\n`);
  return reply === "STORED\r\n";
}

/** The largest value `c` stores for `key` with `flags` (binary search). */
async function largest(c: TestConn, key: string, flags: number): Promise<number> {
  let lo = 1024, hi = 4 * 1048576;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (await stores(c, key, flags, mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const NAME = "the largest value under -I is memcached's (key length, flags, -C)";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    for (const args of [["-I", "2m"], ["-I", "2m", "-C"], ["-I", "1m"]]) {
      const ref = await startMemcached(["-m", "64", ...args]);
      const server = await startMemrep(["serve", "-U", "0", "-m", "64", ...args]);
      const a = await connect(ref.port), b = await connect(server.port);
      try {
        for (const [key, flags] of [["k", 0], ["k".repeat(200), 7]] as const) {
          const max = await largest(a, key, flags);
          const what = `${args.join(" ")}, ${key.length}-byte key, flags ${flags}: ${max}`;
          equal(await stores(b, key, flags, max), true, what);
          equal(await stores(b, key, flags, max + 1), false, what);
          equal(
            await b.request("get nothing"),
            "END\r\n",
            "the connection goes on after the refusal",
          );
        }
      } finally {
        await Promise.all([a.close(), b.close()]);
        await Promise.all([ref.stop(), server.stop()]);
      }
    }
  },
});
