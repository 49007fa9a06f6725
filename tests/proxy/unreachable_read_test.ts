/**
 * A read of a key no server can answer now: its primary times out and its
 * only backup is dirty for it (a copy of its last write was lost). The
 * backup's older value is never returned. A read of that key alone is an
 * error, as twemproxy answers a backend timeout (`SERVER_ERROR no backend
 * available`; binary 0x86); inside a multi-key get the key is left out (a
 * miss) when another key was found, and the whole get is that error when
 * none was (README, proxy: "A key no server can answer").
 */

import { equal, waitUntil } from "../helpers/assert.ts";
import {
  connect,
  ignoreUnless,
  metaEnd,
  retrievalEnd,
  startMemcached,
  startMemrep,
  startRelay,
} from "../helpers/mod.ts";
import { OP, packet, responseEnd, splitResponses, text } from "../helpers/binary.ts";
import { Ketama, ketamaName } from "../../lib/proxy/mod.ts";

const enc = new TextEncoder();

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of parts) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}
const NO_BACKEND = "SERVER_ERROR no backend available\r\n";

const NAME = "proxy: a key whose primary times out and whose backup is dirty for it: " +
  "an error alone, left out of a multi-get with hits, never the backup's old value";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const p = await startMemcached(), q = await startMemcached(), b = await startMemcached();
    const rp = startRelay(p.port), rb = startRelay(b.port);
    const proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${rp.port}`,
      "-s",
      `127.0.0.1:${q.port}`,
      "-b",
      `127.0.0.1:${rb.port}`,
      "--timeout",
      "300",
      "--failure-limit",
      "1000", // the primary stays up: every read of it times out
    ]);
    const ring = new Ketama([rp.port, q.port].map((port) => ({
      name: ketamaName("127.0.0.1", port),
      weight: 1,
    })));
    const on = (server: number, prefix: string) => {
      for (let i = 0;; i++) {
        const k = enc.encode(`${prefix}${i}`);
        if (ring.pick(k, 0, k.length) === server) return `${prefix}${i}`;
      }
    };
    const hung = on(0, "hung:"), other = on(1, "other:"), absent = on(1, "absent:");
    const c = await connect(proxy.port);
    try {
      equal(await c.request(`set ${hung} 0 0 2\r\nv1`), "STORED\r\n");
      equal(await c.request(`set ${other} 0 0 2\r\nv1`), "STORED\r\n");
      const direct = await connect(b.port);
      await waitUntil(
        async () =>
          (await direct.request(`mg ${hung}`)) === "HD\r\n" &&
          (await direct.request(`mg ${other}`)) === "HD\r\n",
        "the first values' copies on the backup",
      );
      await direct.close();
      // The next write's copy is lost on a hung backup: the backup holds v1, dirty for the key.
      rb.pause();
      equal(await c.request(`set ${hung} 0 0 2\r\nv2`), "STORED\r\n");
      const dirty = `backup:127.0.0.1:${rb.port}:dirty_keys`;
      await waitUntil(async () => (await c.stats("proxy")).get(dirty) === "1", "the key dirty");
      rp.pause(); // and now the primary hangs too
      const get = (line: string) => c.request(line, retrievalEnd, 5000);
      equal(await get(`get ${hung}`), NO_BACKEND);
      equal(await get(`gets ${hung}`), NO_BACKEND);
      equal(await get(`gat 100 ${hung}`), NO_BACKEND);
      equal(await c.request(`mg ${hung} v`, metaEnd, 5000), NO_BACKEND);
      equal(await get(`get ${other} ${hung}`), `VALUE ${other} 0 2\r\nv1\r\nEND\r\n`);
      equal(await get(`get ${hung} ${other}`), `VALUE ${other} 0 2\r\nv1\r\nEND\r\n`);
      equal(await get(`get ${hung} ${absent}`), NO_BACKEND);
      const bin = await connect(proxy.port);
      await bin.send(packet({ op: OP.GETK, key: hung, opaque: 5 }));
      const raw = await bin.readUntil((x) => responseEnd(x, 0), 5000);
      const r = splitResponses(raw).packets[0];
      equal(`${r.status} ${text(r.value)}`, "134 No backend available", "binary: 0x86");
      // A getkq batch: one error packet for that key, the other key's hit, the noop.
      await bin.send(concat([
        packet({ op: OP.GETKQ, key: hung, opaque: 6 }),
        packet({ op: OP.GETKQ, key: other, opaque: 7 }),
        packet({ op: OP.NOOP, opaque: 8 }),
      ]));
      const all = await bin.readUntil((x) => {
        const s = splitResponses(x);
        return s.packets.some((p) => p.op === OP.NOOP) ? x.length - s.rest.length : -1;
      }, 5000);
      equal(
        splitResponses(all).packets.map((x) => `${x.opaque}:${x.status}:${text(x.value)}`).join(
          " ",
        ),
        "6:134:No backend available 7:0:v1 8:0:",
      );
      await bin.close();
      rp.resume();
      rb.resume();
      await waitUntil(
        async () => (await get(`get ${hung}`)) === `VALUE ${hung} 0 2\r\nv2\r\nEND\r\n`,
        "the primary's value once it answers",
      );
    } finally {
      await c.close();
      await proxy.stop();
      await rp.close();
      await rb.close();
      for (const s of [p, q, b]) await s.stop();
    }
  },
});
