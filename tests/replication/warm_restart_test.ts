/**
 * Warm restart of a replicated node (`serve -e` with replication): the
 * restarted node resumes from its peer's backlog instead of taking a full
 * copy, gets every write, overwrite and delete made on the peer while it was
 * down, and gives the peer the writes it had not delivered before stopping;
 * when the peer's backlog overflowed meanwhile, a full copy follows and the
 * result is still exact. Every case checks both nodes against what the
 * clients were told (0 stale, lost or resurrected keys) and against each
 * other (values, flags, versions, expiry).
 * @module
 */

import {
  equal,
  freePort,
  match,
  ok,
  type Relay,
  startMemrep,
  startRelay,
  waitUntil,
} from "../helpers/mod.ts";
import { client, contents, type Node, replStat, sameContents, settled, startNode } from "./pair.ts";
import {
  deleteKeys,
  exitCode,
  matchesModel,
  type Model,
  pick,
  prng,
  seedOf,
  setKeys,
} from "./warm.ts";

const enc = new TextEncoder();

/** B linked, its full copy (and sweep) done within `ms`, then both settled. */
async function copiedAndSettled(a: Node, b: Node, what: string, ms: number): Promise<void> {
  await b.proc.waitForLog(/^replication: start/, 20_000);
  await waitUntil(async () => (await replStat(b, "repl_copy_in_progress")) === 0, what, ms);
  await settled(a, b, 20_000);
}

/** A pair A (stays up) and B (restarted with `-e`), optionally B's link through a relay. */
interface WarmPair {
  /** The node that stays up. */
  a: Node;
  /** B as started last (each {@linkcode WarmPair.startB} replaces it). */
  b: Node;
  /** B's `-e` image. */
  file: string;
  /** What the clients were told. */
  model: Model;
  /** Between B and A's replication port, when asked for. */
  relay: Relay;
  /** Starts B (again, on its port) with `-e file` and the pair's flags for B. */
  startB(): Promise<Node>;
}

/**
 * Starts A, waits for its replication listener, starts B (through a relay
 * with `relayed`; not at all with `startB: false`: the body does it) and
 * waits for B's link; then runs `body` and stops everything.
 */
async function withWarmPair(
  opts: { aArgs?: string[]; bArgs?: string[]; relayed?: boolean; startB?: boolean },
  body: (p: WarmPair) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "memrep_warm_repl_" });
  const file = `${dir}/b`;
  const replPort = freePort();
  const bArgs = ["-e", file, ...opts.bArgs ?? []];
  const a = await startNode(replPort, opts.aArgs ?? []);
  let relay: Relay | undefined;
  let b: Node | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen/, 10_000);
    if (opts.relayed) relay = startRelay(replPort);
    const pair: WarmPair = {
      a,
      get b(): Node {
        if (b === undefined) throw new Error("B was not started");
        return b;
      },
      file,
      model: new Map(),
      get relay(): Relay {
        if (relay === undefined) throw new Error("the pair has no relay");
        return relay;
      },
      async startB(): Promise<Node> {
        b = await startNode(relay?.port ?? replPort, bArgs, b?.port);
        return b;
      },
    };
    if (opts.startB !== false) {
      await pair.startB();
      await pair.b.proc.waitForLog(/^replication: start/, 10_000);
    }
    await body(pair);
  } finally {
    await relay?.close();
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
    await Deno.remove(dir, { recursive: true });
  }
}

interface Scenario {
  /** Extra flags for A (the node that stays up). */
  aArgs?: string[];
  /** Extra flags for B (the node restarted). */
  bArgs?: string[];
  /** Bytes per value written on A while B is down, and how many new keys. */
  downSize: number;
  downKeys: number;
  /** How B is stopped. */
  signal: "SIGUSR1" | "SIGTERM";
  /** B answers only once caught up: check it the moment its port answers. */
  freshOnStart?: boolean;
}

/**
 * Pair A and B (B with -e), write on both, stop B by `signal`, overwrite,
 * delete and add keys on A meanwhile, start B again with the same -e. Returns
 * the nodes' stats deltas for the caller's assertions; both nodes are
 * checked against the model.
 */
