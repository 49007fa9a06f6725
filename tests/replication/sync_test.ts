/**
 * --repl-sync: a write is acknowledged to the client only once the peer
 * applied it, so kill -9 of the acknowledging node loses no acknowledged
 * write. Without a peer, writes are acknowledged at once (like repcached).
 */

import { equal, ok } from "../helpers/assert.ts";
import { client, missingKeys, replStat, startPair, startWriters } from "./pair.ts";

const enc = new TextEncoder();

Deno.test("--repl-sync: kill -9 of the node that acknowledged loses no acknowledged write", async () => {
  const { a, b } = await startPair(["--repl-sync"]);
  try {
    equal(await replStat(a, "repl_sync"), 1);
    const writers = startWriters(a, 4, "w");
    const acked = writers.acked;
    while (acked.length < 2000) await new Promise((r) => setTimeout(r, 10));
    a.proc.kill("SIGKILL");
    await writers.stop();
    const missing = await missingKeys(b, acked);
    equal(missing.length, 0, `acknowledged writes missing on B: ${missing.slice(0, 5).join(", ")}`);
    ok(acked.length >= 2000);
    // Alone, B acknowledges at once.
    await b.proc.waitForLog(/^replication: listen$/, 5000, 0);
    const cb = await client(b);
    ok(await cb.set("alone", enc.encode("x")));
    cb.close();
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});
