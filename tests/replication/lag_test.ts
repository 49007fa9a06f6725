/**
 * Replication lag figures: the writer's (change → the peer's
 * acknowledgement, `repl_lag_p50_ms`/`_p99_ms`), the receiver's (the
 * change's version clock → its apply, `repl_apply_lag_*`), and the time a
 * worker thread's change spends in the ring before the main thread drains
 * it, which the writer's figure must include. A stall (SIGSTOP of the
 * peer) must show in both figures: a lower bound, never a timed ceiling.
 */

import { equal, ok, waitUntil } from "../helpers/assert.ts";
import { Engine } from "../../lib/server/mod.ts";
import { createReplicationShare, WorkerReplication } from "../../lib/replication/mod.ts";
import { LagSamples, LagWindow } from "../../lib/replication/lag.ts";
import { MainReplicationShare } from "../../lib/replication/threads.ts";
import { FrameParser } from "../../lib/replication/stream.ts";
import { client, type Node, replStats, startPair } from "./pair.ts";
import { startGroup } from "./group.ts";

const enc = new TextEncoder();

Deno.test("lag window: nearest-rank percentiles of the latest 4096, 0 before any", () => {
  const w = new LagWindow();
  equal(w.percentileMs(0.99), 0);
  for (let i = 1; i <= 100; i++) w.add(i);
  equal(w.percentileMs(0.5), 50);
  equal(w.percentileMs(0.99), 99);
  equal(w.percentileMs(1), 100);
  // 4096 more of 1 ms push the old ones out.
  for (let i = 0; i < 4096; i++) w.add(1);
  equal(w.percentileMs(0.99), 1);
});

Deno.test("lag samples: a change timed earlier than its sample makes the sample older; acks feed the window", () => {
  const s = new LagSamples();
  const now = performance.now();
  s.appended(100, now);
  // A worker's change drained later but made 30 ms earlier shares the sample and times it.
  s.appended(200, now - 30);
  s.acked(200);
  ok(s.ackedLags.percentileMs(1) >= 30, `lag ${s.ackedLags.percentileMs(1)} ms`);
  ok(s.lastMs >= 30);
  equal(s.ageMs(200), 0);
});

Deno.test("change ring: the main thread times a worker's changes from when the worker made them", async () => {
  const share = createReplicationShare(1 << 20, false);
  const engine = new Engine({ memoryLimit: 64 << 20, maxItemSize: 1 << 20, evict: true });
  const worker = new WorkerReplication({ engine, barrier: undefined }, share, 50);
  const parser = new FrameParser();
  const ats: number[] = [];
  const main = new MainReplicationShare(share, {
    frame: (_buf, _start, _end, at) => ats.push(at),
    overflowed: () => {},
    drained: () => {},
  }, (buf, start, end) => parser.parse(buf, start, end));
  const del = (k: string) => {
    const b = enc.encode(k);
    worker.deleted(b, 0, b.length);
  };
  const t0 = performance.now();
  del("a");
  const t1 = performance.now();
  await new Promise((r) => setTimeout(r, 40));
  del("b"); // made later: the oldest one's time stands for both
  await new Promise((r) => setTimeout(r, 40));
  main.drain();
  equal(ats.length, 2);
  for (const at of ats) ok(at >= t0 - 0.01 && at <= t1 + 0.01, `${at} not in [${t0}, ${t1}]`);
  // The next change starts a new stamp.
  await new Promise((r) => setTimeout(r, 20));
  const t2 = performance.now();
  del("c");
  const t3 = performance.now();
  main.drain();
  equal(ats.length, 3);
  ok(ats[2] >= t2 - 0.01 && ats[2] <= t3 + 0.01, `${ats[2]} not in [${t2}, ${t3}]`);
  // Nothing to drain: no frame, no stamp taken.
  main.drain();
  equal(ats.length, 3);
});

/** Set `n` keys on `node` through `conns` connections in turn (both serve threads of -t 2). */
async function writeKeys(node: Node, prefix: string, n: number, conns = 4): Promise<void> {
  const cs = await Promise.all(Array.from({ length: conns }, () => client(node)));
  try {
    for (let i = 0; i < n; i++) {
      equal(await cs[i % conns].set(`${prefix}${i}`, enc.encode("v")), true);
    }
  } finally {
    for (const c of cs) c.close();
  }
}

