/**
 * flush_all on a serve thread other than the main one, replicated: the
 * thread's engine hands the flush to the main thread's merge through the
 * change ring, which applies it later. Meanwhile the store must not hold a
 * flush by this node's time, as memcached's single node would: under -C that
 * dropped the writes made in an immediate flush's second (the peer keeps
 * them), and a delayed one cancelled a flush that had come, bringing back
 * what it killed. And a peer's older write that the main thread merged in
 * between must go when it does apply it, as it goes on the peer. Nobody
 * drains the ring here: the main thread is that late.
 */

import { equal } from "../helpers/assert.ts";
import { defaultStartupSettings, Engine, ServerClock } from "../../lib/server/mod.ts";
import { createReplicationShare, WorkerReplication } from "../../lib/replication/mod.ts";
import { Applied, Merger } from "../../lib/replication/merge.ts";
import { HybridClock } from "../../lib/replication/versions.ts";

const enc = new TextEncoder();

/** A server clock that moves only when told: the second boundary never falls mid-test. */
class StillClock extends ServerClock {
  t = 10;
  override now(): number {
    return this.t;
  }
}

/** A worker thread's engine, replicated through a ring that nobody drains. */
function workerEngine(casEnabled: boolean) {
  const clock = new StillClock();
  const engine = new Engine({
    memoryLimit: 64 << 20,
    maxItemSize: 1 << 20,
    evict: true,
    startup: { ...defaultStartupSettings(), casEnabled },
  }, clock);
  const share = createReplicationShare(1 << 20, false);
  new WorkerReplication({ engine, barrier: undefined }, share);
  return { engine, clock, share };
}

/** A set as a command does it: alloc (which reclaims a dead LRU tail first), link, observer. */
function set(engine: Engine, key: string): void {
  const k = enc.encode(key);
  const h = engine.store.alloc(k, 0, k.length, 0, 0, 1);
  engine.store.buffer(h)[engine.store.valueOffset(h)] = 120;
  engine.store.link(h);
  engine.observer?.stored(h);
}

function live(engine: Engine, keys: string[]): string {
  return keys.filter((key) => {
    const k = enc.encode(key);
    return engine.store.find(k, 0, k.length) >= 0;
  }).join(" ");
}

const keys = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

Deno.test("worker thread, -C: the writes right after an immediate flush_all (its second) stay before the main thread applies it", () => {
  const { engine } = workerEngine(false);
  set(engine, "before");
  engine.flushAll(0);
  const after = keys("a", 10);
  for (const k of after) set(engine, k);
  equal(live(engine, ["before", ...after]), after.join(" "));
});

Deno.test("worker thread: a delayed flush_all brings back nothing that a delayed flush which came killed, before the main thread applies it", () => {
  const { engine, clock, share } = workerEngine(true);
  const old = keys("k", 10);
  for (const k of old) set(engine, k);
  // The main thread's merge applied a peer's delayed flush for the next second.
  const hlc = HybridClock.attach(share.clock);
  const merger = new Merger(engine.store, clock, hlc, 1024);
  merger.applyFlush(hlc.tick(), clock.processStartUnix + clock.t + 1, false);
  equal(live(engine, old.slice(0, 1)), "k0", "not due yet");
  clock.t++;
  equal(live(engine, old.slice(1, 2)), "", "due: k1 read and reaped");
  engine.flushAll(60);
  equal(live(engine, old), "");
});

Deno.test("worker thread: a peer's older write that the main thread merged before it read the thread's immediate flush_all goes, as on the peer", () => {
  const { engine, clock, share } = workerEngine(true);
  const hlc = HybridClock.attach(share.clock);
  const merger = new Merger(engine.store, clock, hlc, 1024);
  const older = hlc.tick(); // the peer's write, made before the flush and still on the way
  set(engine, "mine");
  engine.flushAll(0);
  const flush = hlc.tick(); // the version the thread's flush frame carries
  const v = enc.encode("x"), k = enc.encode("peer");
  equal(merger.applyItem(k, 0, k.length, v, 0, 1, 0, 0, older, 0, 0), Applied.CHANGED);
  set(engine, "after");
  merger.applyFlush(flush, 0, true, true);
  // The peer dropped its write with the flush (or refused it after it): so does this node.
  equal(live(engine, ["mine", "peer", "after"]), "after");
});
