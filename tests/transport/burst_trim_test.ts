/**
 * BurstTrim (issue 9, item 8): the heap is trimmed once after most of a
 * burst of connections has closed and closes have stopped, never for small
 * ups and downs or while a burst is still open; trimHeap gives a grown heap
 * back. WriterPool keeps a bounded number of small writers.
 * @module
 */

import { WriterPool } from "../../lib/protocol/mod.ts";
import { BURST, BurstTrim, loadCollector, trimHeap } from "../../lib/transport/mod.ts";
import { equal, ok, waitUntil } from "../helpers/mod.ts";

const QUIET = 30;

function counter(quiet = QUIET): { trim: BurstTrim; trims: () => number; counted: () => number } {
  let trims = 0, counted = 0;
  const trim = new BurstTrim(() => counted++, () => {
    trims++;
    return true;
  }, quiet);
  return { trim, trims: () => trims, counted: () => counted };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

Deno.test("BurstTrim trims once after a burst closes, and again after the next one", async () => {
  const { trim, trims, counted } = counter();
  try {
    for (let burst = 1; burst <= 2; burst++) {
      for (let i = 0; i < BURST * 4; i++) trim.opened();
      for (let i = 0; i < BURST * 4 - 3; i++) trim.closed();
      await waitUntil(() => trims() === burst, `trim ${burst}`, 5000);
      equal(counted(), burst);
      for (let i = 0; i < 3; i++) trim.closed(); // the stragglers do not trim again
      await sleep(QUIET * 4);
      equal(trims(), burst, "one trim per burst");
    }
  } finally {
    trim.close();
  }
});

Deno.test("BurstTrim never trims for churn below a burst or while most of a burst is open", async () => {
  const { trim, trims } = counter();
  try {
    // Many connections over time, never BURST at once.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < BURST - 1; i++) trim.opened();
      for (let i = 0; i < BURST - 1; i++) trim.closed();
    }
    await sleep(QUIET * 4);
    equal(trims(), 0, "no burst, no trim");
    // A burst that is still mostly open.
    for (let i = 0; i < BURST * 4; i++) trim.opened();
    for (let i = 0; i < BURST; i++) trim.closed();
    await sleep(QUIET * 4);
    equal(trims(), 0, "three quarters still open");
  } finally {
    trim.close();
  }
});

Deno.test("BurstTrim waits while a burst's connections keep closing in bulk", async () => {
  const quiet = 600; // far longer than the gaps below, even on a loaded machine
  const { trim, trims } = counter(quiet);
  try {
    for (let i = 0; i < BURST * 8; i++) trim.opened();
    for (let i = 0; i < BURST * 6; i++) trim.closed();
    for (let i = 0; i < 10; i++) {
      await sleep(20);
      for (let k = 0; k < BURST / 8; k++) trim.closed();
    }
    equal(trims(), 0, "no trim while closes go on");
    await waitUntil(() => trims() === 1, "the trim once closes stop", 5000);
  } finally {
    trim.close();
  }
});

Deno.test("BurstTrim is not put off by a trickle of short connections", async () => {
  const { trim, trims } = counter();
  try {
    for (let i = 0; i < BURST * 4; i++) trim.opened();
    for (let i = 0; i < BURST * 3; i++) trim.closed();
    // A poller: one connection opened and closed every few ms, for good.
    await waitUntil(
      async () => {
        trim.opened();
        await sleep(2);
        trim.closed();
        return trims() === 1;
      },
      "the trim while a poller keeps connecting",
      5000,
    );
  } finally {
    trim.close();
  }
});

Deno.test("trimHeap returns the pages of a collected heap to the OS", async () => {
  await loadCollector();
  let garbage: unknown[] = [];
  for (let i = 0; i < 1_000_000; i++) garbage.push({ i, a: [i] });
  const grown = Deno.memoryUsage().heapTotal;
  garbage = [];
  ok(garbage.length === 0);
  ok(trimHeap(), "a collector is available");
  const after = Deno.memoryUsage().heapTotal;
  ok(after < grown / 2, `heap ${grown} -> ${after} bytes`);
});

Deno.test("WriterPool lends small writers and keeps a bounded number of bytes", () => {
  const pool = new WriterPool(1024, 65536, 4096);
  const lent = Array.from({ length: 100 }, () => pool.take());
  ok(lent.every((w) => w.buf.length === 1024), "small first buffers");
  lent[0].bytes(new Uint8Array(100_000));
  for (const w of lent) pool.give(w);
  equal(pool.idle, 4, "idle writers up to `keptBytes`");
  equal(pool.idleBytes, 4096);
  const again = Array.from({ length: 4 }, () => pool.take());
  ok(again.every((w) => w.length === 0 && w.buf.length <= 65536), "emptied, none grown past keep");
});

Deno.test("WriterPool's default keeps a writer for every connection of a busy turn", () => {
  // Each connection holds its writer until its write resolves: with 64 in flight, 64 come back
  // and are lent again, none made anew (a count of 16 made 48 writers per turn).
  const pool = new WriterPool();
  const first = Array.from({ length: 64 }, () => pool.take());
  for (const w of first) pool.give(w);
  equal(pool.idle, 64);
  const again = new Set(Array.from({ length: 64 }, () => pool.take()));
  ok(first.every((w) => again.has(w)), "the same writers are lent again");
});
