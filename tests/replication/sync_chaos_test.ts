/**
 * `--repl-sync` (pair) and `--repl-sync=quorum` (3 members) while the links
 * flap at random (dropped, hung, black-holed, refused), then kill -9 of the
 * writer with writes in flight: every write acknowledged to a client (set
 * STORED, delete DELETED or NOT_FOUND) must be on the survivors, with that
 * value or one written after it (not acknowledged). Seed in the test name;
 * MEMREP_CHAOS_SEED replays one.
 */

import { equal, ok } from "../helpers/assert.ts";
import { mulberry32, type Relay } from "../helpers/mod.ts";
import { client, type Node, withRelayedPair } from "./pair.ts";
import { startGroup } from "./group.ts";

const CHAOS_MS = 5000;
const enc = new TextEncoder(), dec = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SYNC = ["--repl-timeout", "500", "--repl-sync-timeout", "800"];

/** What a key may hold: its last acknowledged state, or a write issued after it. */
interface KeyState {
  /** null: nothing acknowledged yet; undefined: an acknowledged delete. */
  acked: string | undefined | null;
  later: Set<string | undefined>;
}

type Keys = Map<string, KeyState>;

/** Sets and deletes, one at a time, on 200 keys of its own, until the node dies or `stop`. */
async function writer(node: Node, w: number, seed: number, keys: Keys, stop: () => boolean) {
  const rnd = mulberry32(seed * 17 + w);
  const c = await client(node);
  try {
    for (let i = 0; !stop(); i++) {
      const k = `sync${w}-${Math.floor(rnd() * 200)}`;
      let st = keys.get(k);
      if (st === undefined) keys.set(k, st = { acked: null, later: new Set() });
      const del = rnd() < 0.2;
      const v = `w${w}-${i}`;
      st.later.add(del ? undefined : v);
      try {
        const stored = del ? await c.delete(k) : await c.set(k, enc.encode(v));
        if (del || stored) st = { acked: del ? undefined : v, later: new Set() };
        keys.set(k, st);
      } catch {
        // SERVER_ERROR replication peer unavailable (not acknowledged), or the node died
        if (c.closed) return;
      }
    }
  } finally {
    c.close();
  }
}

async function flap(relays: Relay[], rnd: () => number, stop: () => boolean) {
  while (!stop()) {
    await sleep(50 + rnd() * 600);
    const relay = relays[Math.floor(rnd() * relays.length)];
    const kind = Math.floor(rnd() * 4);
    if (kind === 0) relay.drop();
    else if (kind === 1) {
      relay.pause();
      await sleep(rnd() * 1200);
      relay.resume();
    } else if (kind === 2) {
      relay.blackhole(true);
      await sleep(rnd() * 900);
      relay.blackhole(false);
      relay.drop();
    } else {
      relay.refuse(true);
      relay.drop();
      await sleep(rnd() * 700);
      relay.refuse(false);
    }
  }
  for (const relay of relays) {
    relay.resume();
    relay.blackhole(false);
    relay.refuse(false);
  }
}

/** The acknowledged writes `node` lacks (or holds older than acknowledged). */
async function lost(node: Node, keys: Keys): Promise<string[]> {
  const c = await client(node);
  const out: string[] = [];
  try {
    const list = [...keys.keys()];
    for (let i = 0; i < list.length; i += 200) {
      const got = await c.get(list.slice(i, i + 200));
      for (const k of list.slice(i, i + 200)) {
        const st = keys.get(k) as KeyState;
        if (st.acked === null) continue;
        const item = got.get(k);
        const v = item === undefined ? undefined : dec.decode(item.value);
        if (v !== st.acked && !st.later.has(v)) out.push(`${k}=${v} (acknowledged ${st.acked})`);
      }
    }
  } finally {
    c.close();
  }
  return out;
}

const envSeed = Number(Deno.env.get("MEMREP_CHAOS_SEED"));
const seedOf = () =>
  Number.isInteger(envSeed) && envSeed > 0 ? envSeed : 1 + Math.floor(Math.random() * 1e9);

const pairSeed = seedOf();
Deno.test(`--repl-sync, flapping link, kill -9 of the writer: no acknowledged write lost (seed ${pairSeed})`, async () => {
  await withRelayedPair([...SYNC, "--repl-sync"], async (a, b, relay) => {
    let stopped = false;
    const keys: Keys = new Map();
    const work = [0, 1].map((w) => writer(a, w, pairSeed, keys, () => stopped));
    const chaos = flap([relay], mulberry32(pairSeed), () => stopped);
    await sleep(CHAOS_MS);
    a.proc.kill("SIGKILL");
    stopped = true;
    await Promise.all([...work, chaos]);
    const acked = [...keys.values()].filter((s) => s.acked !== null).length;
    ok(acked > 100, `writes were acknowledged (${acked})`);
    equal((await lost(b, keys)).slice(0, 10).join(", "), "", `seed ${pairSeed}: lost on B`);
  });
});

const groupSeed = seedOf();
Deno.test(`3 members --repl-sync=quorum, flapping links, kill -9 of the writer: no acknowledged write lost on either survivor (seed ${groupSeed})`, async () => {
  const g = await startGroup(3, [...SYNC, "--repl-sync=quorum"], { relays: true });
  try {
    let stopped = false;
    const keys: Keys = new Map();
    const work = [0, 1].map((w) => writer(g.nodes[0], w, groupSeed, keys, () => stopped));
    const relays = [g.relays[0][1], g.relays[0][2], g.relays[1][2]];
    const chaos = flap(relays, mulberry32(groupSeed), () => stopped);
    await sleep(CHAOS_MS);
    g.nodes[0].proc.kill("SIGKILL");
    stopped = true;
    await Promise.all([...work, chaos]);
    const acked = [...keys.values()].filter((s) => s.acked !== null).length;
    ok(acked > 100, `writes were acknowledged (${acked})`);
    // The survivors pass each other what only one of them confirmed.
    const deadline = Date.now() + 15_000;
    let missing: string[][] = [];
    do {
      missing = await Promise.all([lost(g.nodes[1], keys), lost(g.nodes[2], keys)]);
      if (missing.every((m) => m.length === 0)) break;
      await sleep(250);
    } while (Date.now() < deadline);
    equal(missing[0].slice(0, 10).join(", "), "", `seed ${groupSeed}: lost on member 1`);
    equal(missing[1].slice(0, 10).join(", "), "", `seed ${groupSeed}: lost on member 2`);
  } finally {
    await g.close();
  }
});
