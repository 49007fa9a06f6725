import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { SharedLock, Store, type StoreOptions } from "../../lib/store/mod.ts";
import { FakeClock, find, get, keyOf, put, sameBytes, valueFor } from "./helpers.ts";
import type { Job } from "./shared_worker.ts";

const enc = new TextEncoder();

/** Two Stores over one shared memory, same clock. */
function pair(opts: Partial<StoreOptions> = {}): { a: Store; b: Store; clock: FakeClock } {
  const clock = new FakeClock();
  const a = new Store(
    { memoryLimit: 64 * 1048576, maxItemSize: 1048576, evict: true, ...opts },
    clock,
  );
  const b = new Store({ memoryLimit: 1, maxItemSize: 1, evict: false }, clock, a.memory());
  return { a, b, clock };
}

function spawn(): Worker {
  return new Worker(new URL("./shared_worker.ts", import.meta.url).href, { type: "module" });
}

/** Runs `job` in worker `w` and returns its result (throws the worker's error). */
function run(w: Worker, job: Job): Promise<unknown> {
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => e.data.ok ? resolve(e.data.result) : reject(new Error(e.data.error));
    w.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
    };
    w.postMessage(job);
  });
}

Deno.test("two Stores over one memory see each other's sets, overwrites and deletes", () => {
  const { a, b } = pair();
  put(a, "k1", "from-a", 7);
  const h = find(b, "k1");
  ok(h >= 0);
  equal(get(b, "k1"), "from-a");
  equal(b.flags(h), 7);
  put(b, "k2", "from-b");
  equal(get(a, "k2"), "from-b");
  put(b, "k1", "overwritten-by-b");
  equal(get(a, "k1"), "overwritten-by-b");
  a.unlink(find(a, "k2"));
  equal(find(b, "k2"), -1);
  equal(a.stats.currItems, 1);
  equal(b.stats.currItems, 1);
  equal(b.stats.totalItems, 3);
  // cas is one shared counter.
  equal(a.cas(find(a, "k1")), 3);
  equal(b.link(b.alloc(enc.encode("k3"), 0, 2, 0, 0, 0)), 4);
  deepEqual(a.slabStats(), b.slabStats());
  deepEqual(a.itemStats(), b.itemStats());
  // Settings come from the memory, not from b's options.
  equal(b.stats.limitMaxbytes, 64 * 1048576);
  deepEqual(b.classSizes, a.classSizes);
});

Deno.test("evictions by one Store are seen by the other", () => {
  const { a, b } = pair({ memoryLimit: 1048576 });
  let i = 0;
  while (a.stats.evictions === 0) put(a, `k${i++}`, "x".repeat(500));
  equal(b.stats.evictions, 1);
  equal(find(b, "k0"), -1);
  ok(find(b, `k${i - 1}`) >= 0);
  // b evicts next: the tail (k1) goes, a sees it.
  put(b, `k${i}`, "y".repeat(500));
  equal(a.stats.evictions, 2);
  equal(find(a, "k1"), -1);
  equal(get(a, `k${i}`), "y".repeat(500));
});

Deno.test("hash growth by one Store is seen by the other during and after expansion", () => {
  const { a, b } = pair({ memoryLimit: 256 * 1048576 });
  const N = 150_000;
  let sawExpanding = false;
  for (let i = 0; i < N; i++) {
    put(a, `key-${i}`, `v${i}`);
    if (b.stats.hashIsExpanding && !sawExpanding) {
      sawExpanding = true;
      // Mid-expansion: b inserts and finds across split and unsplit buckets.
      put(b, "mid", "m");
      for (let j = 0; j <= i; j += 101) ok(find(b, `key-${j}`) >= 0, `key-${j} lost mid-growth`);
    }
  }
  ok(sawExpanding);
  ok(b.stats.hashPowerLevel > 16);
  equal(b.stats.hashPowerLevel, a.stats.hashPowerLevel);
  equal(b.stats.hashBytes, 4 * 2 ** b.stats.hashPowerLevel);
  for (let i = 0; i < N; i++) {
    const h = find(b, `key-${i}`);
    if (h < 0) ok(false, `key-${i} missing`);
  }
  equal(get(a, "mid"), "m");
  equal(b.stats.currItems, N + 1);
});