async function restartScenario(s: Scenario): Promise<Map<string, number>> {
  const rnd = prng(seedOf());
  const out = new Map<string, number>();
  await withWarmPair({ aArgs: s.aArgs, bArgs: s.bArgs }, async (p) => {
    const { a, model } = p;
    let b = p.b;
    const onA = Array.from({ length: 1500 }, (_, i) => `a:${i}`);
    const onB = Array.from({ length: 1500 }, (_, i) => `b:${i}`);
    await setKeys(a, onA, model);
    await setKeys(b, onB, model);
    await deleteKeys(b, pick(onA, 100, rnd), model); // tombstones on B, applied on A
    await settled(a, b);
    const before = new Map<string, number>();
    for (
      const n of ["repl_full_copies_sent", "repl_partial_resyncs", "repl_full_copies_received"]
    ) {
      before.set(`a.${n}`, await replStat(a, n));
    }
    const closed = a.proc.outputLines().length;
    b.proc.kill(s.signal);
    equal(await exitCode(b), 0);
    match(b.proc.stderrLines().join("\n"), /\[restart\] saved 2900 items .*replication state/);
    await a.proc.waitForLog(/^replication: close/, 10_000, closed);
    // While B is down: A overwrites, deletes (keys of both nodes) and adds.
    const all = [...onA, ...onB].filter((k) => model.get(k) !== null);
    const touched = pick(all, 1200, rnd);
    await setKeys(a, touched.slice(0, 600), model);
    await deleteKeys(a, touched.slice(600), model);
    await setKeys(a, Array.from({ length: s.downKeys }, (_, i) => `down:${i}`), model, s.downSize);
    const aLines = a.proc.outputLines().length;
    b = await p.startB();
    match(b.proc.stderrLines().join("\n"), /\[restart\] loaded 2900 items/);
    if (s.freshOnStart) await matchesModel(b, model, "B as soon as it answers");
    await Promise.all([
      a.proc.waitForLog(/^replication: start/, 20_000, aLines),
      b.proc.waitForLog(/^replication: start/, 20_000),
    ]);
    await settled(a, b, 20_000);
    await matchesModel(a, model, "A");
    await matchesModel(b, model, "B");
    await sameContents(a, b);
    // Writes after the restart flow both ways (B's clock is past every restored version).
    const after = Array.from({ length: 200 }, (_, i) => `after:${i}`);
    await setKeys(b, after.slice(0, 100), model);
    await setKeys(a, after.slice(100), model);
    await setKeys(b, touched.slice(0, 50), model); // B overwrites keys A wrote while it was down
    await settled(a, b);
    await matchesModel(a, model, "A after");
    await sameContents(a, b);
    for (
      const n of ["repl_full_copies_sent", "repl_partial_resyncs", "repl_full_copies_received"]
    ) {
      out.set(`a.${n}`, (await replStat(a, n)) - before.get(`a.${n}`)!);
    }
    for (
      const n of [
        "repl_full_copies_sent",
        "repl_partial_resyncs",
        "repl_full_copies_received",
        "repl_warm_restored",
        "repl_warm_resumes",
      ]
    ) {
      out.set(`b.${n}`, await replStat(b, n));
    }
    console.log(JSON.stringify(Object.fromEntries(out)));
  });
  return out;
}

Deno.test("warm restart in a pair: the restarted node catches up from the peer's backlog, no full copy, exact", async () => {
  const st = await restartScenario({
    downSize: 40,
    downKeys: 500,
    signal: Math.random() < 0.5 ? "SIGUSR1" : "SIGTERM",
    freshOnStart: true,
  });
  equal(st.get("b.repl_warm_restored"), 1);
  equal(st.get("b.repl_warm_resumes"), 1, "B resumed from A's backlog");
  equal(st.get("a.repl_full_copies_sent"), 0, "A sent no full copy");
  equal(st.get("b.repl_full_copies_received"), 0);
  ok(st.get("a.repl_partial_resyncs")! >= 1, "A resumed B from its backlog");
  // B went on with its own stream: A resumed it, no copy the other way either.
  equal(st.get("b.repl_full_copies_sent"), 0);
  equal(st.get("a.repl_full_copies_received"), 0);
  ok(st.get("b.repl_partial_resyncs")! >= 1);
});

