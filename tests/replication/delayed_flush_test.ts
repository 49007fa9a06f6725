/**
 * flush_all with a delay, or under -C, leaves every node with the same
 * items however late the writes around its time reach the peer: it drops
 * by version (a delayed one: what was written up to the end of its
 * second), not by when each node happened to store an item. By store time,
 * a write its writer dropped came alive on a peer that got it after its
 * own flush second, and a peer's write dropped there lived on here (the
 * nodes' clock seconds do not even start at the same instant); an
 * immediate flush_all cancelled a pending delayed one on its node only;
 * under -C the writer alone dropped what it stored in the flush's second;
 * a full copy did not carry a pending delayed flush.
 */

import { equal, ok } from "../helpers/assert.ts";
import { freePort, mulberry32, waitUntil } from "../helpers/mod.ts";
import { client, contents, type Node, settled, startNode, withRelayedPair } from "./pair.ts";

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

for (const extra of [[], ["-C"]]) {
  Deno.test(`${extra.map((f) => `${f}: `).join("")}a delayed flush_all, then an immediate one on the same node: the delayed one still runs on both nodes alike`, async () => {
    await withRelayedPair(["--repl-timeout", "8000", ...extra], async (a, b) => {
      const ca = await client(a), cb = await client(b);
      try {
        await ca.flushAll(3);
        await settled(a, b);
        // memcached's immediate flush cancels a pending delayed one; the peer applies the
        // immediate flush as a version, so both must go on to run the delayed one.
        await ca.flushAll();
        for (let i = 0; i < 20; i++) {
          await Promise.all([ca.set(`a${i}`, enc.encode("x")), cb.set(`b${i}`, enc.encode("x"))]);
          await sleep(20);
        }
        await settled(a, b);
        await sleep(4000); // past the delayed flush's second
        await Promise.all([ca.set("after", enc.encode("x")), cb.set("after-b", enc.encode("x"))]);
        await settled(a, b);
        const [ha, hb] = await Promise.all([contents(a), contents(b)]);
        equal([...ha.keys()].sort().join(" "), "after after-b", "A");
        equal([...hb.keys()].sort().join(" "), "after after-b", "B");
      } finally {
        ca.close();
        cb.close();
      }
    });
  });
}

Deno.test("-C: writes right after an immediate flush_all (its second) are on both nodes, not on the peer only", async () => {
  await withRelayedPair(["-C"], async (a, b) => {
    const ca = await client(a);
    try {
      await ca.flushAll();
      for (let i = 0; i < 10; i++) await ca.set(`a${i}`, enc.encode("x"));
      await settled(a, b);
      const [ha, hb] = await Promise.all([contents(a), contents(b)]);
      // Under -C memcached's single node also drops what is stored in the flush's second (no
      // CAS to order it by); replicated, versions order it, and the peer keeps it.
      equal([...ha.keys()].sort().join(" "), "a0 a1 a2 a3 a4 a5 a6 a7 a8 a9", "A");
      equal([...hb.keys()].sort().join(" "), "a0 a1 a2 a3 a4 a5 a6 a7 a8 a9", "B");
    } finally {
      ca.close();
    }
  });
});

Deno.test("a delayed flush_all still pending when a full copy begins (the peer restarted empty) runs on the receiver too", async () => {
  const replPort = freePort();
  const a = await startNode(replPort);
  let b: Node | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    b = await startNode(replPort);
    await b.proc.waitForLog(/^replication: start/, 10_000);
    const ca = await client(a);
    try {
      for (let i = 0; i < 20; i++) await ca.set(`k${i}`, enc.encode("x"));
      await ca.flushAll(4);
      await settled(a, b);
      b.proc.kill("SIGKILL");
      await b.proc.status;
      const b2 = b = await startNode(replPort, [], b.port);
      await settled(a, b2);
      equal((await contents(b2)).size, 20, "the copy holds every item (the flush is not due)");
      await waitUntil(async () => (await contents(a)).size === 0, "the flush on A", 10_000);
      // B's clock second may begin up to a second after A's.
      await waitUntil(async () => (await contents(b2)).size === 0, "the flush on B", 5000);
    } finally {
      ca.close();
    }
  } finally {
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});

/** Sets, deletes and (until `flushEnd`) flush_all now and delayed on keys `k0..k49`. */
async function flushWriter(
  node: Node,
  tag: string,
  rnd: () => number,
  flushEnd: number,
  stop: () => boolean,
) {
  const c = await client(node);
  try {
    for (let i = 0; !stop(); i++) {
      const k = `k${Math.floor(rnd() * 50)}`;
      const x = rnd();
      const flushing = Date.now() < flushEnd;
      if (x < 0.01 && flushing) await c.flushAll(2 + Math.floor(rnd() * 2));
      else if (x < 0.015 && flushing) await c.flushAll();
      else if (x < 0.2) await c.delete(k);
      else await c.set(k, enc.encode(`${tag}${i}`));
      if (i % 20 === 0) await sleep(5);
    }
  } finally {
    c.close();
  }
}

