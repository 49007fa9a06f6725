import { equal, ok } from "../helpers/assert.ts";
import { ALLOC_NO_MEMORY, ALLOC_TOO_LARGE, HEADER_SIZE } from "../../lib/store/mod.ts";
import { find, get, keyOf, makeStore, put, valueOf } from "./helpers.ts";

const enc = new TextEncoder();

Deno.test("set then find returns key, value, flags and a trailing CRLF", () => {
  const { store } = makeStore();
  put(store, "alpha", "hello", 0xdeadbeef, 0);
  const h = find(store, "alpha");
  ok(h >= 0);
  equal(keyOf(store, h), "alpha");
  equal(valueOf(store, h), "hello");
  equal(store.flags(h), 0xdeadbeef);
  equal(store.exptime(h), 0);
  const end = store.valueOffset(h) + store.valueLength(h);
  equal(store.buffer(h)[end], 13);
  equal(store.buffer(h)[end + 1], 10);
  equal(find(store, "alph"), -1);
  equal(find(store, "alphaa"), -1);
});

Deno.test("keys are found from any offset of any buffer", () => {
  const { store } = makeStore();
  put(store, "k1", "v1");
  const buf = enc.encode("get k1\r\n");
  const h = store.find(buf, 4, 6);
  equal(valueOf(store, h), "v1");
});

Deno.test("overwrite replaces the value, frees the old item and counts once", () => {
  const { store } = makeStore();
  const c1 = store.link(allocOnly(store, "k", "one"));
  const h2 = allocOnly(store, "k", "two!");
  const c2 = store.link(h2);
  ok(c2 > c1);
  equal(get(store, "k"), "two!");
  equal(store.stats.currItems, 1);
  equal(store.stats.totalItems, 2);
  equal(store.stats.bytes, store.itemSize(h2));
  equal(store.itemSize(h2), HEADER_SIZE + 1 + 4 + 2);
});

function allocOnly(store: ReturnType<typeof makeStore>["store"], key: string, value: string) {
  const k = enc.encode(key);
  const v = enc.encode(value);
  const h = store.alloc(k, 0, k.length, 0, 0, v.length);
  store.buffer(h).set(v, store.valueOffset(h));
  return h;
}

Deno.test("link with an explicit cas keeps it; cas near 2**53 round-trips", () => {
  const { store } = makeStore();
  const big = 2 ** 53 - 1;
  const h = allocOnly(store, "c", "x");
  equal(store.link(h, big), big);
  equal(store.cas(find(store, "c")), big);
  store.setCas(h, 2 ** 52 + 12345);
  equal(store.cas(h), 2 ** 52 + 12345);
  store.setCas(h, 4294967296 + 7);
  equal(store.cas(h), 4294967296 + 7);
  let n = 2 ** 40;
  store.nextCas = () => ++n;
  const h2 = allocOnly(store, "d", "y");
  equal(store.link(h2), 2 ** 40 + 1);
  equal(store.cas(h2), 2 ** 40 + 1);
});

Deno.test("default cas counts from 1", () => {
  const { store } = makeStore();
  equal(store.link(allocOnly(store, "a", "1")), 1);
  equal(store.link(allocOnly(store, "b", "2")), 2);
});

Deno.test("200k keys survive hash table growth", () => {
  const { store } = makeStore({ memoryLimit: 256 * 1048576 });
  const startPower = store.stats.hashPowerLevel;
  const key = new Uint8Array(12);
  const N = 200_000;
  for (let i = 0; i < N; i++) {
    writeKey(key, i);
    const h = store.alloc(key, 0, 12, i, 0, 4);
    new DataView(store.buffer(h).buffer).setUint32(store.valueOffset(h), i, true);
    store.link(h);
    if (i % 50_000 === 0) {
      // Mid-growth lookups must see items in old and new buckets.
      for (let j = 0; j <= i; j += 997) {
        writeKey(key, j);
        ok(store.find(key, 0, 12) >= 0, `key ${j} lost at ${i}`);
      }
    }
  }
  ok(store.stats.hashPowerLevel > startPower);
  for (let i = 0; i < N; i++) {
    writeKey(key, i);
    const h = store.find(key, 0, 12);
    ok(h >= 0, `key ${i} missing`);
    if (store.flags(h) !== i) equal(store.flags(h), i);
  }
  equal(store.stats.currItems, N);
});

function writeKey(buf: Uint8Array, i: number): void {
  for (let d = buf.length - 1; d >= 0; d--) {
    buf[d] = 97 + (i % 26);
    i = Math.floor(i / 26);
  }
}

