/**
 * Warm restart of a group member (`serve -e` with `--replicate a,b,c`):
 * the restarted member resumes from each peer's backlog (per-peer
 * positions saved with its cache), no full copy either way, answers only
 * once caught up with every linked peer, and every member ends with exactly
 * what the clients were told: writes, overwrites and deletes made on both
 * other members while it was down, and its own deletes from before.
 * @module
 */

import { equal, match, ok } from "../helpers/mod.ts";
import { contents, type Node, replStats } from "./pair.ts";
import { settledGroup, startGroup } from "./group.ts";
import {
  deleteKeys,
  exitCode,
  matchesModel,
  type Model,
  pick,
  prng,
  seedOf,
  setKeys,
} from "./warm.ts";

/** Every node holds exactly what the first holds (value, flags, version, expiry). */
async function sameEverywhere(nodes: Node[]): Promise<void> {
  const all = await Promise.all(nodes.map((n) => contents(n)));
  let diff = 0;
  for (let k = 1; k < all.length; k++) {
    for (const [key, v] of all[0]) if (all[k].get(key) !== v) diff++;
    for (const key of all[k].keys()) if (!all[0].has(key)) diff++;
  }
  equal(diff, 0, "members differ");
}

/** Full copies each member sent and received, per peer and in all. */
async function copies(nodes: Node[]): Promise<number[]> {
  const all = await Promise.all(nodes.map((n) => replStats(n)));
  return all.flatMap((s) => [
    Number(s.get("repl_full_copies_sent")),
    Number(s.get("repl_full_copies_received")),
  ]);
}

