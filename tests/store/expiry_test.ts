import { equal, ok } from "../helpers/assert.ts";
import { REALTIME_MAXDELTA, toAbsoluteExptime } from "../../lib/store/mod.ts";
import { find, get, makeStore, put } from "./helpers.ts";

const START = 1_700_000_000;

Deno.test("toAbsoluteExptime follows memcached realtime()", () => {
  equal(toAbsoluteExptime(0, 100, START), 0);
  equal(toAbsoluteExptime(5, 100, START), 105);
  equal(toAbsoluteExptime(REALTIME_MAXDELTA, 100, START), 100 + REALTIME_MAXDELTA);
  equal(toAbsoluteExptime(START + 500, 100, START), 500);
  const neg = toAbsoluteExptime(-1, 100, START);
  ok(neg !== 0 && neg <= 100);
  const past = toAbsoluteExptime(START + 50, 100, START);
  ok(past !== 0 && past <= 100);
  const veryPast = toAbsoluteExptime(REALTIME_MAXDELTA + 1, 100, START);
  ok(veryPast !== 0 && veryPast <= 100);
  const early = toAbsoluteExptime(-5, 0, START);
  ok(early !== 0 && early <= 0);
});

Deno.test("relative exptime: live until the second it expires, then freed on lookup", () => {
  const { store, clock } = makeStore();
  put(store, "k", "v", 0, toAbsoluteExptime(10, clock.t, START));
  clock.t += 9;
  equal(get(store, "k"), "v");
  clock.t += 1;
  equal(find(store, "k"), -1);
  equal(store.stats.currItems, 0);
  equal(store.stats.getExpired, 1);
});

Deno.test("absolute unix exptime and negative exptime", () => {
  const { store, clock } = makeStore();
  put(store, "abs", "v", 0, toAbsoluteExptime(START + clock.t + 100, clock.t, START));
  put(store, "neg", "v", 0, toAbsoluteExptime(-1, clock.t, START));
  put(store, "gone", "v", 0, toAbsoluteExptime(START - 1000, clock.t, START));
  equal(find(store, "neg"), -1);
  equal(find(store, "gone"), -1);
  clock.t += 99;
  equal(get(store, "abs"), "v");
  clock.t += 1;
  equal(get(store, "abs"), null);
});

Deno.test("setExptime (touch) extends and shortens life", () => {
  const { store, clock } = makeStore();
  const h = put(store, "t", "v", 0, clock.t + 5);
  store.setExptime(h, clock.t + 100);
  clock.t += 50;
  equal(get(store, "t"), "v");
  store.setExptime(find(store, "t"), clock.t);
  equal(find(store, "t"), -1);
});

Deno.test("flush with delay 0 frees everything at once", () => {
  const { store } = makeStore();
  for (let i = 0; i < 1000; i++) put(store, `f${i}`, "v".repeat(i % 300));
  store.flush(0);
  equal(store.stats.currItems, 0);
  equal(store.stats.bytes, 0);
  for (let i = 0; i < 1000; i += 7) equal(find(store, `f${i}`), -1);
  put(store, "after", "ok");
  equal(get(store, "after"), "ok");
});

Deno.test("delayed flush invalidates items stored at or before now+delay, at now+delay (memcached oldest_live)", () => {
  const { store, clock } = makeStore();
  put(store, "old", "1");
  store.flush(10);
  clock.t += 5;
  put(store, "mid", "2");
  equal(get(store, "old"), "1");
  clock.t += 5;
  equal(find(store, "old"), -1);
  equal(find(store, "mid"), -1);
  put(store, "same-second", "x");
  equal(find(store, "same-second"), -1);
  clock.t += 1;
  put(store, "new", "3");
  clock.t += 100;
  equal(get(store, "new"), "3");
  equal(store.stats.getFlushed, 3);
});

Deno.test("expired items at the LRU tail are reclaimed before evicting", () => {
  const { store, clock } = makeStore({ memoryLimit: 1048576 });
  // Fill the single page of one class with short-lived items.
  let i = 0;
  for (; store.stats.evictions === 0 && i < 100_000; i++) {
    put(store, `e${i}`, "x".repeat(200), 0, clock.t + 1);
  }
  const evictionsAfterFill = store.stats.evictions;
  clock.t += 5;
  for (let j = 0; j < 100; j++) put(store, `n${j}`, "y".repeat(200));
  equal(store.stats.evictions, evictionsAfterFill);
  ok(store.stats.reclaimed >= 100);
  ok(store.stats.expiredUnfetched >= 100);
  for (let j = 0; j < 100; j++) equal(get(store, `n${j}`), "y".repeat(200));
});