Deno.test("colliding keys in one bucket chain are told apart and unlinked individually", () => {
  const { store } = makeStore();
  // 70k keys over 65536 initial buckets guarantee chains of several items.
  const N = 70_000;
  for (let i = 0; i < N; i++) put(store, `c${i}`, `v${i}`);
  for (let i = 0; i < N; i += 3) store.unlink(find(store, `c${i}`));
  for (let i = 0; i < N; i++) {
    const v = get(store, `c${i}`);
    if (i % 3 === 0) equal(v, null);
    else equal(v, `v${i}`);
  }
});

Deno.test("unlink and free make handles reusable", () => {
  const { store } = makeStore();
  const h = put(store, "a", "1");
  store.unlink(h);
  equal(find(store, "a"), -1);
  equal(store.stats.currItems, 0);
  equal(store.stats.bytes, 0);
  const h2 = put(store, "b", "2");
  equal(h2, h);
  const k = enc.encode("z");
  const h3 = store.alloc(k, 0, 1, 0, 0, 1);
  store.free(h3);
  const h4 = store.alloc(k, 0, 1, 0, 0, 1);
  equal(h4, h3);
  equal(find(store, "z"), -1);
});

Deno.test("unlinked allocations are never evicted by later allocs", () => {
  const { store } = makeStore({ memoryLimit: 1048576 });
  const k = enc.encode("pending");
  const held = store.alloc(k, 0, k.length, 0, 0, 100);
  store.buffer(held).fill(55, store.valueOffset(held), store.valueOffset(held) + 100);
  for (let i = 0; i < 20_000; i++) ok(put(store, `k${i}`, "x".repeat(100)) >= 0);
  ok(store.stats.evictions > 0);
  equal(keyOf(store, held), "pending");
  equal(store.buffer(held)[store.valueOffset(held) + 99], 55);
  store.link(held);
  ok(find(store, "pending") >= 0);
});

Deno.test("items above maxItemSize are ALLOC_TOO_LARGE", () => {
  const { store } = makeStore({ maxItemSize: 1048576 });
  const k = enc.encode("big");
  equal(store.alloc(k, 0, 3, 0, 0, 1048576), ALLOC_TOO_LARGE);
  const { store: small } = makeStore({ maxItemSize: 1000 });
  equal(small.alloc(k, 0, 3, 0, 0, 1000), ALLOC_TOO_LARGE);
  ok(small.alloc(k, 0, 3, 0, 0, 900) >= 0);
});

Deno.test("large items up to 1 MiB are stored contiguously and counted against the limit", () => {
  const { store } = makeStore({ memoryLimit: 8 * 1048576 });
  // memcached's item_size_ok: its 48-byte header, the key's NUL, "\r\n" and 8 CAS bytes.
  const len = 1048576 - 48 - 1 - 10 - 2 - 8;
  equal(put(store, "large-key1", new Uint8Array(len + 1)), ALLOC_TOO_LARGE);
  const v = new Uint8Array(len);
  for (let i = 0; i < len; i++) v[i] = i * 7;
  const before = store.stats.totalMalloced;
  const h = put(store, "large-key1", v);
  ok(h >= 0);
  ok(store.stats.totalMalloced - before >= len);
  const g = find(store, "large-key1");
  const off = store.valueOffset(g);
  equal(store.valueLength(g), len);
  const got = store.buffer(g).subarray(off, off + len);
  ok(got.every((b, i) => b === ((i * 7) & 255)));
  equal(store.buffer(g)[off + len], 13);
  // Many large items under an 8 MiB limit: older ones are evicted, memory stays bounded.
  for (let i = 0; i < 30; i++) ok(put(store, `L${i}`, v.subarray(0, 600_000)) >= 0);
  ok(store.stats.evictions > 0);
  ok(store.stats.totalMalloced <= 8 * 1048576 + 1048576);
  ok(find(store, "L29") >= 0);
  store.unlink(find(store, "L29"));
  ok(store.slabStats().length > 0);
});

Deno.test("tiny memory limit (-m 1) still stores items of every size", () => {
  const { store } = makeStore({ memoryLimit: 1048576 });
  for (const size of [1, 100, 1000, 10_000, 100_000, 400_000, 700_000]) {
    ok(put(store, `s${size}`, "v".repeat(size)) >= 0, `size ${size}`);
    equal(get(store, `s${size}`)?.length, size);
  }
});

Deno.test("evict:false returns ALLOC_NO_MEMORY once the limit is reached", () => {
  const { store } = makeStore({ memoryLimit: 2 * 1048576, evict: false });
  let i = 0;
  let r = 0;
  while ((r = put(store, `k${i}`, "x".repeat(1000))) >= 0) i++;
  equal(r, ALLOC_NO_MEMORY);
  ok(i > 1000);
  equal(store.stats.evictions, 0);
  ok(get(store, "k0") !== null);
  const row = store.itemStats().find((s) =>
    s.fields.some(([n, v]) => n === "outofmemory" && v > 0)
  );
  ok(row);
});
