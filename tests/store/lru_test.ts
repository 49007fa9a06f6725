import { equal, ok } from "../helpers/assert.ts";
import { find, get, makeStore, put } from "./helpers.ts";

/** Fills one slab class under a 1 MiB limit until the first eviction; returns keys stored. */
function fillUntilEviction(store: ReturnType<typeof makeStore>["store"]): number {
  let i = 0;
  while (store.stats.evictions === 0) put(store, `k${i++}`, "x".repeat(500));
  return i;
}

Deno.test("the least recently bumped item is evicted first and evictions are counted", () => {
  const { store, clock } = makeStore({ memoryLimit: 1048576 });
  const n = fillUntilEviction(store);
  // k0 was evicted (oldest, never fetched).
  equal(find(store, "k0"), -1);
  equal(store.stats.evictions, 1);
  equal(store.stats.evictedUnfetched, 1);
  // Bump k1: now k2 is the tail.
  clock.t += 3;
  equal(get(store, "k1"), "x".repeat(500));
  put(store, `k${n}`, "x".repeat(500));
  equal(store.stats.evictions, 2);
  equal(find(store, "k2"), -1);
  ok(find(store, "k1") >= 0);
  const h = find(store, "k1");
  ok(store.fetched(h));
  equal(store.lastAccess(h), clock.t);
  // Keep writing: k1 survives until all items stored before its bump are gone.
  for (let i = n + 1; i < n + n - 3; i++) put(store, `k${i}`, "x".repeat(500));
  ok(find(store, "k1") >= 0);
  put(store, "more", "x".repeat(500));
  put(store, "more2", "x".repeat(500));
  put(store, "more3", "x".repeat(500));
  equal(find(store, "k1"), -1);
  const row = store.itemStats()[0].fields;
  const field = (name: string) => row.find(([k]) => k === name)?.[1];
  equal(field("evicted"), store.stats.evictions);
  ok((field("evicted_unfetched") ?? 0) < store.stats.evictions);
});

Deno.test("eviction is per class: other classes keep their items", () => {
  const { store } = makeStore({ memoryLimit: 2 * 1048576 });
  put(store, "small", "s");
  fillUntilEviction(store);
  equal(get(store, "small"), "s");
});
