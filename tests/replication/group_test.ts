/**
 * Replica groups of 3 and 5 read-write members (`--replicate a,b,c`):
 * concurrent conflicting writes of every kind on every member end with the
 * same items (value, flags, version, expiry) everywhere; a member killed
 * with -9 while writes go on rejoins by itself and catches up; a stopping
 * member drains to every live peer; stats list every peer.
 */

import { equal, ok } from "../helpers/assert.ts";
import { waitUntil } from "../helpers/mod.ts";
import { client, conflictingWrites, missingKeys, replStats, startWriters } from "./pair.ts";
import { sameEverywhere, settledGroup, startGroup } from "./group.ts";

const enc = new TextEncoder();

const MIX = { bursts: 30, keySpace: 60, counterSets: true };

async function converge(n: number): Promise<void> {
  const seed = Number(Deno.env.get("SEED") ?? Math.floor(Math.random() * 1e9));
  console.log(`seed ${seed}`);
  const g = await startGroup(n);
  try {
    const members = Array.from({ length: n }, (_, i) => i);
    const clients = await Promise.all(g.nodes.map((node) => client(node)));
    await Promise.all(
      Array.from({ length: 5 }, (_, i) => clients[0].set(`n${i}`, enc.encode("100"))),
    );
    await settledGroup(g.nodes, members);
    await Promise.all(
      clients.map((c, i) => conflictingWrites(c, `N${i}`, seed + i, { ...MIX, flushes: true })),
    );
    // Then without flush_all, so something is left to compare.
    await Promise.all(clients.map((c, i) => conflictingWrites(c, `M${i}`, seed + 100 + i, MIX)));
    await settledGroup(g.nodes, members);
    const all = await sameEverywhere(g.nodes);
    ok(all.size > 10, `keys survive (${all.size})`);
    const s = await replStats(g.nodes[0]);
    equal(s.get("repl_group_size"), String(n));
    equal(s.get("repl_group_up"), String(n));
    equal(s.get("repl_role"), "group");
    for (let i = 1; i < n; i++) {
      equal(s.get(`repl_peer_${i}_link`), "up");
      equal(s.get(`repl_peer_${i}_addr`), `127.0.0.1:${g.replPorts[i]}`);
      equal(s.get(`repl_peer_${i}_lag_bytes`), "0");
      ok(s.has(`repl_peer_${i}_lag_ms`) && s.has(`repl_peer_${i}_full_copies_sent`));
    }
    for (const c of clients) c.close();
  } finally {
    await g.close();
  }
}

Deno.test("3 members: concurrent conflicting writes of every kind on every member converge", async () => {
  await converge(3);
});

Deno.test("5 members: concurrent conflicting writes of every kind on every member converge", async () => {
  await converge(5);
});

Deno.test("3 members: kill -9 of one while every member writes; it rejoins by itself and catches up", async () => {
  const g = await startGroup(3, ["--repl-timeout", "1000"]);
  try {
    const writers = g.nodes.map((node, i) => startWriters(node, 2, `w${i}:`));
    await new Promise((r) => setTimeout(r, 700));
    g.nodes[2].proc.kill("SIGKILL");
    await g.nodes[2].proc.stop();
    await new Promise((r) => setTimeout(r, 500));
    // The survivors notice and keep serving and replicating to each other.
    await waitUntil(
      async () =>
        ["down", "connecting"].includes((await replStats(g.nodes[0])).get("repl_peer_2_link")!),
      "member 0 to notice",
      10_000,
    );
    const before = await replStats(g.nodes[1]);
    equal(before.get("repl_peer_0_link"), "up");
    await g.restart(2);
    await new Promise((r) => setTimeout(r, 700));
    await Promise.all(writers.map((w) => w.stop()));
    await settledGroup(g.nodes, [0, 1, 2], 30_000);
    const all = await sameEverywhere(g.nodes);
    // Every write the survivors acknowledged is everywhere, the restarted member included.
    const acked = [...writers[0].acked, ...writers[1].acked];
    ok(acked.length > 100, `writes went on (${acked.length})`);
    equal((await missingKeys(g.nodes[2], acked)).length, 0, "acknowledged writes missing");
    ok(all.size >= acked.length);
    const s = await replStats(g.nodes[2]);
    ok(Number(s.get("repl_full_copies_received")) >= 1, "the restarted member took a full copy");
  } finally {
    await g.close();
  }
});

Deno.test("3 members: a stopping member drains to both others (both SIGSTOPped, then resumed)", async () => {
  const g = await startGroup(3, ["--repl-timeout", "8000"]);
  try {
    const [a, b, c] = g.nodes;
    b.proc.kill("SIGSTOP");
    c.proc.kill("SIGSTOP");
    const ca = await client(a);
    const keys = Array.from({ length: 200 }, (_, i) => `d${i}`);
    for (const k of keys) ok(await ca.set(k, enc.encode(`v-${k}`)), `${k} STORED`);
    ca.close();
    const from = a.proc.outputLines().length;
    a.proc.kill("SIGTERM");
    await a.proc.waitForLog(/^replication: cleanup \(\d+ bytes to 2 of 2 peers\)/, 10_000, from);
    b.proc.kill("SIGCONT");
    await new Promise((r) => setTimeout(r, 300));
    c.proc.kill("SIGCONT");
    await a.proc.waitForLog(/^replication: cleanup complete/, 15_000, from);
    equal((await a.proc.stop()).code, 0);
    equal((await missingKeys(b, keys)).length, 0, "B got every write");
    equal((await missingKeys(c, keys)).length, 0, "C got every write");
  } finally {
    for (const n of g.nodes) {
      try {
        n.proc.kill("SIGCONT");
      } catch { /* gone */ }
    }
    await g.close();
  }
});
