/**
 * A delayed flush_all (`flush_all <n>`) leaves every node with the same
 * items however late the writes around its time reach the peer: it drops
 * by version (what was written up to the end of its second), not by when
 * each node happened to store an item. By store time, a write its writer
 * dropped came alive on a peer that got it after its own flush second, and
 * a peer's write dropped there lived on here (the nodes' clock seconds do
 * not even start at the same instant).
 */

import { equal, ok } from "../helpers/assert.ts";
import { client, contents, settled, withRelayedPair } from "./pair.ts";

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cases = [
  { threads: "1", flusher: "A", late: false },
  { threads: "2", flusher: "B", late: false },
  { threads: "1", flusher: "A", late: true },
  { threads: "2", flusher: "B", late: true },
];
for (const { threads, flusher, late } of cases) {
  const what = late ? "the flush and the writes" : "writes";
  Deno.test(`-t ${threads}: a delayed flush_all on ${flusher}, ${what} around its time delivered late (link hung): both end the same`, async () => {
    await withRelayedPair(["--repl-timeout", "8000", "-t", threads], async (a, b, relay) => {
      const ca = await client(a), cb = await client(b);
      try {
        await Promise.all([ca.set("before", enc.encode("x")), cb.set("before-b", enc.encode("x"))]);
        await settled(a, b);
        // Hung link: each node's writes reach the other only after both flushed.
        if (late) relay.pause();
        await (flusher === "A" ? ca : cb).flushAll(2);
        if (!late) {
          await settled(a, b);
          relay.pause();
        }
        for (let i = 0; i < 80; i++) {
          await Promise.all([ca.set(`a${i}`, enc.encode("x")), cb.set(`b${i}`, enc.encode("x"))]);
          await sleep(50);
        }
        relay.resume();
        await settled(a, b);
        const [ha, hb] = await Promise.all([contents(a), contents(b)]);
        const only = (x: Map<string, string>, y: Map<string, string>) =>
          [...x.keys()].filter((k) => !y.has(k)).sort();
        equal(only(ha, hb).join(" "), "", "keys on A only");
        equal(only(hb, ha).join(" "), "", "keys on B only");
        ok(!ha.has("before") && !ha.has("before-b"), "what was written before the flush is gone");
        ok(ha.has("a79") && ha.has("b79"), "writes well after the flush time are kept");
        ok(!ha.has("a0") && !ha.has("b0"), "writes made right after the command are flushed");
      } finally {
        ca.close();
        cb.close();
      }
    });
  });
}
