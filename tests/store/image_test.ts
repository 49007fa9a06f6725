import { equal, ok } from "../helpers/assert.ts";
import {
  abortRestore,
  checksum,
  commitRestore,
  restoreTargets,
  savedSizes,
  storeLayout,
  storeSections,
} from "../../lib/store/mod.ts";
import { I_HASH_POWER, I_SCALARS, I_TOP } from "../../lib/store/slabs.ts";
import { find, get, makeStore, put } from "./helpers.ts";

/** Copies `from`'s sections into a new store as serve -e does through the file. */
function restoreCopy(from: ReturnType<typeof makeStore>["store"]) {
  const { store, clock } = makeStore();
  const sections = storeSections(from);
  const control = sections.control.slice();
  const sizes = savedSizes(store, control);
  if (typeof sizes === "string") throw new Error(sizes);
  equal(sizes.buckets, sections.buckets.byteLength);
  equal(sizes.pages, sections.pages.byteLength);
  const targets = restoreTargets(store, control);
  targets.buckets.set(sections.buckets);
  targets.pages.set(sections.pages);
  commitRestore(store, control);
  return { store, clock };
}

Deno.test("store image: a restored copy finds every item with value, flags, exptime and CAS, and keeps working", () => {
  const { store: a } = makeStore();
  const n = 110_000; // past load 1.5 of 2**16 buckets: the hash table has grown
  for (let i = 0; i < n; i++) {
    put(a, `key:${i}`, `value-${i}-${"x".repeat(i % 50)}`, i, i % 7 === 0 ? 0 : 1000 + i);
  }
  // A large item (its own run of pages) and a deleted one.
  put(a, "big", "B".repeat(700_000));
  a.unlink(find(a, "key:5"));
  const { store: b } = restoreCopy(a);
  equal(b.stats.currItems, a.stats.currItems);
  let wrong = 0;
  for (let i = 0; i < n; i++) {
    if (i === 5) continue;
    const ha = find(a, `key:${i}`), hb = find(b, `key:${i}`);
    if (
      hb < 0 || get(b, `key:${i}`) !== get(a, `key:${i}`) || b.flags(hb) !== a.flags(ha) ||
      b.exptime(hb) !== a.exptime(ha) || b.cas(hb) !== a.cas(ha)
    ) wrong++;
  }
  equal(wrong, 0);
  equal(find(b, "key:5"), -1);
  equal(get(b, "big"), "B".repeat(700_000));
  // New writes go on: CAS continues past the restored ones, overwrites free the old item.
  const maxCas = a.cas(find(a, "big"));
  put(b, "key:1", "new");
  ok(b.cas(find(b, "key:1")) > maxCas);
  equal(get(b, "key:1"), "new");
  equal(b.stats.currItems, a.stats.currItems);
  // The source is untouched by the copy's writes.
  equal(get(a, "key:1"), "value-1-x");
});

Deno.test("store image: a control section with impossible counts is refused, an aborted restore leaves an empty store", () => {
  const { store: a } = makeStore();
  for (let i = 0; i < 1000; i++) put(a, `k${i}`, "v");
  const control = storeSections(a).control.slice();
  const { store: b } = makeStore();
  const scalars = new Int32Array(control.buffer, b.scalarsOffset, I_SCALARS);
  const top = scalars[I_TOP];
  scalars[I_TOP] = storeLayout(b).capacity + 1; // past the page ids
  ok(typeof savedSizes(b, control) === "string");
  scalars[I_TOP] = top;
  scalars[I_HASH_POWER] = 40; // past the most buckets
  ok(typeof savedSizes(b, control) === "string");
  scalars[I_HASH_POWER] = 16;
  ok(typeof savedSizes(b, control) !== "string");
  // Buckets read, then a bad page section: abort, the store is empty and usable.
  const t = restoreTargets(b, control);
  t.buckets.set(storeSections(a).buckets);
  abortRestore(b);
  equal(find(b, "k1"), -1);
  put(b, "k1", "fresh");
  equal(get(b, "k1"), "fresh");
  equal(b.stats.currItems, 1);
});

Deno.test("store image: the checksum sees a flipped bit and a moved word", () => {
  const bytes = new Uint8Array(1 << 16);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 255;
  const sum = checksum(bytes);
  const flipped = bytes.slice();
  flipped[12345] ^= 1;
  ok(checksum(flipped) !== sum);
  const swapped = bytes.slice();
  swapped.set(bytes.subarray(0, 4), 4);
  swapped.set(bytes.subarray(4, 8), 0);
  ok(checksum(swapped) !== sum);
  equal(checksum(bytes.slice()), sum);
});