Deno.test("warm restart in a pair: with serve threads on both nodes, the same (backlog, no full copy, exact)", async () => {
  const st = await restartScenario({
    aArgs: ["-t", "2"],
    bArgs: ["-t", "2"],
    downSize: 40,
    downKeys: 500,
    signal: "SIGUSR1",
  });
  equal(st.get("b.repl_warm_resumes"), 1, "B resumed from A's backlog");
  equal(st.get("a.repl_full_copies_sent"), 0, "A sent no full copy");
  equal(st.get("b.repl_full_copies_sent"), 0);
});

Deno.test("warm restart in a pair: when the peer's backlog overflowed meanwhile, a full copy follows, still exact", async () => {
  // A's backlog holds about 2 MiB (two of the largest items plus 64k): 3000 x 1 KiB overflow it.
  const st = await restartScenario({
    aArgs: ["--repl-backlog", "1m"],
    downSize: 1024,
    downKeys: 3000,
    signal: Math.random() < 0.5 ? "SIGUSR1" : "SIGTERM",
  });
  equal(st.get("b.repl_warm_restored"), 1);
  equal(st.get("b.repl_warm_resumes"), 0);
  equal(st.get("a.repl_full_copies_sent"), 1, "A's backlog no longer had B's position");
  equal(st.get("b.repl_full_copies_received"), 1);
  // A still had all of B's stream: that direction resumed.
  equal(st.get("b.repl_full_copies_sent"), 0);
  equal(st.get("a.repl_full_copies_received"), 0);
});

Deno.test("warm restart in a pair: writes the peer never got before the stop are in the image and reach it after the restart", async () => {
  const rnd = prng(seedOf());
  const args = ["--repl-timeout", "1000"];
  const bArgs = [...args, "--repl-drain-timeout", "200"];
  await withWarmPair({ aArgs: args, bArgs, relayed: true }, async (p) => {
    const { a, model, relay } = p;
    let b = p.b;
    const keys = Array.from({ length: 1000 }, (_, i) => `k:${i}`);
    await setKeys(a, keys, model);
    await settled(a, b);
    const copiesA = await replStat(a, "repl_full_copies_received");
    // The link goes silent: what B writes now never reaches A before B stops.
    relay.blackhole(true);
    const unsent = Array.from({ length: 300 }, (_, i) => `unsent:${i}`);
    await setKeys(b, unsent, model);
    await setKeys(b, pick(keys, 200, rnd), model);
    await deleteKeys(b, pick(keys, 100, rnd).filter((k) => model.get(k) !== null), model);
    b.proc.kill("SIGUSR1");
    equal(await exitCode(b), 0);
    match(b.proc.outputLines().join("\n"), /cleanup incomplete/);
    await a.proc.waitForLog(/^replication: close/, 10_000);
    equal((await contents(a)).has("unsent:0"), false, "A did not get B's last writes before");
    relay.blackhole(false);
    b = await p.startB();
    await b.proc.waitForLog(/^replication: start/, 20_000);
    await settled(a, b, 20_000);
    await matchesModel(a, model, "A");
    await matchesModel(b, model, "B");
    await sameContents(a, b);
    equal(await replStat(b, "repl_full_copies_sent"), 0, "B resumed its own stream");
    equal(await replStat(a, "repl_full_copies_received"), copiesA);
    equal(await replStat(b, "repl_full_copies_received"), 0);
    equal(await replStat(b, "repl_warm_resumes"), 1);
  });
});

Deno.test("warm restart in a pair: an image without replication state (saved unreplicated) gets a full copy, no stale data", async () => {
  await withWarmPair({ startB: false }, async (p) => {
    const { a, file, model } = p;
    // B alone first (no replication): older values of keys A writes later.
    const alone = await startMemrep(["serve", "-e", file]);
    const keys = Array.from({ length: 300 }, (_, i) => `s:${i}`);
    await setKeys({ proc: alone, port: alone.port }, keys, model);
    alone.kill("SIGUSR1");
    equal((await alone.status).code, 0);
    await alone.stop();
    await setKeys(a, keys.slice(0, 200), model); // newer on A
    await setKeys(a, Array.from({ length: 100 }, (_, i) => `a:${i}`), model);
    const b = await p.startB();
    match(b.proc.stderrLines().join("\n"), /\[restart\] loaded 300 items/);
    await copiedAndSettled(a, b, "copy", 10_000);
    equal(await replStat(b, "repl_warm_restored"), 0);
    equal(await replStat(b, "repl_warm_resumes"), 0);
    equal(await replStat(b, "repl_full_copies_received"), 1);
    await matchesModel(a, model, "A");
    await matchesModel(b, model, "B");
    await sameContents(a, b);
  });
});

