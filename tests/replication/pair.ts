/**
 * Helpers for replication suites: start `serve` nodes paired on a
 * replication port, read their stats, and compare their whole contents.
 * @module
 */

import { Client } from "../../lib/client/mod.ts";
import {
  freePort,
  type ProcessHandle,
  type Relay,
  startMemrep,
  startRelay,
  waitUntil,
} from "../helpers/mod.ts";

/** One started node. */
export interface Node {
  /** The process. */
  proc: ProcessHandle;
  /** Client port. */
  port: number;
}

/**
 * Start `memrep serve -v` replicating through `127.0.0.1:<replPort>`
 * (repcached's -x/-X form) plus `args`; `port` reuses a client port (restart),
 * `env` adds environment variables.
 */
export async function startNode(
  replPort: number,
  args: string[] = [],
  port?: number,
  env?: Record<string, string>,
): Promise<Node> {
  const proc = await startMemrep(
    ["serve", "-v", "-x", "127.0.0.1", "-X", String(replPort), ...args],
    { port, env },
  );
  return { proc, port: proc.port };
}

/**
 * A pair whose link runs through a fault-injecting relay (B dials A through
 * it), linked; `body` runs on it, then the relay and both nodes stop.
 */
export async function withRelayedPair(
  args: string[],
  body: (a: Node, b: Node, relay: Relay) => Promise<void>,
): Promise<void> {
  const replPort = freePort();
  const a = await startNode(replPort, args);
  const relay = startRelay(replPort);
  let b: Node | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    b = await startNode(relay.port, args);
    await b.proc.waitForLog(/^replication: start/, 10_000);
    await body(a, b, relay);
  } finally {
    await relay.close();
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
}

/** Start two nodes on one replication port and wait until they are paired. */
export async function startPair(
  args: string[] = [],
): Promise<{ a: Node; b: Node; replPort: number }> {
  const replPort = freePort();
  const a = await startNode(replPort, args);
  await a.proc.waitForLog(/^replication: listen/, 10_000);
  const b = await startNode(replPort, args);
  await Promise.all([
    a.proc.waitForLog(/^replication: start/, 10_000),
    b.proc.waitForLog(/^replication: start/, 10_000),
  ]);
  return { a, b, replPort };
}

/**
 * A client to a node (closed by the caller). Its reply timeout is generous: a
 * node applying a large copy on a loaded machine may answer after 10 s.
 */
export function client(node: Node | number): Promise<Client> {
  const port = typeof node === "number" ? node : node.port;
  return Client.connect("127.0.0.1", port, { requestTimeoutMs: 30_000 });
}

/** `stats replication` of a node as a map. */
export async function replStats(node: Node): Promise<Map<string, string>> {
  const c = await client(node);
  try {
    return await c.stats("replication");
  } finally {
    c.close();
  }
}

/** One number from `stats replication`. */
export async function replStat(node: Node, name: string): Promise<number> {
  return Number((await replStats(node)).get(name));
}

