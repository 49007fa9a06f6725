/**
 * Joining a replica group of 3+ (issue 11, point 3): a new or restarted
 * member takes one full copy from one live member and resumes every other
 * member's stream from the position the copy's sender had of it (that
 * member's backlog tail), instead of one full copy per peer; writes on
 * every member during the join end everywhere. The copy's sender killed
 * with -9 in the middle: the joiner takes its copy from another member.
 */

import { equal, ok } from "../helpers/assert.ts";
import { waitUntil } from "../helpers/mod.ts";
import { dump, fill, missingKeys, replStats, startWriters } from "./pair.ts";
import { type Group, sameEverywhere, settledGroup, startGroup } from "./group.ts";

/** Per other member: the partial resyncs it counted towards member `self` so far (all its lives). */
async function resumesOf(g: Group, self: number): Promise<number[]> {
  const resumed: number[] = [];
  for (let i = 0; i < g.nodes.length; i++) {
    const s = i === self ? null : await replStats(g.nodes[i]);
    resumed.push(s === null ? 0 : Number(s.get(`repl_peer_${self}_partial_resyncs`)));
  }
  return resumed;
}

/** Full copies member `self` received, per member (0 for itself). */
async function copiesOf(g: Group, self: number): Promise<number[]> {
  const s = await replStats(g.nodes[self]);
  return g.nodes.map((_, i) =>
    i === self ? 0 : Number(s.get(`repl_peer_${i}_full_copies_received`))
  );
}

/** Kill member `i` with -9 and wait until every other member saw its link go. */
async function killMember(g: Group, i: number): Promise<void> {
  g.nodes[i].proc.kill("SIGKILL");
  await g.nodes[i].proc.stop();
  for (const [k, node] of g.nodes.entries()) {
    if (k === i) continue;
    await waitUntil(
      async () => (await replStats(node)).get(`repl_peer_${i}_link`) !== "up",
      `member ${k} to notice member ${i} gone`,
      10_000,
    );
  }
}

for (const n of [3, 5]) {
  Deno.test(`${n} members: a restarted member takes one full copy and the others' backlog tails, while all write`, async () => {
    const g = await startGroup(n, ["--repl-timeout", "3000"]);
    const last = n - 1;
    try {
      await killMember(g, last);
      // Data on every live member, then writers on all of them through the join.
      for (let i = 0; i < last; i++) await fill(g.nodes[i], `pre${i}:`, 2000);
      const writers = g.nodes.slice(0, last).map((node, i) => startWriters(node, 2, `w${i}:`));
      await new Promise((r) => setTimeout(r, 300));
      const before = await resumesOf(g, last);
      await g.restart(last);
      await new Promise((r) => setTimeout(r, 800));
      writers.push(startWriters(g.nodes[last], 2, `j:`));
      await new Promise((r) => setTimeout(r, 500));
      await Promise.all(writers.map((w) => w.stop()));
      const members = Array.from({ length: n }, (_, i) => i);
      await settledGroup(g.nodes, members, 30_000);
      const size = (await sameEverywhere(g.nodes)).size;
      const acked = writers.flatMap((w) => w.acked);
      ok(acked.length > 100, `writes went on (${acked.length})`);
      for (const node of g.nodes) {
        equal((await missingKeys(node, acked)).length, 0, "acknowledged writes missing");
      }
      ok(size >= 2000 * last + acked.length, `every item everywhere (${size})`);
      // One full copy in all; every other member resumed its stream to the joiner (a link that
      // dropped on the loaded machine and resumed again counts twice).
      const copies = await copiesOf(g, last), after = await resumesOf(g, last);
      equal(copies.reduce((a, b) => a + b, 0), 1, `one full copy in all (${copies.join(", ")})`);
      const source = copies.indexOf(1);
      for (let i = 0; i < last; i++) {
        if (i === source) continue;
        ok(
          after[i] > before[i],
          `member ${i} resumed its stream to the joiner (${after}, ${before})`,
        );
      }
    } finally {
      await g.close();
    }
  });
}

Deno.test("3 members: the copy's sender killed with -9 mid-copy; the joiner completes from the other", async () => {
  const g = await startGroup(3, ["--repl-timeout", "1500", "-m", "256"], { relays: true });
  try {
    await killMember(g, 2);
    await fill(g.nodes[0], "a:", 60_000);
    await fill(g.nodes[1], "b:", 2_000);
    await settledGroup(g.nodes.slice(0, 2), [0, 1], 30_000);
    // Slow links to the joiner, so that its copy is still going when the sender dies.
    for (const i of [0, 1]) g.relays[i][2].setLatency(20);
    const writers = [0, 1].map((i) => startWriters(g.nodes[i], 2, `w${i}:`));
    await g.restart(2);
    let source = -1;
    await waitUntil(
      async () => {
        const s = await replStats(g.nodes[2]);
        for (const i of [0, 1]) if (s.get(`repl_peer_${i}_copy_receiving`) === "1") source = i;
        return source >= 0;
      },
      "a full copy to the joiner",
      20_000,
    );
    const other = 1 - source;
    await killMember(g, source);
    g.relays[other][2].setLatency(0);
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(writers.map((w) => w.stop()));
    await settledGroup([g.nodes[other], g.nodes[2]], [other, 2], 30_000);
    const [want, got] = await Promise.all([dump(g.nodes[other]), dump(g.nodes[2])]);
    const diff = [...want].filter(([k, v]) => got.get(k) !== v).length +
      [...got.keys()].filter((k) => !want.has(k)).length;
    equal(diff, 0, "the joiner holds exactly what the surviving member holds");
    const acked = writers[other].acked;
    ok(acked.length > 50, `writes went on (${acked.length})`);
    equal((await missingKeys(g.nodes[2], acked)).length, 0, "acknowledged writes missing");
    ok(want.size >= 62_000, `items (${want.size})`);
  } finally {
    await g.close();
  }
});
