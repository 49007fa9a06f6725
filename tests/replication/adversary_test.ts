/**
 * Adversarial runs checked against a model of acknowledged writes
 * (adversary.ts), not only for convergence: after each run every node must
 * hold, key by key, what the README's merge rules say (newest version wins,
 * deletes tombstone, flush_all an epoch): 0 stale, 0 lost, 0 resurrected.
 * Faults the other suites do not combine: a node SIGSTOPped for longer than
 * --repl-timeout while both sides write (its clients' requests and the
 * peer's frames wait in its socket buffers), a full copy under a flapping
 * link, kill -9 in the middle of a stop's drain, kill -9 and restart racing
 * deletes and flush_all, incr/append on both sides of a partition, and a
 * group of three with hung, killed and cut members. Seeds are in the test
 * names; MEMREP_CHAOS_SEED replays one.
 */

import { equal, ok } from "../helpers/assert.ts";
import { freePort, mulberry32, type Relay, startRelay, waitUntil } from "../helpers/mod.ts";
import { Model, runWriter, type WriterMix } from "./adversary.ts";
import { fill, type Node, replStats, sameContents, settled, startNode } from "./pair.ts";
import { sameEverywhere, settledGroup, startGroup } from "./group.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const envSeed = Number(Deno.env.get("MEMREP_CHAOS_SEED"));
const seedOf = () =>
  Number.isInteger(envSeed) && envSeed > 0 ? envSeed : 1 + Math.floor(Math.random() * 1e9);

/** A pair whose link runs through a relay (B dials A through it), for kill and restart. */
interface RelayedPair {
  a: Node;
  b: Node;
  relay: Relay;
  replPort: number;
  args: string[];
}

async function relayedPair(args: string[]): Promise<RelayedPair> {
  const replPort = freePort();
  const a = await startNode(replPort, args);
  await a.proc.waitForLog(/^replication: listen$/);
  const relay = startRelay(replPort);
  const b = await startNode(relay.port, args);
  await b.proc.waitForLog(/^replication: start/, 10_000);
  return { a, b, relay, replPort, args };
}

async function closePair(p: RelayedPair): Promise<void> {
  for (const n of [p.a, p.b]) n.proc.kill("SIGCONT");
  await p.relay.close();
  await Promise.all([p.a.proc.stop(), p.b.proc.stop()]);
}

/** Writers on `nodes` (two connections each, seeded) until `stop`; `nodes()` may change. */
function writers(
  nodes: () => Node[],
  model: Model,
  seed: number,
  mix: WriterMix,
  stop: () => boolean,
): Promise<void> {
  const one = async (n: number, w: number) => {
    const rnd = mulberry32(seed * 31 + n * 7 + w);
    // A writer whose node died starts again on the node now in that place.
    for (let round = 0; !stop(); round++) {
      await runWriter(nodes()[n], model, rnd, `${"ABCDE"[n]}${w}r${round}`, mix, stop);
      if (!stop()) await sleep(50);
    }
  };
  const all: Promise<void>[] = [];
  for (let n = 0; n < nodes().length; n++) for (let w = 0; w < 2; w++) all.push(one(n, w));
  return Promise.all(all).then(() => {});
}

/** Both nodes' violations of the model, and they hold the same items. */
async function check(model: Model, nodes: Node[], seed: number): Promise<void> {
  const bad: string[] = [];
  for (let i = 0; i < nodes.length; i++) bad.push(...await model.violations(nodes[i], "ABCDE"[i]));
  const c = model.counts;
  console.log(
    `seed ${seed}: ${c.writes} writes, ${c.deletes} deletes, ${c.flushes} flushes, ${c.refused} refused, ${c.unknown} unknown; ${bad.length} violations`,
  );
  ok(c.writes > 200, `seed ${seed}: writes were acknowledged (${c.writes})`);
  equal(bad.slice(0, 12).join("\n"), "", `seed ${seed}: ${bad.length} stale/lost/resurrected`);
  if (nodes.length === 2) await sameContents(nodes[0], nodes[1]);
  else await sameEverywhere(nodes);
}

/** What {@linkcode pairRun} gives its faults. */
interface PairRun {
  p: RelayedPair;
  /** Seeded like the writers' seed. */
  rnd: () => number;
  /** Ends the writers' rounds early (they are awaited after the faults anyway). */
  stop(): void;
  /** The writers' end. */
  work: Promise<void>;
}

