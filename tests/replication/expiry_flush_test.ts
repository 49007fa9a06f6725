/**
 * Expiry travels as absolute unix time (TTL set, touch, gat, mg T), and
 * flush_all (now or delayed) empties the peer too, without eating writes
 * made on the peer after it.
 */

import { equal, ok, waitUntil } from "../helpers/assert.ts";
import { ReplyKind } from "../../lib/client/mod.ts";
import { Op } from "../../lib/protocol/mod.ts";
import { client, contents, sameContents, settled, startPair } from "./pair.ts";

const enc = new TextEncoder();

/** Remaining TTL of a key through meta `mg <key> t` (-1 never, undefined missing). */
async function ttl(
  c: Awaited<ReturnType<typeof client>>,
  key: string,
): Promise<number | undefined> {
  const r = await c.mg(key, "t");
  return r.kind === ReplyKind.EN ? undefined : r.ttl;
}

Deno.test("TTLs, touch, gat and mg T replicate as absolute expiry; expired items vanish on both", async () => {
  const { a, b } = await startPair();
  try {
    const ca = await client(a), cb = await client(b);
    await ca.set("short", enc.encode("x"), 0, 2);
    await ca.set("long", enc.encode("y"), 0, 1000);
    await ca.set("forever", enc.encode("z"));
    await settled(a, b);
    const t = await ttl(cb, "long");
    // Each node's clock has whole seconds of its own: a TTL may read one more or less on the peer.
    ok(t !== undefined && t > 990 && t <= 1001, `long ttl on B: ${t}`);
    equal(await ttl(cb, "forever"), -1);
    // Expiry-only changes from either side.
    ok(await cb.touch("long", 50));
    await cb.request(enc.encode("gat 70 forever\r\n"), Op.GAT);
    await ca.mg("short", "T500");
    await settled(a, b);
    const ta = await ttl(ca, "long"), tf = await ttl(ca, "forever"), ts = await ttl(cb, "short");
    ok(ta !== undefined && ta > 40 && ta <= 51, `touch from B reached A: ${ta}`);
    ok(tf !== undefined && tf > 60 && tf <= 71, `gat from B reached A: ${tf}`);
    ok(ts !== undefined && ts > 490, `mg T from A reached B: ${ts}`);
    await sameContents(a, b);
    await ca.set("gone-soon", enc.encode("x"), 0, 1);
    await settled(a, b);
    // Each node expires it when its own (whole-second) clock passes the absolute time.
    for (const c of [cb, ca]) {
      await waitUntil(async () => (await c.getOne("gone-soon")) === undefined, "expiry", 5000);
    }
    ca.close();
    cb.close();
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("flush_all replicates, now and delayed, and keeps the peer's later writes", async () => {
  const { a, b } = await startPair();
  try {
    const ca = await client(a), cb = await client(b);
    for (let i = 0; i < 50; i++) await ca.set(`k${i}`, enc.encode("v"));
    await settled(a, b);
    equal((await contents(b)).size, 50);
    await ca.flushAll();
    // "Later" in the causal sense: B writes after it has applied the flush. Two writes in
    // the same millisecond on two nodes that have not seen each other are ordered by version.
    await settled(a, b);
    await cb.set("after-flush", enc.encode("kept"));
    await settled(a, b);
    const all = await sameContents(a, b);
    equal([...all.keys()].join(","), "after-flush");
    // A write older than the flush arriving late would be refused (unit-tested);
    // here: delayed flush empties both when its time comes.
    await cb.set("doomed", enc.encode("x"));
    await cb.flushAll(5); // long enough that a loaded machine still checks before it

    await settled(a, b);
    equal((await ca.getOne("doomed"))?.value.length, 1, "still there before the delay");
    await waitUntil(
      async () =>
        (await ca.getOne("doomed")) === undefined && (await cb.getOne("doomed")) === undefined,
      "delayed flush on both",
      12_000,
    );
    equal(await ca.getOne("after-flush"), undefined);
    // memcached also drops what is written in the very second a delayed flush takes effect.
    await new Promise((r) => setTimeout(r, 1100));
    await ca.set("after-delayed", enc.encode("x"));
    await settled(a, b);
    equal([...(await sameContents(a, b)).keys()].join(","), "after-delayed");
    ca.close();
    cb.close();
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});
