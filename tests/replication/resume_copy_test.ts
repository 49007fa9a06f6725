/**
 * A full copy cut in the middle and resumed, with both nodes changing data
 * while the link is down: what the sender deletes between the cut and the
 * resume (items already copied, items in the unacknowledged window, items
 * not reached yet) stays deleted on the receiver, and so do the receiver's
 * own deletes of items the copy already brought; writes on both sides
 * survive. The cut is placed deterministically: the relay stops forwarding
 * once a set number of copy bytes went through, then drops the link.
 * `SEED=<n>` replays a run's shuffle, `THREADS=<n>` runs one thread count.
 */

import { equal, ok } from "../helpers/assert.ts";
import { waitUntil } from "../helpers/mod.ts";
import { COPY_CHUNK, COPY_WINDOW } from "../../lib/replication/snapshot.ts";
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
 * Bytes from A to B after which the healed link stops forwarding: 1 MB past
 * the copy window, so B acknowledged part of the copy, in the middle of the
 * ~8 MB of items (the tombstones come after them).
 */
const CUT_AFTER = COPY_WINDOW * COPY_CHUNK + 1_000_000;

async function resumedCopy(threads: number): Promise<void> {
  const seed = Number(Deno.env.get("SEED") ?? Math.floor(Math.random() * 1e9));
  const run = `seed ${seed}, -t ${threads}`;
  console.log(run);
  let rnd = seed;
  const random = () => (rnd = (rnd * 1103515245 + 12345) % 2147483648) / 2147483648;
  const shuffled = <T>(xs: T[]): T[] => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  };
  // Backlog 1m: 65,536 tombstones, so the copy's sweep has to drop most of the deletes.
  const args = ["--repl-backlog", "1m", "-m", "256", "--repl-timeout", "1000", "-t", `${threads}`];
  await withRelayedPair(args, async (a, b, relay) => {
    const N = 120_000, D = 90_000; // D: more than A's backlog holds (a copy follows)
    await fill(a, "k:", N, 200);
    await settled(a, b, 20_000);
    // Partition; A deletes more keys than it keeps tombstones for, B writes.
    relay.refuse(true);
    relay.drop();
    await Promise.all([
      a.proc.waitForLog(/^replication: close/, 10_000),
      b.proc.waitForLog(/^replication: close/, 10_000),
    ]);
    const keys = shuffled(Array.from({ length: N }, (_, i) => `k:${i}`));
    const deleted = keys.slice(0, D);
    const kept = keys.slice(D);
    await deleteAll(a, deleted);
    equal(deleted.length - (await missingKeys(a, deleted)).length, 0, `A's deletes (${run})`);
    await setAll(b, Array.from({ length: 500 }, (_, i) => `pb:${i}`), "b");
    // Heal, and cut once CUT_AFTER bytes went from A to B: the copy is part-way, some of it
    // acknowledged, some in flight.
    const copiesB = await replStat(b, "repl_full_copies_received");
    const resumes = await replStat(a, "repl_copy_resumes");
    const received = await replStat(b, "repl_items_copied_received");
    const lines = [a.proc.outputLines().length, b.proc.outputLines().length];
    let forwarded = 0, held = false;
    relay.tamper((chunk, toTarget) => {
      if (!toTarget && !held && (forwarded += chunk.length) >= CUT_AFTER) {
        held = true;
        relay.pause(); // this chunk still goes; nothing after it
      }
      return null;
    });
    relay.refuse(false);
    await waitUntil(() => Promise.resolve(held), "the copy to reach the cut point", 20_000);
    relay.refuse(true);
    relay.drop();
    relay.resume(); // (the dropped connections' forwarders end)
    relay.tamper(null);
    await Promise.all([
      a.proc.waitForLog(/^replication: close/, 10_000, lines[0]),
      b.proc.waitForLog(/^replication: close/, 10_000, lines[1]),
    ]);
    const node = b;
    equal(await replStat(node, "repl_full_copies_received"), copiesB, "the copy was cut short");
    const part = await replStat(node, "repl_items_copied_received") - received;
    ok(part > 0 && part < kept.length, `part of the copy was applied (${part} items)`);
    // While the link is down: A deletes and rewrites kept keys across the whole store (copied
    // already or not), B deletes kept keys it got from the copy and writes new ones.
    const cut = shuffled(kept);
    const cutDeleted = cut.slice(0, 6000);
    const cutRewritten = cut.slice(6000, 9000);
    const bDeleted = cut.slice(9000, 9500);
    const survivors = cut.slice(9500);
    await deleteAll(a, cutDeleted);
    await setAll(a, cutRewritten, "a2");
    await deleteAll(b, bDeleted);
    await setAll(b, Array.from({ length: 500 }, (_, i) => `bc:${i}`), "b");
    // Heal: the copy goes on from its last acknowledged chunk.
    relay.refuse(false);
    await waitUntil(
      async () => (await replStat(node, "repl_full_copies_received")) > copiesB,
      "the resumed copy to complete",
      30_000,
    );
    ok(await replStat(a, "repl_copy_resumes") > resumes, `the copy resumed (${run})`);
    await settled(a, b, 20_000);
    const all = await sameContents(a, b);
    const gone = [...deleted, ...cutDeleted, ...bDeleted];
    const resurrected = gone.filter((k) => all.has(k));
    equal(resurrected.length, 0, `deleted keys back (${run}): ${resurrected.slice(0, 5)}`);
    const want = new Map<string, string>();
    for (const k of survivors) want.set(k, "x");
    for (const k of cutRewritten) want.set(k, `a2-${k}`);
    for (let i = 0; i < 500; i++) want.set(`pb:${i}`, `b-pb:${i}`);
    for (let i = 0; i < 500; i++) want.set(`bc:${i}`, `b-bc:${i}`);
    let lost = 0, stale = 0;
    for (const [k, v] of want) {
      const got = all.get(k);
      if (got === undefined) lost++;
      else if (!got.endsWith(v)) stale++;
    }
    equal(lost, 0, `keys lost (${run})`);
    equal(stale, 0, `keys with an older value (${run})`);
    equal(all.size, want.size, `items besides the expected ones (${run})`);
  });
}

const only = Deno.env.get("THREADS");
for (const threads of only ? [Number(only)] : [1, 2]) {
  Deno.test(`-t ${threads}: a copy cut part-way resumes; deletes on either side while the link was down stay deleted, writes survive`, async () => {
    await resumedCopy(threads);
  });
}
