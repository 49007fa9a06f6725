/**
 * Replication with several serve threads (-t 2): writes arriving on every
 * thread (many connections, spread by SO_REUSEPORT) reach the peer, deletes
 * racing the peer's sets converge, --repl-sync holds for every thread, and
 * `stats replication` answers on every thread.
 */

import { equal, ok } from "../helpers/assert.ts";
import type { Client } from "../../lib/client/mod.ts";
import { CLOCK_STATE_BYTES, HybridClock } from "../../lib/replication/versions.ts";
import {
  client,
  missingKeys,
  type Node,
  replStat,
  sameContents,
  settled,
  startPair,
  startWriters,
} from "./pair.ts";

const enc = new TextEncoder();
const THREADS = ["-t", "2"];
const CONNS = 12;

async function clients(node: Node, n: number): Promise<Client[]> {
  return await Promise.all(Array.from({ length: n }, () => client(node)));
}

function closeAll(cs: Client[]): void {
  for (const c of cs) c.close();
}

/** Every connection of `cs` answers `stats replication` with the link up. */
async function linkUpEverywhere(cs: Client[]): Promise<void> {
  for (const c of cs) {
    const s = await c.stats("replication");
    equal(s.get("repl_link"), "up");
  }
}

/** Mixed writes on a shared key space through one connection. */
async function hammer(c: Client, side: string, seed: number, bursts: number): Promise<void> {
  let s = seed;
  const rnd = (n: number) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % n;
  for (let burst = 0; burst < bursts; burst++) {
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      const key = `k${rnd(300)}`;
      switch (rnd(6)) {
        case 0:
          ops.push(c.delete(key));
          break;
        case 1:
          ops.push(c.incr(`n${rnd(5)}`, 1));
          break;
        case 2:
          ops.push(c.touch(key, 1000 + rnd(100)));
          break;
        default:
          ops.push(c.set(key, enc.encode(`${side}-${seed}-${burst}-${i}`), rnd(4)));
      }
    }
    await Promise.all(ops);
  }
}

Deno.test("serve threads: writes through many connections on both nodes converge key by key", async () => {
  const { a, b } = await startPair(THREADS);
  try {
    const ca = await clients(a, CONNS), cb = await clients(b, CONNS);
    const general = await ca[0].stats();
    equal(general.get("threads"), "2");
    await linkUpEverywhere([...ca, ...cb]);
    await Promise.all(ca.map((c) => c.set(`n${ca.indexOf(c) % 5}`, enc.encode("100"))));
    await settled(a, b);
    await Promise.all([
      ...ca.map((c, i) => hammer(c, "A", 1 + i, 15)),
      ...cb.map((c, i) => hammer(c, "B", 101 + i, 15)),
    ]);
    await settled(a, b);
    const all = await sameContents(a, b);
    ok(all.size > 100, `keys survive (${all.size})`);
    // Every counter saw increments from both nodes and agrees.
    for (let i = 0; i < 5; i++) ok(Number(all.get(`n${i}`)?.split(":")[3]) >= 100);
    ok(await replStat(a, "repl_changes_sent") > 1000);
    closeAll(ca);
    closeAll(cb);
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("serve threads: deletes on every thread racing the peer's sets converge; later deletes win", async () => {
  const { a, b } = await startPair(THREADS);
  try {
    const ca = await clients(a, CONNS), cb = await clients(b, CONNS);
    const keys = Array.from({ length: 400 }, (_, i) => `r${i}`);
    const race = async (c: Client, mine: boolean, round: number) => {
      const ops: Promise<unknown>[] = [];
      for (const k of keys) {
        ops.push(mine ? c.delete(k) : c.set(k, enc.encode(`b-${round}`)));
      }
      await Promise.all(ops);
    };
    for (let round = 0; round < 5; round++) {
      await Promise.all([
        ...ca.map((c) => race(c, true, round)),
        ...cb.map((c) => race(c, false, round)),
      ]);
    }
    await settled(a, b);
    await sameContents(a, b);
    // Deletes made after the sets (through every connection of A) remove the keys on both.
    await Promise.all(cb.map((c) => race(c, false, 9)));
    await settled(a, b);
    await Promise.all(
      ca.map((c, i) => Promise.all(keys.filter((_, j) => j % CONNS === i).map((k) => c.delete(k)))),
    );
    await settled(a, b);
    const left = await sameContents(a, b);
    const survivors = keys.filter((k) => left.has(k));
    equal(survivors.length, 0, `deleted keys still present: ${survivors.slice(0, 5).join(", ")}`);
    closeAll(ca);
    closeAll(cb);
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("serve threads: --repl-sync kill -9 with many connections loses no acknowledged write", async () => {
  const { a, b } = await startPair([...THREADS, "--repl-sync", "--repl-timeout", "3000"]);
  try {
    equal(await replStat(a, "repl_sync"), 1);
    const writers = startWriters(a, 16, "s");
    const acked = writers.acked;
    while (acked.length < 1000) await new Promise((r) => setTimeout(r, 10));
    // While the peer cannot apply (stopped, within the timeout), no thread acknowledges a write.
    b.proc.kill("SIGSTOP");
    await new Promise((r) => setTimeout(r, 100));
    const before = acked.length;
    await new Promise((r) => setTimeout(r, 400));
    const during = acked.length - before;
    b.proc.kill("SIGCONT");
    equal(during, 0, "writes acknowledged while the peer was stopped");
    while (acked.length < 3000) await new Promise((r) => setTimeout(r, 10));
    a.proc.kill("SIGKILL");
    await writers.stop();
    const missing = await missingKeys(b, acked);
    equal(missing.length, 0, `acknowledged writes missing on B: ${missing.slice(0, 5).join(", ")}`);
    // Alone, B confirms no sync write on any thread: SERVER_ERROR after the timeout, counted.
    await b.proc.waitForLog(/^replication: listen$/, 5000, 0);
    const cs = await clients(b, 8);
    const replies = await Promise.all(
      cs.map((c) => c.set("alone", enc.encode("x")).then(String, (e: Error) => e.message)),
    );
    for (const r of replies) ok(r.endsWith("SERVER_ERROR replication peer unavailable"), r);
    equal(await replStat(b, "repl_sync_failed"), 8);
    closeAll(cs);
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("versions: clocks attached to one shared state issue unique, growing versions", () => {
  let wall = 1_700_000_000_000;
  const first = new HybridClock(5, () => wall, new SharedArrayBuffer(CLOCK_STATE_BYTES));
  const state = new SharedArrayBuffer(CLOCK_STATE_BYTES);
  const a = new HybridClock(7, () => wall, state);
  const b = HybridClock.attach(state, () => wall);
  equal(b.node, 7);
  let last = 0;
  for (let i = 0; i < 1000; i++) {
    const v = (i % 3 === 0 ? a : b).tick();
    ok(v > last, "strictly growing across clocks");
    equal(v % 16, 7);
    last = v;
    if (i % 100 === 0) wall++;
  }
  b.observe(last + 4096 * 10);
  ok(a.tick() > last + 4096 * 10, "an observed version is seen by every attached clock");
  ok(first.tick() < last, "a separate state is independent");
});