Deno.test("warm restart in a group of 3: the member resumes from each peer's backlog, no full copy, exact", async () => {
  const rnd = prng(seedOf());
  const dir = await Deno.makeTempDir({ prefix: "memrep_group_warm_" });
  const file = `${dir}/m1`;
  const model: Model = new Map();
  const g = await startGroup(3, [], { member: (i) => (i === 1 ? ["-e", file] : []) });
  try {
    const [a, , c] = g.nodes;
    const own = g.nodes.map((_, i) => Array.from({ length: 800 }, (_, k) => `m${i}:${k}`));
    await Promise.all(g.nodes.map((n, i) => setKeys(n, own[i], model)));
    // Member 1 holds the others' keys before it deletes some (else a delete finds nothing).
    await settledGroup(g.nodes, [0, 1, 2]);
    // Tombstones on member 1 for keys of the others.
    await deleteKeys(g.nodes[1], [...pick(own[0], 80, rnd), ...pick(own[2], 80, rnd)], model);
    await settledGroup(g.nodes, [0, 1, 2]);
    const before = await copies(g.nodes);

    g.nodes[1].proc.kill(rnd() < 0.5 ? "SIGUSR1" : "SIGTERM");
    equal(await exitCode(g.nodes[1]), 0);
    match(
      g.nodes[1].proc.stderrLines().join("\n"),
      /\[restart\] saved \d+ items .*replication state/,
    );
    // While member 1 is down: members 0 and 2 overwrite, delete and add (each key on one of them).
    const live = [...own.flat()].filter((k) => model.get(k) !== null);
    const touched = pick(live, 1200, rnd);
    await setKeys(a, touched.slice(0, 300), model);
    await setKeys(c, touched.slice(300, 600), model);
    await deleteKeys(a, touched.slice(600, 900), model);
    await deleteKeys(c, touched.slice(900), model);
    await setKeys(a, Array.from({ length: 300 }, (_, k) => `down0:${k}`), model);
    await setKeys(c, Array.from({ length: 300 }, (_, k) => `down2:${k}`), model);

    const b = await g.restart(1, ["-e", file]);
    match(b.proc.stderrLines().join("\n"), /\[restart\] loaded \d+ items/);
    // It answers only once caught up with both peers: exact at once.
    await matchesModel(b, model, "member 1 as soon as it answers");
    await settledGroup(g.nodes, [0, 1, 2]);
    for (const [i, n] of g.nodes.entries()) await matchesModel(n, model, `member ${i}`);
    await sameEverywhere(g.nodes);
    // Writes after the restart flow every way.
    const after = Array.from({ length: 150 }, (_, k) => `after:${k}`);
    await setKeys(b, after.slice(0, 50), model);
    await setKeys(a, after.slice(50, 100), model);
    await setKeys(c, after.slice(100), model);
    await setKeys(b, touched.slice(0, 50), model); // member 1 overwrites what 0 wrote meanwhile
    await settledGroup(g.nodes, [0, 1, 2]);
    for (const [i, n] of g.nodes.entries()) await matchesModel(n, model, `member ${i} after`);
    await sameEverywhere(g.nodes);

    const s = await replStats(b);
    equal(s.get("repl_warm_restored"), "1");
    equal(s.get("repl_warm_resumes"), "2", "both peers resumed member 1 from their backlogs");
    const now = await copies(g.nodes);
    equal(now[2] + now[3], 0, "member 1 sent and received no full copy");
    equal(now[0] - before[0], 0, "member 0 sent no full copy");
    equal(now[4] - before[4], 0, "member 2 sent no full copy");
    ok(Number(s.get("repl_peer_0_partial_resyncs")) >= 1, "resumed with member 0");
    ok(Number(s.get("repl_peer_2_partial_resyncs")) >= 1, "resumed with member 2");
  } finally {
    await g.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("warm restart in a group of 3 with another member down: it waits for that one at most --repl-timeout, serves caught up with the live one, exact", async () => {
  const rnd = prng(seedOf());
  const dir = await Deno.makeTempDir({ prefix: "memrep_group_warm_" });
  const file = `${dir}/m1`;
  const model: Model = new Map();
  const g = await startGroup(3, ["--repl-timeout", "1000"], {
    member: (i) => (i === 1 ? ["-e", file] : []),
  });
  try {
    const a = g.nodes[0];
    const own = g.nodes.map((_, i) => Array.from({ length: 600 }, (_, k) => `m${i}:${k}`));
    await Promise.all(g.nodes.map((n, i) => setKeys(n, own[i], model)));
    await settledGroup(g.nodes, [0, 1, 2]);
    await deleteKeys(g.nodes[1], pick(own[0], 60, rnd), model);
    await settledGroup(g.nodes, [0, 1, 2]);
    // Member 2 goes away for good (no -e), then member 1 stops warm.
    g.nodes[2].proc.kill("SIGTERM");
    equal(await exitCode(g.nodes[2]), 0);
    g.nodes[1].proc.kill("SIGUSR1");
    equal(await exitCode(g.nodes[1]), 0);
    const live = [...own.flat()].filter((k) => model.get(k) !== null);
    const touched = pick(live, 600, rnd);
    await setKeys(a, touched.slice(0, 300), model);
    await deleteKeys(a, touched.slice(300), model);
    await setKeys(a, Array.from({ length: 200 }, (_, k) => `down0:${k}`), model);

    const b = await g.restart(1, ["-e", file]);
    await matchesModel(b, model, "member 1 as soon as it answers");
    match(b.proc.outputLines().join("\n"), /caught up with 1 of 2 peers in \d+ ms, serving/);
    const s = await replStats(b);
    equal(s.get("repl_warm_resumes"), "1", "member 0 resumed it from its backlog");
    equal(s.get("repl_full_copies_received"), "0");
    // Member 2 comes back empty: full copies to it, then everyone agrees.
    await g.restart(2);
    await settledGroup(g.nodes, [0, 1, 2]);
    for (const [i, n] of g.nodes.entries()) await matchesModel(n, model, `member ${i}`);
    await sameEverywhere(g.nodes);
  } finally {
    await g.close();
    await Deno.remove(dir, { recursive: true });
  }
});
