/** DirtyKeys: a cleaning pass never forgets a key marked again after its snapshot. */

import { equal } from "../helpers/assert.ts";
import { DirtyKeys } from "../../lib/proxy/dirty.ts";
import { seeded } from "./cluster.ts";

const enc = new TextEncoder();

Deno.test("a key marked again during a cleaning pass stays dirty; the others are forgotten", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const rand = seeded(seed);
    const d = new DirtyKeys(1 << 20);
    const keys = Array.from({ length: 2000 }, (_, i) => enc.encode(`k${i}`));
    for (const k of keys) d.mark(k);
    const snap = d.snapshot();
    const again = new Set<number>();
    for (let i = 0; i < keys.length; i++) {
      if (rand() < 0.3) {
        d.mark(keys[i]);
        again.add(i);
      }
    }
    for (const e of snap) d.settle(e);
    equal(d.size, again.size, `seed ${seed}`);
    for (let i = 0; i < keys.length; i++) equal(d.has(keys[i]), again.has(i));
  }
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

Deno.test("a key lost on a failed request stays dirty until its hold ends, then is forgotten", async () => {
  const d = new DirtyKeys(100);
  const held = enc.encode("held"), plain = enc.encode("plain");
  d.mark(held, Date.now() + 200);
  d.mark(plain);
  for (const e of d.snapshot()) d.settle(e);
  equal(d.has(held), true, "late bytes may still land: kept");
  equal(d.has(plain), false);
  await new Promise((r) => setTimeout(r, 300)); // the hold is over
  for (const e of d.snapshot()) d.settle(e);
  equal(d.clean, true);
});

Deno.test("overflowing the bound is counted", () => {
  const d = new DirtyKeys(2);
  for (const k of ["a", "b", "c"]) d.mark(enc.encode(k));
  equal(d.overflows, 1);
  equal(d.all, true);
});