/**
 * A write on A crosses a delete (or flush_all, or a newer write that
 * expires) on B: B's change is newer and reaches A, A's older write does not
 * reach B before B stops. After the restart A's backlog sends that write;
 * only the restored tombstone (flush epoch, expiry guard) keeps B from
 * storing it, which A no longer has. For `expire`, half of B's items were
 * found expired by a read before the stop (only the guard is left), the
 * others are still in the image (found expired when A's write comes).
 */
async function crossedDelete(how: "delete" | "flush_all" | "expire"): Promise<void> {
  const args = ["--repl-timeout", "6000"]; // B hears nothing from A for a while: no timeout
  const bArgs = [...args, "--repl-drain-timeout", "300"];
  await withWarmPair({ aArgs: args, bArgs, relayed: true }, async (p) => {
    const { a, model, relay } = p;
    let b = p.b;
    const keys = Array.from({ length: 500 }, (_, i) => `k:${i}`);
    await setKeys(a, keys, model);
    await settled(a, b);
    // From now on nothing from A reaches B (B -> A still flows).
    relay.tamper((_chunk, toTarget) => toTarget ? null : new Uint8Array(0));
    await setKeys(a, keys.slice(0, 100), model); // older than what B does next
    await new Promise((r) => setTimeout(r, 20));
    const cb = await client(b);
    if (how === "delete") {
      for (const k of keys.slice(0, 100)) ok(await cb.delete(k), `delete ${k} on B`);
      for (const k of keys.slice(0, 100)) model.set(k, null);
    } else if (how === "expire") {
      for (const k of keys.slice(0, 100)) ok(await cb.set(k, enc.encode(`B-${k}`), 0, 1), k);
      for (const k of keys.slice(0, 100)) model.set(k, null);
      await new Promise((r) => setTimeout(r, 2300)); // expired on B (and on A, which took them)
      for (let i = 0; i < 100; i += 2) equal((await cb.get(keys[i])).size, 0, `${keys[i]} expired`);
    } else {
      await cb.flushAll();
      for (const k of keys) model.set(k, null);
    }
    cb.close();
    // A applied B's change (and dropped its own older write).
    await waitUntil(async () => !(await contents(a)).has("k:0"), `A applies B's ${how}`, 10_000);
    await matchesModel(a, model, "A before the restart");
    b.proc.kill("SIGUSR1");
    equal(await exitCode(b), 0);
    relay.tamper(null);
    relay.drop();
    b = await p.startB();
    await b.proc.waitForLog(/^replication: start/, 20_000);
    await settled(a, b, 20_000);
    await matchesModel(b, model, "B");
    ok(await replStat(b, "repl_changes_ignored") >= 100, "A's older writes came and were refused");
    equal(await replStat(b, "repl_full_copies_received"), 0);
    await matchesModel(a, model, "A");
    await sameContents(a, b);
  });
}

Deno.test("warm restart in a pair: restored tombstones refuse the peer's older writes of keys deleted here", async () => {
  await crossedDelete("delete");
});

Deno.test("warm restart in a pair: the restored flush epoch refuses the peer's writes older than a flush_all here", async () => {
  await crossedDelete("flush_all");
});

Deno.test("warm restart in a pair: restored expiry guards refuse the peer's older writes of keys whose newer write expired here", async () => {
  await crossedDelete("expire");
});

