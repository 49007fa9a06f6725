/**
 * Binary keys the proxy's meta backends cannot be sent: memcached 1.6.18
 * stores a binary key of any bytes up to 250, but its meta commands check
 * the key token's length (250) before base64-decoding a `b` key, so a key
 * text cannot carry (space, control bytes) fits only up to 186 bytes (248
 * base64 characters). Such a longer key is answered through the proxy
 * exactly as memcached answers a binary key over 250 bytes: 0x04 "Invalid
 * arguments", replies queued before it sent, then the connection closed.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { connect, ignoreUnless, metaEnd, startMemcached, type TestConn } from "../helpers/mod.ts";
import {
  OP,
  packet,
  roundTrip,
  setExtras,
  splitResponses,
  text,
  u32Extras,
} from "../helpers/binary.ts";
import { startCluster } from "./cluster.ts";
import { NEED, one } from "./binary_cluster.ts";

/** A key of `n` bytes that text cannot carry (spaces and control bytes in it). */
function unsafeKey(n: number, seed: number): Uint8Array {
  const k = new Uint8Array(n);
  for (let i = 0; i < n; i++) k[i] = 0x21 + ((i * 31 + seed) % 90);
  k[0] = 0x20;
  k[n >> 1] = 0x01;
  return k;
}

/** Everything the server sends for `bytes` until it closes the connection. */
async function untilClosed(c: TestConn, bytes: Uint8Array): Promise<Uint8Array> {
  await c.send(bytes);
  ok(await c.waitClosed(10_000), "the server closes the connection");
  return await c.readUntil((b) => b.length, 1000).catch(() => new Uint8Array(0));
}

/** A noop answered first, then `req` (the over-long key), then a request never answered. */
function batch(req: Uint8Array): Uint8Array {
  const parts = [packet({ op: OP.NOOP, opaque: 7 }), req, packet({ op: OP.VERSION, opaque: 9 })];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const NAME = "proxy binary: a key meta cannot carry (187-250 bytes, not text-safe) is " +
  "answered as memcached answers an over-long binary key";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, NEED),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const mc = await startMemcached();
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      // memcached itself: a 200-byte key with a space is an ordinary binary key...
      const d = await connect(mc.port);
      const k200 = unsafeKey(200, 1);
      const stored = await one(
        d,
        packet({ op: OP.SET, key: k200, value: "v", extras: setExtras(5, 0), opaque: 1 }),
      );
      equal(stored.status, 0, "memcached stores a 200-byte binary key with a space");
      equal(text((await one(d, packet({ op: OP.GET, key: k200 }))).value), "v");
      await d.close();
      // ...but its meta commands refuse the base64 form (the token is checked before decoding).
      const t = await connect(mc.port);
      const b64 = btoa(String.fromCharCode(...k200));
      ok(b64.length > 250);
      equal(await t.request(`mg ${b64} b v`, metaEnd), "CLIENT_ERROR bad command line format\r\n");
      const b186 = btoa(String.fromCharCode(...unsafeKey(186, 2)));
      equal(b186.length, 248);
      equal(await t.request(`ms ${b186} 1 b\r\nx`, metaEnd), "HD\r\n", "186 bytes: 248 base64");
      await t.close();

      const ops: [string, (key: Uint8Array, opaque: number) => Uint8Array][] = [
        [
          "set",
          (key, opaque) => packet({ op: OP.SET, key, value: "v", extras: setExtras(0, 0), opaque }),
        ],
        [
          "setq",
          (key, opaque) =>
            packet({ op: OP.SETQ, key, value: "v", extras: setExtras(0, 0), opaque }),
        ],
        ["getkq", (key, opaque) => packet({ op: OP.GETKQ, key, opaque })],
        ["delete", (key, opaque) => packet({ op: OP.DELETE, key, opaque })],
        ["touch", (key, opaque) => packet({ op: OP.TOUCH, key, extras: u32Extras(0), opaque })],
      ];
      for (const [name, make] of ops) {
        // memcached's answer to an over-long binary key (251 bytes)...
        const m = await connect(mc.port);
        const theirs = await untilClosed(m, batch(make(unsafeKey(251, 3), 0x1234)));
        // ...is the proxy's to a key it cannot say to its backends.
        for (const n of [187, 250]) {
          const p = await connect(cluster.proxy.port);
          const mine = await untilClosed(p, batch(make(unsafeKey(n, 4), 0x1234)));
          deepEqual(
            splitResponses(mine).packets.map((r) => [r.op, r.status, r.opaque, text(r.value)]),
            splitResponses(theirs).packets.map((r) => [r.op, r.status, r.opaque, text(r.value)]),
            `${name} with a ${n}-byte key`,
          );
          deepEqual(mine, theirs, `${name} with a ${n}-byte key: the same bytes`);
        }
      }
      // 186 bytes still go through, base64 to the backends.
      const p = await connect(cluster.proxy.port);
      const k186 = unsafeKey(186, 5);
      const r = await roundTrip(
        p,
        batch(
          packet({ op: OP.SET, key: k186, value: "w", extras: setExtras(0, 0), opaque: 3 }),
        ),
        10_000,
      );
      deepEqual(r.map((x) => [x.op, x.status]), [[OP.NOOP, 0], [OP.SET, 0], [OP.VERSION, 0]]);
      equal(text((await one(p, packet({ op: OP.GET, key: k186 }))).value), "w");
      await p.close();
    } finally {
      await cluster.stop();
      await mc.stop();
    }
  },
});
