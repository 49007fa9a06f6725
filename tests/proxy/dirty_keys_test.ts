/** DirtyKeys: a cleaning pass never forgets a key marked again after its snapshot. */

import { equal, ok } from "../helpers/assert.ts";
import { DirtyKeys } from "../../lib/proxy/dirty.ts";
import { seeded } from "./cluster.ts";

const enc = new TextEncoder();

Deno.test("a key lost again during a cleaning pass stays dirty; the others are forgotten", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const rand = seeded(seed);
    const d = new DirtyKeys(1 << 20);
    const keys = Array.from({ length: 2000 }, (_, i) => enc.encode(`k${i}`));
    for (const k of keys) d.mark(k);
    const snap = d.snapshot();
    const again = new Set<number>();
    for (let i = 0; i < keys.length; i++) {
      const r = rand();
      if (r < 0.3) {
        d.mark(keys[i], 1000, 0);
        again.add(i);
      } else if (r < 0.6) d.mark(keys[i]); // skipped again: the pass's delete still cleans it
    }
    for (const e of snap) d.settle(e, Date.now());
    equal(d.size, again.size, `seed ${seed}`);
    for (let i = 0; i < keys.length; i++) equal(d.has(keys[i]), again.has(i));
  }
});

Deno.test("a key skipped during every cleaning pass is forgotten once its grace period is over", () => {
  const d = new DirtyKeys(100);
  const k = enc.encode("hot");
  d.mark(k, 1000, 0);
  let now = 10_000, passes = 0;
  while (d.has(k)) {
    ok(++passes < 20, "the key is cleaned within a few passes");
    const snap = d.snapshot();
    // A write of the key goes elsewhere (the key is dirty here) while each delete runs.
    d.mark(k);
    for (const e of snap) d.settle(e, now, now + 5);
    now += 300;
  }
  ok(now - 10_000 >= 1000, "not before the grace period from the first answered delete");
});

Deno.test("past the bound every key is dirty; a failed flush keeps it so", () => {
  const d = new DirtyKeys(3);
  for (const k of ["a", "b", "c", "d"]) d.mark(enc.encode(k));
  equal(d.all, true);
  equal(d.has(enc.encode("zzz")), true);
  d.flushing();
  d.mark(enc.encode("late"));
  equal(d.all, false);
  equal(d.has(enc.encode("late")), true, "a key marked while the flush runs is kept");
  d.flushFailed();
  equal(d.all, true);
});

Deno.test("a lost key stays dirty until a delete sent its grace period after the first answered one", () => {
  const d = new DirtyKeys(100);
  const held = enc.encode("held"), plain = enc.encode("plain");
  // Lost at 1000 with 200 ms of grace; the server then hangs until 5000 (past 1000 + 200).
  d.mark(held, 200);
  d.mark(plain);
  for (const e of d.snapshot()) d.settle(e, 1000, 5000);
  equal(d.has(held), true, "the first answered delete starts the grace period: kept");
  equal(d.has(plain), false);
  for (const e of d.snapshot()) d.settle(e, 5100, 5150);
  equal(d.has(held), true, "a delete sent within 200 ms of that answer: kept");
  d.mark(held, 200); // lost again: the grace period starts over at the next answer
  for (const e of d.snapshot()) d.settle(e, 5300, 5310);
  equal(d.has(held), true);
  for (const e of d.snapshot()) d.settle(e, 5400, 5410);
  equal(d.has(held), true, "within 200 ms of the new first answer (5310)");
  for (const e of d.snapshot()) d.settle(e, 5510, 5520);
  equal(d.clean, true, "a delete sent after the grace period forgets it");
});

Deno.test("a key lost before every key became dirty stays dirty after the flush, for its grace period", () => {
  const d = new DirtyKeys(3);
  const lost = enc.encode("lost");
  d.mark(lost, 200);
  for (const k of ["a", "b", "c"]) d.mark(enc.encode(k)); // over the bound: a flush is needed
  equal(d.all, true);
  d.flushing();
  equal(d.has(lost), true, "its lost bytes may land after the flush");
  equal(d.has(enc.encode("a")), false);
  for (const e of d.snapshot()) d.settle(e, 1000, 1010);
  equal(d.has(lost), true, "the first answered delete starts the grace period");
  for (const e of d.snapshot()) d.settle(e, 1210, 1220);
  equal(d.clean, true);
});

Deno.test("overflowing the bound is counted", () => {
  const d = new DirtyKeys(2);
  for (const k of ["a", "b", "c"]) d.mark(enc.encode(k));
  equal(d.overflows, 1);
  equal(d.all, true);
});

Deno.test("a key only lost is waited out, not deleted; changed elsewhere meanwhile, it stays dirty", () => {
  const d = new DirtyKeys(100);
  const k = enc.encode("k");
  d.mark(k, 1, 0, true);
  let [e] = d.snapshot();
  equal(e.keep, true);
  d.settle(e, 0, 10); // the first answer starts the 1 ms grace period
  d.settle(e, 20, 20); // one sent after it ends it
  equal(d.has(k), false);
  d.mark(k, 1, 0, true);
  [e] = d.snapshot();
  d.mark(k); // a write went elsewhere: the pass that took it as kept (no delete) cannot forget it
  d.settle(e, 0, 10);
  d.settle(e, 20, 20);
  equal(d.has(k), true);
  equal(d.snapshot()[0].keep, false);
});
