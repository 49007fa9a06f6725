/**
 * The change ring between serve threads and the replicator, when the
 * replicator stops draining: a set may be dropped after a bounded wait (the
 * store still has it; a full copy is flagged), but a delete or a flush leaves
 * nothing to copy, so it waits for room and always arrives.
 */

import { deepEqual, equal } from "../helpers/assert.ts";
import { Engine } from "../../lib/server/mod.ts";
import { createReplicationShare, WorkerReplication } from "../../lib/replication/mod.ts";
import type { DrainerReport, DrainerRequest } from "./ring_drainer.ts";

const enc = new TextEncoder();

function nextReport(w: Worker): Promise<DrainerReport> {
  return new Promise((resolve) => w.onmessage = (e) => resolve(e.data));
}

Deno.test("change ring: when full, deletes and flushes wait for room; a set is dropped and flags a full copy", async () => {
  const share = createReplicationShare(1 << 20, false);
  const engine = new Engine({ memoryLimit: 64 << 20, maxItemSize: 1 << 20, evict: true });
  const repl = new WorkerReplication({ engine, barrier: undefined }, share, 50);
  const tail = () => Number(Atomics.load(new BigInt64Array(share.ctl, 64, 4), 1));
  const cap = share.ring.byteLength;
  const drainer = new Worker(new URL("./ring_drainer.ts", import.meta.url).href, {
    type: "module",
  });
  const send = (m: DrainerRequest) => drainer.postMessage(m);
  try {
    let report = nextReport(drainer);
    send({ share });
    await report;

    // Fill the ring with deletes while nobody drains, leaving under 16 bytes
    // free: no delete or flush frame fits in that.
    let deletes = 0;
    const del = (keyLength: number) => {
      const k = enc.encode(String(deletes).padStart(keyLength, "k"));
      const before = tail();
      repl.deleted(k, 0, k.length);
      deletes++;
      return tail() - before - keyLength; // frame bytes besides the key
    };
    const fill = () => {
      const start = tail();
      let overhead = 0;
      while (cap - (tail() - start) >= 200) overhead = del(100);
      del(cap - (tail() - start) - overhead - 10);
      equal(cap - (tail() - start), 10);
    };
    const long = enc.encode("x".repeat(200));
    fill();
    // A set with no room: dropped after the (shortened) wait, full copy flagged.
    const key = enc.encode("big");
    const h = engine.store.alloc(key, 0, key.length, 0, 0, 64 << 10);
    engine.store.link(h);
    repl.stored(h);
    // A delete with no room blocks this thread until the drainer frees the ring.
    report = nextReport(drainer);
    send({ drainInMs: 300 });
    repl.deleted(long, 0, long.length);
    deepEqual(await report, { deletes, flushes: 0, items: 0, overflows: 1 });
    report = nextReport(drainer);
    send({ drainInMs: 0 });
    deepEqual(await report, { deletes: deletes + 1, flushes: 0, items: 0, overflows: 1 });

    // Same for flush_all.
    deletes++;
    const before = deletes;
    fill();
    report = nextReport(drainer);
    send({ drainInMs: 300 });
    repl.flushed(0);
    deepEqual(await report, { deletes, flushes: 0, items: 0, overflows: 1 });
    report = nextReport(drainer);
    send({ drainInMs: 0 });
    deepEqual(await report, { deletes, flushes: 1, items: 0, overflows: 1 });
    equal(deletes > before, true);
  } finally {
    drainer.terminate();
  }
});