Deno.test("a Store's first lookup after another Store grew the hash table finds every key (no stale bucket view)", () => {
  // Each view below is one serve thread that sat idle while another one filled the cache past
  // 2^16 * 1.5 items: its first command then saw the old bucket array and missed keys of the
  // new upper half (a delete answered NOT_FOUND and left the item, a get missed, an add stored).
  const { a, clock } = pair({ memoryLimit: 256 * 1048576 });
  const views = Array.from(
    { length: 64 },
    () => new Store({ memoryLimit: 1, maxItemSize: 1, evict: false }, clock, a.memory()),
  );
  const N = 150_000;
  for (let i = 0; i < N; i++) put(a, `key-${i}`, `v${i}`);
  ok(a.stats.hashPowerLevel > 16, "the table grew");
  let missed = 0;
  for (let t = 0; t < views.length; t++) {
    const key = `key-${t * 2017}`;
    const h = find(views[t], key); // this view's first lookup since the growth
    if (h < 0 || keyOf(views[t], h) !== key) missed++;
  }
  equal(missed, 0, "keys missed by a view's first lookup after the growth");
  // Deletes through fresh stale views remove the item for everyone.
  const late = Array.from(
    { length: 32 },
    () => new Store({ memoryLimit: 1, maxItemSize: 1, evict: false }, clock, a.memory()),
  );
  for (let i = N; i < 2 * N; i++) put(a, `key-${i}`, `v${i}`); // the next growth
  let kept = 0;
  for (let t = 0; t < late.length; t++) {
    const key = `key-${N + t * 3001}`;
    const h = find(late[t], key);
    if (h >= 0) late[t].unlink(h);
    if (find(a, key) >= 0) kept++;
  }
  equal(kept, 0, "deleted keys still there");
});

Deno.test("flush by one Store empties the other, delayed flush too", () => {
  const { a, b, clock } = pair();
  for (let i = 0; i < 500; i++) put(a, `f${i}`, "v".repeat(i));
  b.flush(0);
  equal(a.stats.currItems, 0);
  equal(find(a, "f1"), -1);
  put(a, "old", "1");
  a.flush(5);
  clock.t += 5;
  equal(find(b, "old"), -1);
  equal(b.stats.getFlushed, 1);
  clock.t += 1;
  put(b, "new", "2");
  equal(get(a, "new"), "2");
});

Deno.test("large items take page runs visible to both; freed runs are reused", () => {
  const { a, b } = pair({ memoryLimit: 8 * 1048576, maxItemSize: 3 * 1048576 });
  for (let i = 0; i < 4; i++) ok(put(a, `L${i}`, valueFor(`L${i}`, i, true)) >= 0);
  // A 2.5 MiB item spans three pages.
  const huge = new Uint8Array(2_500_000).map((_, i) => i * 13);
  ok(put(b, "huge", huge) >= 0);
  const h = find(a, "huge");
  const at = a.valueOffset(h);
  ok(sameBytes(a.buffer(h).subarray(at, at + a.valueLength(h)), huge));
  for (let i = 0; i < 4; i++) {
    const g = find(b, `L${i}`);
    const o = b.valueOffset(g);
    ok(sameBytes(b.buffer(g).subarray(o, o + b.valueLength(g)), valueFor(`L${i}`, i, true)));
  }
  const malloced = a.stats.totalMalloced;
  equal(b.stats.totalMalloced, malloced);
  // Churn: runs are freed and reused, memory stays bounded.
  for (let i = 0; i < 40; i++) {
    ok(put(i % 2 ? a : b, `C${i}`, valueFor(`C${i}`, i, i % 3 !== 0)) >= 0);
  }
  ok(a.stats.totalMalloced <= 8 * 1048576 + 3 * 1048576);
  ok(a.stats.evictions > 0);
  const c = find(b, "C39");
  equal(keyOf(b, c), "C39");
});

Deno.test("memory() survives structuredClone and still shares the items", () => {
  const clock = new FakeClock();
  const a = new Store({ memoryLimit: 8 * 1048576, maxItemSize: 1048576, evict: true }, clock);
  const mem = structuredClone(a.memory());
  for (const v of Object.values(mem)) ok(typeof v === "number" || v instanceof SharedArrayBuffer);
  const b = new Store({ memoryLimit: 0, maxItemSize: 0, evict: false }, clock, mem);
  put(b, "x", "y");
  equal(get(a, "x"), "y");
});