/**
 * A relayed pair with `args` and seeded writers of `mix` on both nodes while
 * `faults` runs; then the writers stop, and once the pair has settled both
 * nodes are checked against the model.
 */
async function pairRun(
  seed: number,
  args: string[],
  mix: WriterMix,
  faults: (r: PairRun) => Promise<void>,
): Promise<void> {
  const rnd = mulberry32(seed);
  const p = await relayedPair(args);
  try {
    const model = new Model();
    let stopped = false;
    const work = writers(() => [p.a, p.b], model, seed, mix, () => stopped);
    await faults({ p, rnd, stop: () => stopped = true, work });
    stopped = true;
    await work;
    await settled(p.a, p.b, 30_000);
    await check(model, [p.a, p.b], seed);
  } finally {
    await closePair(p);
  }
}

for (const [threads, sync] of [["1", ""], ["2", ""], ["2", "--repl-sync"]]) {
  const seed = seedOf();
  Deno.test(`-t ${threads}${sync ? ` ${sync}` : ""}: a node SIGSTOPped past --repl-timeout while both sides write, then SIGCONT: nothing stale, lost or resurrected (seed ${seed})`, async () => {
    const syncArgs = sync ? [sync, "--repl-sync-timeout", "600"] : [];
    const args = ["--repl-timeout", "400", "-t", threads, ...syncArgs];
    await pairRun(seed, args, { keys: 40, flushEvery: 400 }, async ({ p, rnd, stop }) => {
      for (let end = Date.now() + 9000, last = false; !last;) {
        last = Date.now() >= end;
        await sleep(200 + rnd() * 600);
        const victim = rnd() < 0.5 ? p.a : p.b;
        victim.proc.kill("SIGSTOP");
        await sleep(500 + rnd() * 2000);
        // The last time, the writers stop while it is stopped: what it answers when it
        // wakes (its clients' requests and the peer's frames waited in its sockets) is last.
        if (last) {
          stop();
          await sleep(300);
        }
        victim.proc.kill("SIGCONT");
      }
    });
  });
}

{
  const seed = seedOf();
  Deno.test(`a full copy of 40k items under a flapping link while both sides write: nothing stale, lost or resurrected (seed ${seed})`, async () => {
    const rnd = mulberry32(seed);
    const args = ["--repl-timeout", "500", "-m", "64"];
    const replPort = freePort();
    const a = await startNode(replPort, args);
    const relay = startRelay(replPort);
    let b: Node | undefined;
    try {
      await a.proc.waitForLog(/^replication: listen$/);
      await fill(a, "pre", 40_000, 200);
      const model = new Model();
      let stopped = false;
      b = await startNode(relay.port, args);
      const work = writers(() => [a, b!], model, seed, { keys: 40, flushEvery: 0 }, () => stopped);
      for (const end = Date.now() + 8000; Date.now() < end;) {
        await sleep(100 + rnd() * 500);
        const kind = Math.floor(rnd() * 3);
        if (kind === 0) relay.drop();
        else if (kind === 1) {
          relay.pause();
          await sleep(rnd() * 900);
          relay.resume();
        } else {
          relay.blackhole(true);
          await sleep(rnd() * 700);
          relay.blackhole(false);
          relay.drop();
        }
      }
      stopped = true;
      await work;
      await settled(a, b, 60_000);
      const held = await replStats(b);
      console.log(`seed ${seed}: B received ${held.get("repl_full_copies_received")} copies`);
      await check(model, [a, b], seed);
    } finally {
      await relay.close();
      await Promise.all([a.proc.stop(), b?.proc.stop()]);
    }
  });
}

{
  const seed = seedOf();
  Deno.test(`--repl-sync: kill -9 and restart of either node racing deletes and flush_all: no acknowledged write lost, nothing resurrected (seed ${seed})`, async () => {
    await pairRun(
      seed,
      [
        "--repl-timeout",
        "500",
        "--repl-sync",
        "--repl-sync-timeout",
        "800",
      ],
      { keys: 30, flushEvery: 60 },
      async ({ p, rnd }) => {
        for (let round = 0; round < 3; round++) {
          await sleep(800 + rnd() * 1500);
          if (rnd() < 0.5) {
            p.b.proc.kill("SIGKILL");
            await p.b.proc.status;
            p.b = await startNode(p.relay.port, p.args, p.b.port);
          } else {
            p.a.proc.kill("SIGKILL");
            await p.a.proc.status;
            p.a = await startNode(p.replPort, p.args, p.a.port);
          }
        }
        await sleep(1500);
      },
    );
  });
}