/** Every live item of a node: key → "flags:cas:exp:value" (exp in unix seconds, values as latin1). */
export async function contents(node: Node): Promise<Map<string, string>> {
  const c = await client(node);
  try {
    const keys: Uint8Array[] = [];
    const exp = new Map<string, number>();
    for await (const e of c.metadump()) {
      keys.push(e.key);
      exp.set(latin1(e.key), e.exp);
    }
    const out = new Map<string, string>();
    for (let i = 0; i < keys.length; i += 100) {
      const got = await c.gets(keys.slice(i, i + 100));
      for (const [k, item] of got) {
        out.set(k, `${item.flags}:${item.cas}:${exp.get(k)}:${latin1(item.value)}`);
      }
    }
    return out;
  } finally {
    c.close();
  }
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

/** Wait until neither node has unacknowledged changes for the other. */
export async function settled(a: Node, b: Node, timeoutMs = 15_000): Promise<void> {
  await waitUntil(
    async () => {
      const [sa, sb] = await Promise.all([replStats(a), replStats(b)]);
      return sa.get("repl_link") === "up" && sb.get("repl_link") === "up" &&
        sa.get("repl_lag_bytes") === "0" && sb.get("repl_lag_bytes") === "0";
    },
    "replication to settle",
    timeoutMs,
  );
}

/** Both nodes hold exactly the same items (value, flags and version). */
export async function sameContents(a: Node, b: Node): Promise<Map<string, string>> {
  const [ca, cb] = await Promise.all([contents(a), contents(b)]);
  const diff: string[] = [];
  for (const [k, v] of ca) {
    if (cb.get(k) !== v) diff.push(`${k}: A=${v.slice(0, 40)} B=${cb.get(k)?.slice(0, 40)}`);
  }
  for (const [k, v] of cb) if (!ca.has(k)) diff.push(`${k}: A=undefined B=${v.slice(0, 40)}`);
  if (diff.length > 0) {
    throw new Error(`nodes differ on ${diff.length} keys:\n${diff.slice(0, 10).join("\n")}`);
  }
  return ca;
}

/** Lines of a node's output that came after line `from`. */
export function logSince(node: Node, from: number): string[] {
  return node.proc.outputLines().slice(from);
}

/** Fill a node with `n` items `prefix<i>` of `size` bytes, pipelined. */
export async function fill(node: Node, prefix: string, n: number, size = 100): Promise<void> {
  const c = await client(node);
  try {
    const value = new Uint8Array(size).fill(120);
    for (let i = 0; i < n; i += 1000) {
      const batch: Promise<boolean>[] = [];
      for (let j = i; j < Math.min(n, i + 1000); j++) batch.push(c.set(`${prefix}${j}`, value, j));
      await Promise.all(batch);
    }
  } finally {
    c.close();
  }
}

/** Pipelined sets of `keys` on `node`, value `<tag>-<key>`. */
export async function setAll(node: Node, keys: string[], tag: string): Promise<void> {
  const enc = new TextEncoder();
  const c = await client(node);
  try {
    for (let i = 0; i < keys.length; i += 1000) {
      await Promise.all(keys.slice(i, i + 1000).map((k) => c.set(k, enc.encode(`${tag}-${k}`))));
    }
  } finally {
    c.close();
  }
}

/** Pipelined deletes of `keys` on `node`. */
export async function deleteAll(node: Node, keys: string[]): Promise<number> {
  const c = await client(node);
  let deleted = 0;
  try {
    for (let i = 0; i < keys.length; i += 1000) {
      const done = await Promise.all(keys.slice(i, i + 1000).map((k) => c.delete(k)));
      deleted += done.filter(Boolean).length;
    }
    return deleted;
  } finally {
    c.close();
  }
}

/** Clients setting keys on one node until stopped; `acked` holds every key it acknowledged. */
export interface Writers {
  /** Keys acknowledged (STORED), in order. */
  readonly acked: string[];
  /** Stop writing (a dead node ends the writers by itself) and wait for them. */
  stop(): Promise<void>;
}

/** Start `connections` writers on `node`, keys `<prefix><writer>-<i>` with value `value-<key>`. */
export function startWriters(node: Node, connections: number, prefix: string): Writers {
  const enc = new TextEncoder();
  const acked: string[] = [];
  let stopped = false;
  const writers = Array.from({ length: connections }, async (_, w) => {
    const c = await client(node);
    try {
      for (let i = 0; !stopped; i++) {
        const key = `${prefix}${w}-${i}`;
        if (await c.set(key, enc.encode(`value-${key}`))) acked.push(key);
      }
    } catch {
      // the node died under us: what was acknowledged is in `acked`
    } finally {
      c.close();
    }
  });
  return {
    acked,
    async stop() {
      stopped = true;
      await Promise.all(writers);
    },
  };
}

/** The keys of `keys` that `node` does not hold. */
export async function missingKeys(node: Node, keys: string[]): Promise<string[]> {
  const c = await client(node);
  const missing: string[] = [];
  try {
    for (let i = 0; i < keys.length; i += 200) {
      const got = await c.get(keys.slice(i, i + 200));
      for (const k of keys.slice(i, i + 200)) if (!got.has(k)) missing.push(k);
    }
  } finally {
    c.close();
  }
  return missing;
}

/** Every live item of a node from `lru_crawler metadump` alone: key → "cas:exp:size" (fast, for big stores). */
export async function dump(node: Node): Promise<Map<string, string>> {
  const c = await client(node);
  try {
    const out = new Map<string, string>();
    for await (const e of c.metadump()) out.set(latin1(e.key), `${e.cas}:${e.exp}:${e.size}`);
    return out;
  } finally {
    c.close();
  }
}

/**
 * Both nodes hold the same keys with the same versions, expiry and size
 * (equal versions are the same write, so the values agree); returns A's dump.
 */
export async function sameDump(a: Node, b: Node): Promise<Map<string, string>> {
  const [da, db] = await Promise.all([dump(a), dump(b)]);
  const diff: string[] = [];
  for (const [k, v] of da) if (db.get(k) !== v) diff.push(`${k}: A=${v} B=${db.get(k)}`);
  for (const [k, v] of db) if (!da.has(k)) diff.push(`${k}: A=undefined B=${v}`);
  if (diff.length > 0) {
    throw new Error(`nodes differ on ${diff.length} keys:\n${diff.slice(0, 10).join("\n")}`);
  }
  return da;
}

/** How {@linkcode conflictingWrites} writes. */
export interface WriteMix {
  /** Bursts of 50 pipelined writes. */
  bursts: number;
  /** Keys `c0`..: the smaller, the more conflicts. */
  keySpace: number;
  /** Also plain sets of the counters `n0`..`n4` (and, with `flushes`, a rare flush_all). */
  counterSets?: boolean;
  /** With `counterSets`: one in 40 of them is a flush_all instead. */
  flushes?: boolean;
}

/**
 * A seeded mix of every kind of write (set, add, delete, incr, append,
 * touch) on a small key space, pipelined in bursts: run it on several nodes
 * at once for conflicts.
 */
export async function conflictingWrites(
  c: Client,
  side: string,
  seed: number,
  mix: WriteMix,
): Promise<void> {
  const enc = new TextEncoder();
  let s = seed;
  const rnd = (n: number) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % n;
  const kinds = mix.counterSets ? 9 : 8;
  for (let burst = 0; burst < mix.bursts; burst++) {
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      const key = `c${rnd(mix.keySpace)}`;
      const kind = rnd(kinds);
      if (kind === 0) ops.push(c.delete(key));
      else if (kind === 1) ops.push(c.incr(`n${rnd(5)}`, 1 + rnd(3)));
      else if (kind === 2) ops.push(c.ms(key, enc.encode(`+${side}`), "MA"));
      else if (kind === 3) ops.push(c.touch(key, 1000 + rnd(100)));
      else if (kind === 4) ops.push(c.add(key, enc.encode(`add-${side}`)));
      else if (kind === 5 && mix.counterSets) {
        if (mix.flushes && rnd(40) === 0) ops.push(c.flushAll());
        else ops.push(c.set(`n${rnd(5)}`, enc.encode(String(rnd(1000)))));
      } else ops.push(c.set(key, enc.encode(`${side}-${burst}-${i}`), rnd(4)));
    }
    await Promise.all(ops);
  }
}