/** Wait until `node` holds key. */
async function holds(node: Node, key: string): Promise<void> {
  const c = await client(node);
  try {
    await waitUntil(async () => (await c.get(key)).has(key), `${key} on ${node.port}`, 15_000);
  } finally {
    c.close();
  }
}

Deno.test("pair: lag percentiles in stats; a stopped peer's stall shows on both sides", async () => {
  const { a, b } = await startPair(["-t", "2"]);
  try {
    await writeKeys(a, "warm:", 20);
    await holds(b, "warm:19");
    await waitUntil(
      async () => Number((await replStats(a)).get("repl_lag_bytes")) === 0,
      "A's stream acknowledged",
      15_000,
    );
    let sa = await replStats(a), sb = await replStats(b);
    for (const [s, name] of [[sa, "repl_lag"], [sb, "repl_apply_lag"]] as const) {
      const p50 = Number(s.get(`${name}_p50_ms`)), p99 = Number(s.get(`${name}_p99_ms`));
      ok(Number.isFinite(p50) && p50 >= 0 && p50 <= p99, `${name}: p50 ${p50}, p99 ${p99}`);
    }
    // Changes made while the peer cannot run wait at least that long for it.
    b.proc.kill("SIGSTOP");
    try {
      await writeKeys(a, "stalled:", 4);
      await new Promise((r) => setTimeout(r, 400));
    } finally {
      b.proc.kill("SIGCONT");
    }
    await holds(b, "stalled:3");
    await waitUntil(
      async () => Number((await replStats(a)).get("repl_lag_bytes")) === 0,
      "A's stream acknowledged",
      15_000,
    );
    sa = await replStats(a);
    sb = await replStats(b);
    // Few samples: their p99 is their largest.
    ok(Number(sa.get("repl_lag_p99_ms")) >= 390, `writer: ${sa.get("repl_lag_p99_ms")} ms`);
    ok(Number(sb.get("repl_apply_lag_p99_ms")) >= 390, `peer: ${sb.get("repl_apply_lag_p99_ms")}`);
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("group of 3: per-peer lag lines; a stopped member's stall shows on its line only", async () => {
  const g = await startGroup(3, ["-t", "2"]);
  const [m0, m1, m2] = g.nodes;
  try {
    await writeKeys(m0, "warm:", 20);
    await Promise.all([holds(m1, "warm:19"), holds(m2, "warm:19")]);
    m2.proc.kill("SIGSTOP");
    try {
      await writeKeys(m0, "stalled:", 4);
      await holds(m1, "stalled:3");
      await new Promise((r) => setTimeout(r, 400));
    } finally {
      m2.proc.kill("SIGCONT");
    }
    await holds(m2, "stalled:3");
    await waitUntil(
      async () => {
        const s = await replStats(m0);
        return Number(s.get("repl_peer_1_lag_bytes")) === 0 &&
          Number(s.get("repl_peer_2_lag_bytes")) === 0;
      },
      "m0's stream acknowledged by both",
      15_000,
    );
    const s0 = await replStats(m0);
    ok(
      Number(s0.get("repl_peer_2_lag_p99_ms")) >= 390,
      `to m2: ${s0.get("repl_peer_2_lag_p99_ms")}`,
    );
    // m1 kept up: the stall is m2's alone.
    const to1 = Number(s0.get("repl_peer_1_lag_p99_ms")),
      to2 = Number(s0.get("repl_peer_2_lag_p99_ms"));
    ok(to1 < to2, `to m1 ${to1} ms, to m2 ${to2} ms`);
    equal(s0.get("repl_lag_p99_ms"), s0.get("repl_peer_2_lag_p99_ms"), "the slowest peer's");
    const s2 = await replStats(m2);
    ok(
      Number(s2.get("repl_peer_0_apply_lag_p99_ms")) >= 390 ||
        Number(s2.get("repl_peer_1_apply_lag_p99_ms")) >= 390,
      `m2 applied the stalled changes late (from m0 or relayed by m1)`,
    );
  } finally {
    await g.close();
  }
});
