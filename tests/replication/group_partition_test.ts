/**
 * Replica groups under partitions (a relay on every link): a member cut
 * from all others, then healed, converges with them, both sides' writes
 * and deletes kept; a member cut from one peer only still gets that peer's
 * writes through the third member; and a full copy from one member never
 * deletes what the receiver got from a third member the sender has not
 * seen (the pair's mark-and-sweep would).
 */

import { equal, ok } from "../helpers/assert.ts";
import { waitUntil } from "../helpers/mod.ts";
import {
  contents,
  deleteAll,
  dump,
  missingKeys,
  type Node,
  replStat,
  replStats,
  setAll,
} from "./pair.ts";
import { cut, heal, settledGroup, startGroup } from "./group.ts";

/**
 * Every node holds exactly what the first holds (`quick`: keys, versions,
 * expiry and sizes only, from metadump); returns it.
 */
async function sameEverywhere(nodes: Node[], quick = false): Promise<Map<string, string>> {
  const all = await Promise.all(nodes.map((n) => quick ? dump(n) : contents(n)));
  const diff: string[] = [];
  for (let k = 1; k < all.length; k++) {
    for (const [key, v] of all[0]) if (all[k].get(key) !== v) diff.push(`${key} @${k}`);
    for (const key of all[k].keys()) if (!all[0].has(key)) diff.push(`${key} only @${k}`);
  }
  equal(diff.length, 0, `members differ on ${diff.length}: ${diff.slice(0, 10).join(", ")}`);
  return all[0];
}

function keys(prefix: string, n: number) {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}

Deno.test("partition {A}|{B,C}, writes and deletes on both sides, heal: all three converge, nothing lost or resurrected", async () => {
  const g = await startGroup(3, ["--repl-timeout", "1000"], { relays: true });
  try {
    const [a, b, c] = g.nodes;
    await setAll(a, keys("k", 2000), "a");
    await settledGroup(g.nodes, [0, 1, 2]);
    cut(g, 0, 1);
    cut(g, 0, 2);
    await waitUntil(
      async () => (await replStats(a)).get("repl_group_up") === "1",
      "A to be alone",
      10_000,
    );
    await setAll(a, keys("pa", 500), "a");
    await deleteAll(a, keys("k", 300)); // k0..k299 deleted on A
    await setAll(b, keys("pb", 500), "b");
    await setAll(c, keys("pc", 500), "c");
    const cDeletes = keys("k", 1100).slice(1000); // k1000..k1099, on C
    const bWrites = keys("k", 1550).slice(1500); // k1500..k1549, B's newer writes
    await deleteAll(c, cDeletes);
    await setAll(b, bWrites, "b");
    ok((await missingKeys(b, keys("pc", 500))).length === 0, "B has C's writes meanwhile");
    heal(g, 0, 1);
    heal(g, 0, 2);
    await settledGroup(g.nodes, [0, 1, 2], 30_000);
    const all = await sameEverywhere(g.nodes);
    for (const k of keys("k", 300)) equal(all.has(k), false, `${k} deleted on A is back`);
    for (const p of ["pa", "pb", "pc"]) {
      for (const k of keys(p, 500)) ok(all.get(k)?.endsWith(`${p[1]}-${k}`), `${k} kept`);
    }
    for (const k of bWrites) ok(all.get(k)?.endsWith(`b-${k}`), `${k}: B's newer write`);
    for (const k of cDeletes) equal(all.has(k), false, `${k} deleted on C is back`);
    equal(all.size, 2000 - 300 - 100 + 1500, "every other key kept");
  } finally {
    await g.close();
  }
});

Deno.test("A-B cut while A-C and B-C work: A's and B's writes reach each other through C, and all converge after the heal", async () => {
  const g = await startGroup(3, ["--repl-timeout", "1000"], { relays: true });
  try {
    const [a, b] = g.nodes;
    cut(g, 0, 1);
    await waitUntil(
      async () => (await replStats(a)).get("repl_peer_1_link") === "down",
      "A to see B down",
      10_000,
    );
    await setAll(a, keys("fa", 1000), "a");
    await setAll(b, keys("fb", 1000), "b");
    await waitUntil(
      async () =>
        (await missingKeys(b, keys("fa", 1000))).length === 0 &&
        (await missingKeys(a, keys("fb", 1000))).length === 0,
      "the writes to pass through C",
      15_000,
    );
    // Deletes of B's keys, made on A once A holds them (a delete of a key not yet
    // arrived is NOT_FOUND and deletes nothing); C passes them on to B.
    equal(await deleteAll(a, keys("fb", 100)), 100, "A deleted B's keys");
    await waitUntil(
      async () => (await missingKeys(b, keys("fb", 100))).length === 100,
      "A's deletes to reach B through C",
      15_000,
    );
    equal((await replStats(b)).get("repl_peer_0_link"), "down", "A-B still cut");
    ok(await replStat(g.nodes[2], "repl_changes_forwarded") > 0, "C forwarded");
    heal(g, 0, 1);
    await settledGroup(g.nodes, [0, 1, 2], 30_000);
    const all = await sameEverywhere(g.nodes);
    equal(all.size, 1000 + 900);
  } finally {
    await g.close();
  }
});

Deno.test("a full copy A -> C does not delete what C got from B while A-B is cut (no sweep of a third member's writes)", async () => {
  // A 2 MiB backlog (the minimum with -I 1m): the writes during the cut overflow it, so the
  // healed A-C link takes full copies both ways.
  const g = await startGroup(3, ["--repl-timeout", "1000", "--repl-backlog", "1m"], {
    relays: true,
  });
  try {
    const [a, b, c] = g.nodes;
    await setAll(a, keys("base", 100), "a");
    await settledGroup(g.nodes, [0, 1, 2]);
    cut(g, 0, 1);
    // B's writes reach C late: after C's own later writes, which A acknowledges. The pair's
    // sweep would take A's agreed point (past C's writes) as covering B's older versions.
    g.relays[1][2].pause();
    await setAll(b, keys("third", 2000), "b");
    await setAll(c, keys("cw", 10), "c");
    await waitUntil(
      async () => (await replStats(c)).get("repl_peer_0_lag_bytes") === "0",
      "A to acknowledge C's writes",
      10_000,
    );
    cut(g, 0, 2);
    await waitUntil(
      async () => (await replStats(a)).get("repl_group_up") === "1",
      "A to be alone",
      10_000,
    );
    g.relays[1][2].resume();
    await waitUntil(
      async () => (await missingKeys(c, keys("third", 2000))).length === 0,
      "C to have B's writes",
      10_000,
    );
    const copies = await replStat(c, "repl_full_copies_received");
    await Promise.all([setAll(a, keys("big", 60_000), "a"), setAll(c, keys("cbig", 60_000), "c")]);
    heal(g, 0, 2);
    await waitUntil(
      async () => (await replStat(c, "repl_full_copies_received")) > copies,
      "the full copy A -> C",
      20_000,
    );
    await settledGroup([a, c], [0, 2], 20_000);
    equal((await missingKeys(c, keys("third", 2000))).length, 0, "C lost B's writes to A's copy");
    equal((await missingKeys(a, keys("third", 2000))).length, 0, "A got B's writes through C");
    heal(g, 0, 1);
    await settledGroup(g.nodes, [0, 1, 2], 30_000);
    const all = await sameEverywhere(g.nodes, true);
    equal(all.size, 100 + 2000 + 10 + 60_000 + 60_000);
  } finally {
    await g.close();
  }
});
