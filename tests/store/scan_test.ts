import { equal, ok } from "../helpers/assert.ts";
import { find, keyOf, makeStore, put } from "./helpers.ts";

Deno.test("scan visits every live item exactly once while the store changes", () => {
  const { store, clock } = makeStore({ memoryLimit: 256 * 1048576 });
  const stable = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const key = `s${i}`;
    put(store, key, "v".repeat(i % 2000));
    stable.add(key);
  }
  // Volatile items: some deleted, some expired during the scan.
  for (let i = 0; i < 2000; i++) {
    put(store, `v${i}`, "w".repeat(i % 700), 0, i % 2 ? clock.t + 5 : 0);
  }
  const seen = new Map<string, number>();
  let cursor = 0;
  let round = 0;
  while (cursor !== -1) {
    cursor = store.scan(cursor, 97, (h) => {
      const k = keyOf(store, h);
      seen.set(k, (seen.get(k) ?? 0) + 1);
    });
    ok(cursor === -1 || cursor >= 0);
    round++;
    for (let j = 0; j < 20; j++) put(store, `n${round}_${j}`, "z".repeat(j * 37));
    for (let j = 0; j < 10; j++) {
      const h = find(store, `v${round * 10 + j}`);
      if (h >= 0) store.unlink(h);
    }
    if (round === 10) clock.t += 10;
  }
  for (const k of stable) equal(seen.get(k), 1, `stable key ${k} seen ${seen.get(k)} times`);
  for (const [k, n] of seen) equal(n, 1, `key ${k} seen ${n} times`);
  ok(round > 50);
});

Deno.test("scan skips expired items and returns -1 on an empty store", () => {
  const { store, clock } = makeStore();
  equal(store.scan(0, 10, () => {}), -1);
  put(store, "a", "1", 0, clock.t + 1);
  put(store, "b", "2");
  clock.t += 2;
  const keys: string[] = [];
  equal(store.scan(0, 10, (h) => keys.push(keyOf(store, h))), -1);
  equal(keys.join(), "b");
});
