import { equal, ok } from "../helpers/assert.ts";
import { get, makeStore, put } from "./helpers.ts";

function field(
  rows: Array<{ id: number; fields: Array<[string, number]> }>,
  id: number,
  name: string,
) {
  return rows.find((r) => r.id === id)?.fields.find(([k]) => k === name)?.[1];
}

Deno.test("stats count items, bytes, pages and per-class rows", () => {
  const { store, clock } = makeStore({ memoryLimit: 32 * 1048576 });
  equal(store.stats.limitMaxbytes, 32 * 1048576);
  equal(store.stats.totalMalloced, 0);
  const h = put(store, "key", "value");
  const size = store.itemSize(h);
  equal(store.stats.currItems, 1);
  equal(store.stats.totalItems, 1);
  equal(store.stats.bytes, size);
  equal(store.stats.totalMalloced, 1048576);
  ok(store.stats.hashBytes > 0);
  equal(store.stats.hashPowerLevel, 16);
  const cls = store.slabClass(h);
  const slabs = store.slabStats();
  equal(field(slabs, cls, "total_pages"), 1);
  equal(field(slabs, cls, "used_chunks"), 1);
  const chunk = field(slabs, cls, "chunk_size")!;
  ok(chunk >= size);
  equal(field(slabs, cls, "chunks_per_page"), Math.floor(1048576 / chunk));
  equal(
    field(slabs, cls, "free_chunks"),
    field(slabs, cls, "total_chunks")! - 1,
  );
  clock.t += 7;
  const items = store.itemStats();
  equal(field(items, cls, "number"), 1);
  equal(field(items, cls, "age"), 7);
  equal(field(items, cls, "mem_requested"), size);
  // memcached's do_item_bump: a first read only marks the item fetched; a second makes it recent.
  get(store, "key");
  equal(field(store.itemStats(), cls, "age"), 7);
  get(store, "key");
  equal(field(store.itemStats(), cls, "age"), 0);
  put(store, "key", "v2");
  equal(store.stats.currItems, 1);
  equal(store.stats.totalItems, 2);
});

Deno.test("slab classes grow by the factor from the minimum chunk", () => {
  const { store } = makeStore({ growthFactor: 2, minChunk: 48 });
  const sizes = store.classSizes;
  ok(sizes.length > 5);
  for (let i = 2; i < sizes.length - 2; i++) ok(sizes[i] >= sizes[i - 1] * 2 - 4);
  // A 2-byte item and a 2000-byte item land in different classes.
  const a = put(store, "a", "1");
  const b = put(store, "b", "x".repeat(2000));
  ok(store.slabClass(b) > store.slabClass(a));
});