Deno.test("a worker's Store follows page and bucket growth done by the main thread", async () => {
  const clock = { now: () => 100 };
  const store = new Store({ memoryLimit: 256 * 1048576, maxItemSize: 1048576, evict: true }, clock);
  const w = spawn();
  try {
    // The worker maps the store while it has no pages yet.
    deepEqual(await run(w, { kind: "read", memory: store.memory(), keys: ["none"] }), [null]);
    const N = 150_000;
    for (let i = 0; i < N; i++) put(store, `g${i}`, `value-${i}-${"z".repeat(i % 500)}`);
    ok(store.stats.hashPowerLevel > 16);
    ok(store.stats.totalMalloced > 16 * 1048576);
    const keys: string[] = [];
    for (let i = 0; i < N; i += 37) keys.push(`g${i}`);
    keys.push(`g${N - 1}`);
    const got = await run(w, { kind: "read", memory: store.memory(), keys }) as string[];
    for (let j = 0; j < keys.length; j++) {
      const i = Number(keys[j].slice(1));
      equal(got[j], `value-${i}-${"z".repeat(i % 500)}`);
    }
  } finally {
    w.terminate();
  }
});

Deno.test("two workers hammering one store under the SharedLock leave every key correct", async () => {
  const clock = { now: () => 100 };
  const store = new Store(
    { memoryLimit: 256 * 1048576, maxItemSize: 1048576, evict: false },
    clock,
  );
  const lock = new SharedLock();
  const workers = [spawn(), spawn()];
  try {
    const OPS = 20_000;
    const results = await Promise.all(workers.map((w, id) =>
      run(w, {
        kind: "hammer",
        memory: store.memory(),
        lock: lock.buffer,
        id,
        ops: OPS,
        keys: 400,
      })
    )) as Array<{ model: Array<[string, string]>; increments: number; mismatches: number }>;
    let expected = 0;
    for (const r of results) {
      equal(r.mismatches, 0);
      for (const [k, spec] of r.model) {
        const [n, len] = spec.split(":").map(Number);
        const kb = enc.encode(k);
        const h = store.find(kb, 0, kb.length);
        ok(h >= 0, `${k} missing`);
        const at = store.valueOffset(h);
        ok(
          sameBytes(
            store.buffer(h).subarray(at, at + store.valueLength(h)),
            valueFor(k, n, len >= 600_000),
          ),
          `${k} has the wrong value`,
        );
        expected++;
      }
    }
    const increments = results[0].increments + results[1].increments;
    ok(results[0].increments > 0 && results[1].increments > 0);
    equal(get(store, "ctr"), String(increments));
    equal(store.stats.currItems, expected + 1);
    equal(store.stats.evictions, 0);
    // Every linked item is reachable by a scan exactly once.
    let scanned = 0;
    let cursor = 0;
    while (cursor !== -1) cursor = store.scan(cursor, 1000, () => scanned++);
    equal(scanned, expected + 1);
  } finally {
    for (const w of workers) w.terminate();
  }
});

Deno.test("SharedLock excludes workers from each other and wakes sleeping waiters", async () => {
  const lock = new SharedLock();
  const counter = new SharedArrayBuffer(8);
  const word = new Int32Array(lock.buffer);
  const workers = [spawn(), spawn()];
  try {
    // Held here first: both workers must block, the second marks the word contended.
    lock.acquire();
    const ROUNDS = 50_000;
    const done = workers.map((w) =>
      run(w, { kind: "count", lock: lock.buffer, counter, rounds: ROUNDS })
    );
    const deadline = Date.now() + 5000;
    while (Atomics.load(word, 0) !== 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    equal(Atomics.load(word, 0), 2);
    equal(new Int32Array(counter)[0], 0);
    lock.release();
    await Promise.all(done);
    equal(new Int32Array(counter)[0], 2 * ROUNDS);
    equal(Atomics.load(word, 0), 0);
  } finally {
    for (const w of workers) w.terminate();
  }
});
