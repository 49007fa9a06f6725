/**
 * Concurrent conflicting writes to the same keys on both nodes end with
 * the same value, flags and version on both (compared key by key).
 */

import { ok } from "../helpers/assert.ts";
import { client, conflictingWrites, sameContents, settled, startPair } from "./pair.ts";

const enc = new TextEncoder();

Deno.test("concurrent conflicting writes on both nodes converge to the same state", async () => {
  const { a, b } = await startPair();
  try {
    const ca = await client(a), cb = await client(b);
    const setup: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      setup.push(ca.set(`n${i}`, enc.encode("100")));
    }
    await Promise.all(setup);
    await settled(a, b);
    const mix = { bursts: 40, keySpace: 40 };
    await Promise.all([conflictingWrites(ca, "A", 1, mix), conflictingWrites(cb, "B", 2, mix)]);
    await settled(a, b);
    const all = await sameContents(a, b);
    ok(all.size > 10, `keys survive (${all.size})`);
    ca.close();
    cb.close();
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});