{
  const seed = seedOf();
  Deno.test(`--repl-sync: kill -9 in the middle of a stop's drain (peer SIGSTOPped), peer resumed, node restarted: nothing lost or resurrected (seed ${seed})`, async () => {
    await pairRun(
      seed,
      [
        "--repl-timeout",
        "500",
        "--repl-sync",
        "--repl-sync-timeout",
        "800",
        "--repl-drain-timeout",
        "5000",
      ],
      { keys: 30, flushEvery: 200 },
      async ({ p, rnd }) => {
        for (let round = 0; round < 2; round++) {
          await sleep(1000 + rnd() * 1000);
          p.b.proc.kill("SIGSTOP");
          await sleep(rnd() * 300);
          const mark = p.a.proc.outputLines().length;
          p.a.proc.kill("SIGTERM");
          await p.a.proc.waitForLog(/^replication: cleanup \(/, 10_000, mark).catch(() => {});
          await sleep(rnd() * 1500);
          p.a.proc.kill("SIGKILL");
          await p.a.proc.status;
          p.b.proc.kill("SIGCONT");
          p.a = await startNode(p.replPort, p.args, p.a.port);
        }
        await sleep(1500);
      },
    );
  });
}

{
  const seed = seedOf();
  Deno.test(`partitions with incr, append, deletes and flush_all on both sides: nothing stale, lost or resurrected after the heal (seed ${seed})`, async () => {
    await pairRun(seed, ["--repl-timeout", "400", "--repl-backlog", "1m"], {
      keys: 20,
      flushEvery: 150,
    }, async ({ p, rnd, stop, work }) => {
      for (let end = Date.now() + 9000, last = false; !last;) {
        last = Date.now() >= end;
        await sleep(200 + rnd() * 800);
        p.relay.refuse(true);
        p.relay.drop();
        await sleep(300 + rnd() * 2500);
        if (last) {
          // The writers stop while cut: both sides' partition-time changes decide the end.
          stop();
          await work;
        }
        p.relay.refuse(false);
      }
    });
  });
}

{
  const seed = seedOf();
  Deno.test(`3 members --repl-sync=quorum: hung past the timeout, killed and restarted, cut links, while all write: nothing stale, lost or resurrected (seed ${seed})`, async () => {
    const rnd = mulberry32(seed);
    const g = await startGroup(
      3,
      ["--repl-timeout", "500", "--repl-sync=quorum", "--repl-sync-timeout", "800"],
      { relays: true },
    );
    try {
      const model = new Model();
      let stopped = false;
      const work = writers(
        () => g.nodes,
        model,
        seed,
        { keys: 30, flushEvery: 300 },
        () => stopped,
      );
      for (const end = Date.now() + 10_000; Date.now() < end;) {
        await sleep(300 + rnd() * 700);
        const i = Math.floor(rnd() * 3);
        const kind = Math.floor(rnd() * 3);
        if (kind === 0) {
          g.nodes[i].proc.kill("SIGSTOP");
          await sleep(600 + rnd() * 1500);
          g.nodes[i].proc.kill("SIGCONT");
        } else if (kind === 1) {
          g.nodes[i].proc.kill("SIGKILL");
          await g.nodes[i].proc.status;
          await g.restart(i);
        } else {
          const j = (i + 1 + Math.floor(rnd() * 2)) % 3;
          const r = g.relays[Math.min(i, j)][Math.max(i, j)];
          r.refuse(true);
          r.drop();
          await sleep(300 + rnd() * 1500);
          r.refuse(false);
        }
      }
      stopped = true;
      await work;
      await settledGroup(g.nodes, [0, 1, 2], 40_000);
      await waitUntil(
        async () => {
          const bad = await Promise.all(g.nodes.map((n, k) => model.violations(n, `${k}`)));
          return bad.every((b) => b.length === 0);
        },
        "the group to hold the model",
        10_000,
      ).catch(() => {});
      await check(model, g.nodes, seed);
    } finally {
      for (const n of g.nodes) n.proc.kill("SIGCONT");
      await g.close();
    }
  });
}