const envSeed = Number(Deno.env.get("MEMREP_CHAOS_SEED"));
for (const threads of ["1", "2"]) {
  const seed = Number.isInteger(envSeed) && envSeed > 0
    ? envSeed
    : 1 + Math.floor(Math.random() * 1e9);
  Deno.test(`-t ${threads}: flush_all now and delayed on both nodes under a flapping link: both end identical (seed ${seed})`, async () => {
    await withRelayedPair(["--repl-timeout", "400", "-t", threads], async (a, b, relay) => {
      const rnd = mulberry32(seed);
      let stopped = false;
      const stop = () => stopped;
      // Random flushes for 5 s only, so that something is left to compare.
      const flushEnd = Date.now() + 5000;
      const work = [
        flushWriter(a, "A", mulberry32(seed + 1), flushEnd, stop),
        flushWriter(b, "B", mulberry32(seed + 2), flushEnd, stop),
        flushWriter(a, "a", mulberry32(seed + 3), flushEnd, stop),
        flushWriter(b, "b", mulberry32(seed + 4), flushEnd, stop),
      ];
      for (const end = Date.now() + 6000; Date.now() < end;) {
        await sleep(100 + rnd() * 600);
        const kind = Math.floor(rnd() * 3);
        if (kind === 0) relay.drop();
        else if (kind === 1) {
          relay.pause();
          await sleep(rnd() * 1500);
          relay.resume();
        } else {
          relay.refuse(true);
          relay.drop();
          await sleep(rnd() * 1500);
          relay.refuse(false);
        }
      }
      stopped = true;
      await Promise.all(work);
      // Last, a delayed flush whose second passes while the link hangs and both sides write
      // keys of their own (a key written again later would hide what the flush left).
      relay.pause();
      const [ca, cb] = [await client(a), await client(b)];
      await (rnd() < 0.5 ? ca : cb).flushAll(2);
      for (let i = 0; i < 60; i++) {
        await Promise.all([ca.set(`fa${i}`, enc.encode("x")), cb.set(`fb${i}`, enc.encode("x"))]);
        await sleep(50);
      }
      ca.close();
      cb.close();
      relay.resume();
      await sleep(2500); // past every delayed flush, on both clocks
      await settled(a, b, 30_000);
      const [ha, hb] = await Promise.all([contents(a), contents(b)]);
      const keys = [...new Set([...ha.keys(), ...hb.keys()])];
      const diff = keys.filter((k) => ha.get(k) !== hb.get(k));
      ok(ha.size > 0, `seed ${seed}: writes after the last flush are kept`);
      equal(
        diff.slice(0, 5).map((k) => `${k} A=${ha.get(k)} B=${hb.get(k)}`).join("; "),
        "",
        `seed ${seed}: ${diff.length} keys differ`,
      );
    });
  });
}

for (const second of ["A", "B"]) {
  Deno.test(`a delayed flush_all that ran, then a later delayed one on ${second}: what the first dropped stays dropped, on both nodes alike`, async () => {
    await withRelayedPair([], async (a, b) => {
      const ca = await client(a), cb = await client(b);
      try {
        for (let i = 0; i < 20; i++) await ca.set(`k${i}`, enc.encode("x"));
        await settled(a, b);
        await ca.flushAll(2); // memcached: 1 is now, 2 is when the next second begins
        await settled(a, b);
        // contents() lists live items only and reads nothing the flush killed.
        await waitUntil(async () => (await contents(a)).size === 0, "the flush on A", 10_000);
        await waitUntil(async () => (await contents(b)).size === 0, "the flush on B", 10_000);
        // Reads on B alone reap half of the flushed items there (memcached drops them lazily).
        for (let i = 0; i < 10; i++) equal(await cb.getOne(`k${i}`), undefined, `k${i} on B`);
        // Its pending flush replaced the one that ran: the rest came back, on A all of them.
        await (second === "A" ? ca : cb).flushAll(60);
        await settled(a, b);
        const [ha, hb] = await Promise.all([contents(a), contents(b)]);
        equal([...ha.keys()].sort().join(" "), "", "A");
        equal([...hb.keys()].sort().join(" "), "", "B");
      } finally {
        ca.close();
        cb.close();
      }
    });
  });
}

Deno.test("delayed flush_alls made on both nodes while the link hangs, one due before they meet: both run, on both nodes alike", async () => {
  await withRelayedPair(["--repl-timeout", "8000"], async (a, b, relay) => {
    const ca = await client(a), cb = await client(b);
    try {
      for (let i = 0; i < 20; i++) await ca.set(`k${i}`, enc.encode("x"));
      await settled(a, b);
      relay.pause();
      await ca.flushAll(2);
      await cb.flushAll(60);
      await waitUntil(async () => (await contents(a)).size === 0, "A's flush on A", 10_000);
      relay.resume();
      await settled(a, b);
      // B's later flush used to replace A's, which had run on A: there everything came back
      // (for B's 60 s). B runs A's at its own clock's second, which may begin up to a second
      // after A's: wait for that, far less than B's flush.
      let ha = new Map<string, string>(), hb = ha;
      await waitUntil(
        async () => {
          [ha, hb] = await Promise.all([contents(a), contents(b)]);
          return ha.size === 0 && hb.size === 0;
        },
        "both nodes flushed",
        10_000,
      ).catch(() => {});
      equal([...ha.keys()].sort().join(" "), "", "A");
      equal([...hb.keys()].sort().join(" "), "", "B");
    } finally {
      ca.close();
      cb.close();
    }
  });
});