Deno.test("warm restart in a pair: a damaged replication state is ignored (the cache loads, a full copy follows, exact)", async () => {
  await withWarmPair({}, async (p) => {
    const { a, file, model } = p;
    let b = p.b;
    const keys = Array.from({ length: 400 }, (_, i) => `k:${i}`);
    await setKeys(b, keys, model);
    await settled(a, b);
    b.proc.kill("SIGUSR1");
    equal(await exitCode(b), 0);
    await deleteKeys(a, keys.slice(0, 100), model);
    // Flip a byte inside the replication state (the last section of the file).
    const image = await Deno.readFile(file);
    const extra = new DataView(image.buffer).getFloat64(140, true);
    ok(extra > 0, "the image has a replication state");
    image[image.length - extra + 9] ^= 0x40;
    await Deno.writeFile(file, image);
    b = await p.startB();
    const err = b.proc.stderrLines().join("\n");
    match(err, /extra section checksum mismatch, ignored/);
    match(err, /\[restart\] loaded 400 items/);
    await copiedAndSettled(a, b, "copy", 10_000);
    equal(await replStat(b, "repl_warm_restored"), 0);
    equal(await replStat(b, "repl_full_copies_received"), 1);
    await matchesModel(a, model, "A");
    await matchesModel(b, model, "B");
    await sameContents(a, b);
  });
});

Deno.test("warm restart in a pair: more deletes on the peer than it keeps tombstones, then a full copy: the restored agreement drops them here", async () => {
  // A keeps 65536 tombstones (the least), and its backlog (about 2 MiB) overflows.
  await withWarmPair({ aArgs: ["--repl-backlog", "1m"] }, async (p) => {
    const { a, model } = p;
    let b = p.b;
    const keys = Array.from({ length: 68_000 }, (_, i) => `d:${i}`);
    await setKeys(a, keys, model, 10);
    await setKeys(b, keys.slice(0, 1000), model, 10); // some of them B's own
    await settled(a, b, 20_000);
    b.proc.kill("SIGUSR1");
    equal(await exitCode(b), 0);
    await deleteKeys(a, keys, model);
    ok(await replStat(a, "repl_tombstones") < keys.length, "A dropped tombstones");
    await setKeys(a, Array.from({ length: 2500 }, (_, i) => `new:${i}`), model, 1000);
    b = await p.startB();
    await copiedAndSettled(a, b, "copy and sweep", 20_000);
    equal(await replStat(b, "repl_full_copies_received"), 1);
    await matchesModel(b, model, "B");
    await matchesModel(a, model, "A");
    ok(await replStat(b, "repl_copy_items_dropped") >= keys.length - 65536);
  });
});

Deno.test("warm restart in a pair: two restarts in a row (a restored stream saved again), with writes on both nodes while B stops, stay exact without a full copy", async () => {
  const rnd = prng(seedOf());
  await withWarmPair({}, async (p) => {
    const { a, model } = p;
    let b = p.b;
    const keys = Array.from({ length: 2000 }, (_, i) => `r:${i}`);
    await setKeys(a, keys, model);
    // The first pairing was a (tiny) full copy each way; none after this.
    const sentA = await replStat(a, "repl_full_copies_sent");
    const receivedA = await replStat(a, "repl_full_copies_received");
    for (let round = 0; round < 2; round++) {
      await setKeys(b, pick(keys, 300, rnd), model);
      await deleteKeys(b, pick(keys, 50, rnd), model);
      await settled(a, b);
      // A keeps writing while B stops: B applies what arrives until its link closes.
      const during = pick(keys, 400, rnd);
      const closed = a.proc.outputLines().length;
      const writing = setKeys(a, during, model);
      b.proc.kill(rnd() < 0.5 ? "SIGUSR1" : "SIGTERM");
      await writing;
      equal(await exitCode(b), 0);
      await a.proc.waitForLog(/^replication: close/, 10_000, closed);
      await deleteKeys(a, pick(keys, 100, rnd), model);
      await setKeys(a, pick(keys, 200, rnd), model);
      b = await p.startB();
      await b.proc.waitForLog(/^replication: start/, 20_000);
      await settled(a, b, 20_000);
      await matchesModel(b, model, `B after restart ${round + 1}`);
      await sameContents(a, b);
      equal(await replStat(b, "repl_full_copies_received"), 0, `round ${round + 1}: no copy to B`);
      equal(await replStat(b, "repl_full_copies_sent"), 0, `round ${round + 1}: no copy to A`);
    }
    equal(await replStat(a, "repl_full_copies_sent"), sentA);
    equal(await replStat(a, "repl_full_copies_received"), receivedA);
    await matchesModel(a, model, "A");
  });
});
