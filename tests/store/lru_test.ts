import { equal, ok } from "../helpers/assert.ts";
import { ALLOC_NO_MEMORY } from "../../lib/store/mod.ts";
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
  // Read k1 twice (the first read only marks it fetched, as in memcached): the
  // next eviction moves it to the head and takes k2 instead.
  clock.t += 3;
  equal(get(store, "k1"), "x".repeat(500));
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
  equal(field("moves_to_warm"), 1);
  equal(field("evicted_active"), 0);
});

Deno.test("an item read once is only fetched: the next eviction takes it", () => {
  const { store } = makeStore({ memoryLimit: 1048576 });
  fillUntilEviction(store); // k1 is the tail
  equal(get(store, "k1"), "x".repeat(500));
  put(store, "next", "x".repeat(500));
  equal(find(store, "k1"), -1);
  ok(find(store, "k2") >= 0);
  equal(store.stats.evictedUnfetched, 1, "k1 went fetched");
});

Deno.test("a list of active items still evicts: RESCUE_MAX (50) of them move, then the tail goes", () => {
  const { store } = makeStore({ memoryLimit: 1048576 });
  const n = fillUntilEviction(store);
  const live: string[] = [];
  for (let i = 1; i < n; i++) {
    if (find(store, `k${i}`) < 0) continue;
    live.push(`k${i}`);
    get(store, `k${i}`);
    get(store, `k${i}`);
  }
  put(store, "next", "x".repeat(500));
  const row = store.itemStats()[0].fields;
  const field = (name: string) => row.find(([k]) => k === name)?.[1];
  ok(live.length > 51, `active items (${live.length})`);
  equal(field("moves_to_warm"), 50);
  equal(field("evicted_active"), 1);
  // The fifty moved to the head, the next oldest was evicted; the list is intact.
  for (let i = 0; i < 50; i++) ok(find(store, live[i]) >= 0, live[i]);
  equal(find(store, live[50]), -1);
  let count = 0;
  store.lruItems(store.itemStats()[0].id, () => (count++, true));
  equal(count, store.stats.currItems);
  equal(count, live.length);
});

Deno.test("eviction is per class: other classes keep their items", () => {
  const { store } = makeStore({ memoryLimit: 2 * 1048576 });
  put(store, "small", "s");
  fillUntilEviction(store);
  equal(get(store, "small"), "s");
});

Deno.test("alloc never evicts the item it is told to keep (the source of an append or incr)", () => {
  const { store } = makeStore({ memoryLimit: 1048576 });
  fillUntilEviction(store); // k0 is gone, k1 is now the LRU tail
  const k1 = find(store, "k1");
  const key = new TextEncoder().encode("k1");
  const h = store.alloc(key, 0, key.length, 0, 0, 500, k1);
  ok(h >= 0);
  ok(h !== k1, "the kept item's memory is not reused");
  equal(get(store, "k1"), "x".repeat(500));
  equal(find(store, "k2"), -1, "the next item in LRU order went instead");
  store.free(h);

  // A large item that is the only one of its class cannot make room for its own successor.
  const big = makeStore({ memoryLimit: 1048576 }).store;
  put(big, "big", "y".repeat(600_000));
  const old = find(big, "big");
  const b = new TextEncoder().encode("big");
  equal(big.alloc(b, 0, b.length, 0, 0, 900_000, old), ALLOC_NO_MEMORY);
  equal(get(big, "big"), "y".repeat(600_000));
  ok(big.alloc(b, 0, b.length, 0, 0, 900_000) >= 0, "without keep, it is evicted");
});
