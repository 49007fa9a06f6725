/**
 * A read whose primary misses is looked up in the backups only once the
 * primary answered. A write pipelined after the read may be on the backups
 * by then; the read must not return it (memcached runs the read first: it
 * answers the old value, or nothing). Here one primary answers slowly (a
 * relay adds latency), so a multi-get's lookups of a key on the other,
 * quick primary wait until that key's later `set` (or `delete` then `set`)
 * is on the backup. Each pipelined reply must be memcached's own.
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless, startMemcached, startMemrep, startRelay } from "../helpers/mod.ts";
import { Ketama, ketamaName } from "../../lib/proxy/mod.ts";

const enc = new TextEncoder();

const NAME =
  "proxy: a read that falls back to the backups never returns a write pipelined after it";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const slow = await startMemcached(), quick = await startMemcached();
    const backup = await startMemcached(), direct = await startMemcached();
    const relay = startRelay(slow.port);
    relay.setLatency(150);
    const proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${relay.port}`,
      "-s",
      `127.0.0.1:${quick.port}`,
      "-b",
      `127.0.0.1:${backup.port}`,
    ]);
    const ring = new Ketama([relay.port, quick.port].map((port) => ({
      name: ketamaName("127.0.0.1", port),
      weight: 1,
    })));
    const on = (server: number, prefix: string) => {
      for (let i = 0;; i++) {
        const k = enc.encode(`${prefix}${i}`);
        if (ring.pick(k, 0, k.length) === server) return `${prefix}${i}`;
      }
    };
    const a = on(0, "a"), b = on(1, "b"), m = on(1, "m");
    // The same script on memcached and through the proxy: `b` and `m` miss on their
    // (quick) primary, the reply waits for `a`'s slow one, and later writes of `b`/`m`
    // reach the backup meanwhile.
    const script = `get ${a} ${b}\r\nset ${b} 0 0 5\r\nlater\r\n` +
      `gets ${a} ${m}\r\nset ${m} 0 0 5\r\nlater\r\ndelete ${m}\r\n` +
      `get ${b}\r\nget ${a} ${b} ${m}\r\nversion\r\n`;
    const conns = [await connect(direct.port), await connect(proxy.port)];
    try {
      // A reply first: a multi-get pipelined behind unanswered requests while no reply's size
      // is known yet goes in parts, which hold back later requests anyway (multiget_parts.ts).
      for (const c of conns) equal(await c.request(`set ${a} 0 0 1\r\nA\r\n`), "STORED\r\n");
      const replies: string[] = [];
      for (const c of conns) replies.push(await c.request(script, "VERSION 1.6.18\r\n", 10_000));
      // CAS values differ between servers: compare with them masked.
      const mask = (s: string) => s.replace(/^(VALUE \S+ \d+ \d+) \d+\r\n/gm, "$1 CAS\r\n");
      equal(mask(replies[1]), mask(replies[0]));
      // And a single-key read (its fallback is sent on the primary's reply).
      const single =
        `get ${b}x\r\nset ${b}x 0 0 5\r\nlater\r\nmg ${b}y v\r\nset ${b}y 0 0 1\r\n1\r\n` +
        `get ${b}x\r\nversion\r\n`;
      const again: string[] = [];
      for (const c of conns) again.push(await c.request(single, "VERSION 1.6.18\r\n", 10_000));
      equal(again[1], again[0]);
    } finally {
      for (const c of conns) await c.close();
      await proxy.stop();
      await relay.close();
      for (const s of [slow, quick, backup, direct]) await s.stop();
    }
  },
});

const CAS_NAME =
  "proxy: an mg with c answered from the backup is not re-read from the primary after a later write reached it";
Deno.test({
  name: CAS_NAME,
  ignore: ignoreUnless(CAS_NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // The primary misses (the backup has the item), the hit is repaired onto it, and for the
    // primary's CAS it is asked again: a set sent meanwhile, after the mg, is there by then.
    const primary = await startMemcached(), backup = await startMemcached();
    const relay = startRelay(primary.port);
    relay.setLatency(100);
    const proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${relay.port}`,
      "-b",
      `127.0.0.1:${backup.port}`,
      "--timeout",
      "5000",
    ]);
    const c = await connect(proxy.port), onBackup = await connect(backup.port);
    try {
      equal(await onBackup.request("set k 0 0 3\r\nold"), "STORED\r\n");
      await c.send("mg k v c\r\n");
      await new Promise((r) => setTimeout(r, 280)); // the primary's miss is in (100 ms each way), the repair on its way
      await c.send("set k 0 0 3\r\nnew\r\n");
      const reply = await c.readUntilText(/STORED\r\n/, 10_000);
      const m = /^VA 3 c\d+\r\n(\w+)\r\nSTORED\r\n$/.exec(reply);
      equal(m?.[1], "old", JSON.stringify(reply));
    } finally {
      await c.close();
      await onBackup.close();
      await proxy.stop();
      await relay.close();
      for (const s of [primary, backup]) await s.stop();
    }
  },
});
