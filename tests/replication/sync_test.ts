/**
 * --repl-sync: a write is acknowledged to the client only once the peer
 * applied it, so kill -9 of the acknowledging node loses no acknowledged
 * write. Without a peer, writes are acknowledged at once (like repcached).
 */

import { equal, ok } from "../helpers/assert.ts";
import { client, replStat, startPair } from "./pair.ts";

const enc = new TextEncoder();

Deno.test("--repl-sync: kill -9 of the node that acknowledged loses no acknowledged write", async () => {
  const { a, b } = await startPair(["--repl-sync"]);
  try {
    equal(await replStat(a, "repl_sync"), 1);
    const acked: string[] = [];
    const writers: Promise<void>[] = [];
    let stop = false;
    for (let w = 0; w < 4; w++) {
      writers.push((async () => {
        const c = await client(a);
        try {
          for (let i = 0; !stop; i++) {
            const key = `w${w}-${i}`;
            if (await c.set(key, enc.encode(`value-${key}`))) acked.push(key);
          }
        } catch {
          // the node died under us: what was acknowledged is in `acked`
        } finally {
          c.close();
        }
      })());
    }
    while (acked.length < 2000) await new Promise((r) => setTimeout(r, 10));
    a.proc.kill("SIGKILL");
    stop = true;
    await Promise.all(writers);
    const cb = await client(b);
    const missing: string[] = [];
    for (let i = 0; i < acked.length; i += 200) {
      const got = await cb.get(acked.slice(i, i + 200));
      for (const k of acked.slice(i, i + 200)) if (!got.has(k)) missing.push(k);
    }
    equal(missing.length, 0, `acknowledged writes missing on B: ${missing.slice(0, 5).join(", ")}`);
    ok(acked.length >= 2000);
    // Alone, B acknowledges at once.
    await b.proc.waitForLog(/^replication: listen$/, 5000, 0);
    ok(await cb.set("alone", enc.encode("x")));
    cb.close();
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});
