/**
 * A full copy after a long partition leaves both nodes with the same
 * contents: more deletes than the tombstone limit are not undone (the
 * receiver drops what the sender no longer has and both had agreed on),
 * and writes made on either side during the partition survive, the newer
 * one winning. Each case runs with one serve thread and with two (a serve
 * thread's changes reach the link through the change ring); `SEED=<n>`
 * replays a run's shuffle, `THREADS=<n>` runs only that thread count.
 */

import { equal, ok } from "../helpers/assert.ts";
import { waitUntil } from "../helpers/mod.ts";
import {
  deleteAll,
  fill,
  missingKeys,
  replStat,
  sameContents,
  setAll,
  settled,
  withRelayedPair,
} from "./pair.ts";

/**
 * Pair, fill, partition, delete 100k keys on A, write on both, heal. `pb`:
 * keys B writes meanwhile; `flap`: the healed link is cut every ~300 ms
 * while the copy runs (it resumes, and what it marked before a cut counts);
 * `threads`: serve threads per node.
 */
async function partition(pb: number, threads: number, flap = false): Promise<void> {
  // SEED=<n> replays a run's shuffle (the cut timing still varies).
  const seed = Number(Deno.env.get("SEED") ?? Math.floor(Math.random() * 1e9));
  const run = `seed ${seed}, -t ${threads}`;
  console.log(run);
  let rnd = seed;
  const random = () => (rnd = (rnd * 1103515245 + 12345) % 2147483648) / 2147483648;
  const args = ["--repl-backlog", "1m", "-m", "256", "--repl-timeout", "1000", "-t", `${threads}`];
  await withRelayedPair(args, async (a, b, relay) => {
    const N = flap ? 200_000 : 130_000, D = 100_000;
    await fill(a, "k:", N, 20); // written on A: B has them from A's stream
    await fill(b, "b:", 5_000, 20); // written on B
    await settled(a, b, 20_000);
    // Partition.
    relay.refuse(true);
    relay.drop();
    await Promise.all([
      a.proc.waitForLog(/^replication: close/, 10_000),
      b.proc.waitForLog(/^replication: close/, 10_000),
    ]);
    const from = [a.proc.outputLines().length, b.proc.outputLines().length];
    const copiesA = await replStat(a, "repl_full_copies_received");
    const copiesB = await replStat(b, "repl_full_copies_received");
    // A deletes D of its keys, in random order (more than the tombstone limit).
    const order = Array.from({ length: N }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const deleted = order.slice(0, D).map((i) => `k:${i}`);
    const kept = order.slice(D).map((i) => `k:${i}`);
    const both = Array.from({ length: 500 }, (_, i) => `both:${i}`);
    await setAll(a, both, "a"); // older
    await deleteAll(a, deleted);
    // Every thread of A sees the deletes (an idle thread once read a stale hash table view).
    const missing = await missingKeys(a, deleted);
    equal(deleted.length - missing.length, 0, `deleted keys still on A before the heal (${run})`);
    await setAll(a, Array.from({ length: 1000 }, (_, i) => `pa:${i}`), "a");
    await setAll(b, Array.from({ length: pb }, (_, i) => `pb:${i}`), "b");
    await setAll(b, kept.slice(0, 2000), "b"); // B's newer writes of keys A kept
    await setAll(b, both, "b"); // newer than A's
    await deleteAll(b, Array.from({ length: 300 }, (_, i) => `b:${i}`));
    ok(await replStat(a, "repl_tombstones") < D, "A could not keep a tombstone per delete");
    // Heal.
    // With `flap`, the first cut comes 1.5 MB into A's copy (~8 MB), whatever the machine's
    // speed; then one every 200-400 ms until the copy is complete.
    let forwarded = 0;
    let cutOnce!: () => void;
    const firstCut = new Promise<void>((r) => (cutOnce = r));
    if (flap) {
      relay.setLatency(2); // a slower link: the copy is still running when the later cuts come
      relay.tamper((chunk, toTarget) => {
        if (!toTarget && (forwarded += chunk.length) >= 1_500_000) {
          relay.tamper(null);
          relay.drop();
          cutOnce();
        }
        return null;
      });
    }
    relay.refuse(false);
    if (flap) {
      const node = b;
      await firstCut;
      let cuts = 1;
      const done = async () => (await replStat(node, "repl_full_copies_received")) > copiesB;
      for (;;) {
        await new Promise((r) => setTimeout(r, 200 + random() * 200));
        if (cuts >= 6 || await done()) break;
        relay.drop();
        cuts++;
      }
      relay.setLatency(0);
      await waitUntil(done, "the copy to complete after the cuts", 20_000);
      console.log(`${cuts} cuts, ${await replStat(a, "repl_copy_resumes")} resumes`);
      ok(await replStat(a, "repl_copy_resumes") >= 1, "the copy resumed");
    } else {
      await Promise.all([
        a.proc.waitForLog(/^replication: start/, 20_000, from[0]),
        b.proc.waitForLog(/^replication: start/, 20_000, from[1]),
      ]);
    }
    await settled(a, b, 20_000);
    const all = await sameContents(a, b);
    const resurrected = deleted.filter((k) => all.has(k)).length;
    equal(resurrected, 0, `deleted keys back after the heal (${run})`);
    // Expected survivors and the value each must hold (the newer write).
    const want = new Map<string, string>();
    for (const k of kept) want.set(k, "x");
    for (let i = 0; i < 1000; i++) want.set(`pa:${i}`, `a-pa:${i}`);
    for (let i = 0; i < pb; i++) want.set(`pb:${i}`, `b-pb:${i}`);
    for (const k of both) want.set(k, `b-${k}`); // B's newer write wins
    for (const k of kept.slice(0, 2000)) want.set(k, `b-${k}`);
    for (let i = 300; i < 5000; i++) want.set(`b:${i}`, "x");
    let lost = 0, stale = 0;
    for (const [k, v] of want) {
      const got = all.get(k);
      if (got === undefined) lost++;
      else if (!got.endsWith(v)) stale++;
    }
    equal(lost, 0, `keys lost (${run})`);
    equal(stale, 0, `keys with an older value (${run})`);
    equal(all.has("b:0"), false, `B's delete undone (${run})`);
    equal(all.size, want.size, `items besides the expected ones (${run})`);
    equal(await replStat(b, "repl_full_copies_received"), copiesB + 1);
    ok(await replStat(b, "repl_copy_items_dropped") >= D - 65536, "B dropped what A deleted");
    if (pb > 10_000) equal(await replStat(a, "repl_full_copies_received"), copiesA + 1);
  });
}

const only = Deno.env.get("THREADS");
for (const threads of only ? [Number(only)] : [1, 2]) {
  const t = `-t ${threads}`;
  Deno.test(`${t}: 100,000 deletes during a partition (backlog 1m) are not undone by the full copy; writes on both sides survive`, async () => {
    await partition(1000, threads); // B's writes fit its backlog: A gets them by partial resync
  });

  Deno.test(`${t}: the same when both backlogs overflowed: two full copies cross, deletes stay deleted`, async () => {
    await partition(60_000, threads); // more than B's backlog (at least 2 MiB with -I 1m)
  });

  Deno.test(`${t}: the same with the healed link cut every ~300 ms: the copy resumes and still drops exactly what A deleted`, async () => {
    await partition(1000, threads, true);
  });
}
