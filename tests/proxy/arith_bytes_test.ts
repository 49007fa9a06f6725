/**
 * incr/decr through the proxy leave the bytes memcached itself would hold:
 * memcached rewrites a counter in place, padded with spaces, when the new
 * number is not longer and no pending reply holds the item, so `10`, incr 5,
 * decr 100 is `0 ` (two bytes). Random pipelined scripts (noreply and loud
 * arithmetic, gets, appends) go to a memcached directly and through the
 * proxy over a memcached primary and backup; the replies and the stored
 * bytes on the primary and on the backup must equal memcached's.
 */

import { equal, eventually } from "../helpers/assert.ts";
import {
  connect,
  ignoreUnless,
  mulberry32,
  startMemcached,
  type TestConn,
} from "../helpers/mod.ts";
import { startCluster } from "./cluster.ts";

const NAME = "incr/decr through the proxy store memcached's bytes on primary and backup";

/** A pipelined script over `keys`, ending with the `mn` barrier. */
function script(rand: () => number, keys: string[]): string {
  let s = "";
  for (const k of keys) {
    const start = String(Math.floor(rand() * 10 ** (1 + Math.floor(rand() * 5))));
    s += `set ${k} 0 0 ${start.length}\r\n${start}\r\n`;
  }
  for (let i = 0; i < keys.length * 8; i++) {
    const k = keys[Math.floor(rand() * keys.length)];
    const r = rand();
    const noreply = rand() < 0.6 ? " noreply" : "";
    const delta = Math.floor(rand() * 10 ** Math.floor(rand() * 5));
    if (r < 0.4) s += `decr ${k} ${delta}${noreply}\r\n`;
    else if (r < 0.8) s += `incr ${k} ${delta}${noreply}\r\n`;
    else if (r < 0.9) s += `get ${k}\r\n`;
    else s += `append ${k} 0 0 1${noreply}\r\n7\r\n`;
  }
  return s + "mn\r\n";
}

async function run(c: TestConn, s: string): Promise<string> {
  return await c.request(s, "MN\r\n", 10_000);
}

/** The raw value block of `key` (`VALUE ...\r\n<bytes>\r\n`), or "miss". */
async function stored(port: number, key: string): Promise<string> {
  const c = await connect(port);
  try {
    return await c.request(`get ${key}`, "END\r\n");
  } finally {
    await c.close();
  }
}

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const seed = Number(Deno.env.get("SEED") ?? Date.now() % 1_000_000);
    console.log(`seed ${seed}`);
    const rand = mulberry32(seed);
    const ref = await startMemcached();
    const cluster = await startCluster({ servers: 1, backups: 1 });
    const [refConn, proxyConn] = await Promise.all([
      connect(ref.port),
      connect(cluster.proxy.port),
    ]);
    try {
      // The brief's case first, then random scripts.
      const scripts = ["set n 0 0 2\r\n10\r\nincr n 5 noreply\r\ndecr n 100 noreply\r\nmn\r\n"];
      const keys = ["n"];
      for (let round = 0; round < 6; round++) {
        const ks = Array.from({ length: 6 }, (_, i) => `c${round}:${i}`);
        keys.push(...ks);
        scripts.push(script(rand, ks));
      }
      for (const s of scripts) {
        const [want, got] = await Promise.all([run(refConn, s), run(proxyConn, s)]);
        const g = got.split("\r\n"), w = want.split("\r\n");
        const at = g.findIndex((line, i) => line !== w[i]);
        if (at >= 0 || g.length !== w.length) {
          throw new Error(
            `reply line ${at}: proxy ${JSON.stringify(g.slice(at - 2, at + 3))}, ` +
              `memcached ${JSON.stringify(w.slice(at - 2, at + 3))}; script ${JSON.stringify(s)}`,
          );
        }
      }
      let mismatches = 0;
      for (const k of keys) {
        const want = await stored(ref.port, k);
        const onPrimary = await stored(cluster.servers[0].port, k);
        if (onPrimary !== want) {
          mismatches++;
          console.log(
            `${k}: memcached ${JSON.stringify(want)}, primary ${JSON.stringify(onPrimary)}`,
          );
        }
        // Copies to the backup are asynchronous: wait for the primary's bytes there.
        await eventually(() => stored(cluster.backups[0].port, k), onPrimary, `${k} on the backup`);
      }
      equal(mismatches, 0, "keys whose primary bytes differ from memcached's");
    } finally {
      await Promise.all([refConn.close(), proxyConn.close()]);
      await cluster.stop();
      await ref.stop();
    }
  },
});
