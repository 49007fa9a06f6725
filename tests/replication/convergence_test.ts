/**
 * Concurrent conflicting writes to the same keys on both nodes end with
 * the same value, flags and version on both (compared key by key).
 */

import { ok } from "../helpers/assert.ts";
import type { Client } from "../../lib/client/mod.ts";
import { client, sameContents, settled, startPair } from "./pair.ts";

const enc = new TextEncoder();

/** A mix of every kind of write on a small key space, pipelined in bursts. */
async function hammer(c: Client, side: string, seed: number): Promise<void> {
  let s = seed;
  const rnd = (n: number) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % n;
  for (let burst = 0; burst < 40; burst++) {
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      const key = `c${rnd(40)}`;
      switch (rnd(8)) {
        case 0:
          ops.push(c.delete(key));
          break;
        case 1:
          ops.push(c.incr(`n${rnd(5)}`, 1 + rnd(3)));
          break;
        case 2:
          ops.push(c.ms(key, enc.encode(`+${side}`), "MA"));
          break;
        case 3:
          ops.push(c.touch(key, 1000 + rnd(100)));
          break;
        case 4:
          ops.push(c.add(key, enc.encode(`add-${side}`)));
          break;
        default:
          ops.push(c.set(key, enc.encode(`${side}-${burst}-${i}`), rnd(4)));
      }
    }
    await Promise.all(ops);
  }
}

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
    await Promise.all([hammer(ca, "A", 1), hammer(cb, "B", 2)]);
    await settled(a, b);
    const all = await sameContents(a, b);
    ok(all.size > 10, `keys survive (${all.size})`);
    ca.close();
    cb.close();
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});
