/**
 * Worker side of shared_test.ts: attaches a Store to shared memory and runs
 * the job posted to it under the SharedLock, then posts the result.
 * @module
 */

import { SharedLock, Store, type StoreMemory } from "../../lib/store/mod.ts";
import { sameBytes, valueFor } from "./helpers.ts";

/** A job for this worker. */
export type Job =
  | {
    kind: "hammer";
    memory: StoreMemory;
    lock: SharedArrayBuffer;
    id: number;
    ops: number;
    keys: number;
  }
  | { kind: "count"; lock: SharedArrayBuffer; counter: SharedArrayBuffer; rounds: number }
  | { kind: "read"; memory: StoreMemory; keys: string[] };

const enc = new TextEncoder();
const dec = new TextDecoder();
const clock = { now: () => 100 };
let attached: Store | undefined;

/** Deterministic xorshift so failures replay. */
function rng(seed: number): () => number {
  let x = seed | 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Random set/get/delete on this worker's keys plus increments of a shared "ctr" key. */
function hammer(job: Extract<Job, { kind: "hammer" }>): unknown {
  const store = new Store({ memoryLimit: 0, maxItemSize: 0, evict: true }, clock, job.memory);
  const lock = new SharedLock(job.lock);
  const next = rng(job.id * 7919 + 1);
  const model = new Map<string, string>();
  let increments = 0;
  let mismatches = 0;
  const ctrKey = enc.encode("ctr");
  for (let op = 0; op < job.ops; op++) {
    const r = next();
    const k = `w${job.id}:${r % job.keys}`;
    const kb = enc.encode(k);
    const kind = (r >>> 12) % 10;
    lock.acquire();
    try {
      if (kind < 4) {
        const v = valueFor(k, op, (r >>> 20) % 200 === 0);
        const h = store.alloc(kb, 0, kb.length, job.id, 0, v.length);
        if (h < 0) throw new Error(`alloc failed: ${h}`);
        store.buffer(h).set(v, store.valueOffset(h));
        store.link(h);
        model.set(k, `${op}:${v.length}`);
      } else if (kind < 5) {
        const h = store.find(kb, 0, kb.length);
        if ((h >= 0) !== model.has(k)) mismatches++;
        if (h >= 0) store.unlink(h);
        model.delete(k);
      } else if (kind < 9) {
        const h = store.find(kb, 0, kb.length);
        if ((h >= 0) !== model.has(k)) mismatches++;
        if (h >= 0) {
          store.bump(h);
          const [n, len] = model.get(k)!.split(":").map(Number);
          const want = valueFor(k, n, len >= 600_000);
          const at = store.valueOffset(h);
          if (!sameBytes(store.buffer(h).subarray(at, at + store.valueLength(h)), want)) {
            mismatches++;
          }
        }
      } else {
        // Read-modify-write of one key shared by all workers: lost updates show a broken lock.
        const h = store.find(ctrKey, 0, 3);
        const at = h >= 0 ? store.valueOffset(h) : 0;
        const cur = h >= 0
          ? Number(dec.decode(store.buffer(h).subarray(at, at + store.valueLength(h))))
          : 0;
        const v = enc.encode(String(cur + 1));
        const n = store.alloc(ctrKey, 0, 3, 0, 0, v.length);
        store.buffer(n).set(v, store.valueOffset(n));
        store.link(n);
        increments++;
      }
    } finally {
      lock.release();
    }
  }
  return { model: [...model], increments, mismatches };
}

/** Non-atomic read-increment-write of a shared int under the lock. */
function count(job: Extract<Job, { kind: "count" }>): unknown {
  const lock = new SharedLock(job.lock);
  const c = new Int32Array(job.counter);
  for (let i = 0; i < job.rounds; i++) {
    lock.acquire();
    const v = c[0];
    // Widen the race window: a broken lock loses updates here.
    for (let j = 0; j < 20; j++) c[1] += j;
    c[0] = v + 1;
    lock.release();
  }
  return job.rounds;
}

/** Values of `keys` as strings (null when missing), attaching once and reusing the Store. */
function read(job: Extract<Job, { kind: "read" }>): unknown {
  attached ??= new Store({ memoryLimit: 0, maxItemSize: 0, evict: true }, clock, job.memory);
  const store = attached;
  return job.keys.map((k) => {
    const kb = enc.encode(k);
    const h = store.find(kb, 0, kb.length);
    if (h < 0) return null;
    const at = store.valueOffset(h);
    return dec.decode(store.buffer(h).subarray(at, at + store.valueLength(h)));
  });
}

/** The worker global, typed here because this file is also type-checked with the window lib. */
const scope = self as unknown as {
  onmessage: (e: MessageEvent<Job>) => void;
  postMessage(message: unknown): void;
};

scope.onmessage = (e: MessageEvent<Job>) => {
  const job = e.data;
  try {
    const result = job.kind === "hammer"
      ? hammer(job)
      : job.kind === "count"
      ? count(job)
      : read(job);
    scope.postMessage({ ok: true, result });
  } catch (err) {
    scope.postMessage({ ok: false, error: String((err as Error)?.stack ?? err) });
  }
};
