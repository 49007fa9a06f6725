/**
 * A proxy test cluster: real memcached primaries and backups on free ports
 * and `memrep proxy` in front of them, plus small helpers to read through it.
 * @module
 */

import {
  connect,
  mulberry32,
  type ProcessHandle,
  type Relay,
  retrievalEnd,
  startMemcached,
  startMemrep,
  startRelay,
  type TestConn,
} from "../helpers/mod.ts";
import { equal } from "../helpers/assert.ts";
import { Ketama, ketamaName } from "../../lib/proxy/mod.ts";

/** The processes of one test. */
export interface Cluster {
  /** Primaries (-s), in order. */
  servers: ProcessHandle[];
  /** Backups (-b), in order. */
  backups: ProcessHandle[];
  /** memrep proxy. */
  proxy: ProcessHandle;
  /** Restart primary/backup `i` empty on its port (after it was killed). */
  restart(which: "server" | "backup", i: number): Promise<ProcessHandle>;
  /** Stop everything. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startCluster}. */
export interface ClusterOptions {
  servers?: number;
  backups?: number;
  /** Extra proxy flags (default: fast health checks). */
  proxyArgs?: string[];
  /** Extra memcached flags. */
  memcachedArgs?: string[];
}

/** Starts memcached primaries and backups and a proxy over them. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const mcArgs = opts.memcachedArgs ?? [];
  const servers = await Promise.all(
    Array.from({ length: opts.servers ?? 2 }, () => startMemcached(mcArgs)),
  );
  const backups = await Promise.all(
    Array.from({ length: opts.backups ?? 1 }, () => startMemcached(mcArgs)),
  );
  const args = ["proxy", "-v"];
  for (const s of servers) args.push("-s", `127.0.0.1:${s.port}`);
  for (const b of backups) args.push("-b", `127.0.0.1:${b.port}`);
  args.push(...(opts.proxyArgs ?? ["--timeout", "500", "--retry", "200"]));
  let proxy: ProcessHandle;
  try {
    proxy = await startMemrep(args);
  } catch (err) {
    await Promise.all([...servers, ...backups].map((p) => p.stop()));
    throw err;
  }
  const extra: ProcessHandle[] = [];
  return {
    servers,
    backups,
    proxy,
    async restart(which, i) {
      const list = which === "server" ? servers : backups;
      const old = list[i];
      await old.stop();
      const next = await startMemcached(mcArgs, { port: old.port });
      list[i] = next;
      extra.push(next);
      return next;
    },
    async stop() {
      await proxy.stop();
      await Promise.all([...servers, ...backups, ...extra].map((p) => p.stop()));
    },
  };
}

/** The conditional writes (name, request of the key `K`) that miss on a primary without the key. */
export const CONDITIONAL_WRITES: readonly (readonly [string, string])[] = [
  ["append", "append K 0 0 1\r\nX\r\n"],
  ["prepend", "prepend K 0 0 1\r\nX\r\n"],
  ["replace", "replace K 0 0 1\r\nX\r\n"],
  ["incr", "incr K 3\r\n"],
  ["decr", "decr K 3\r\n"],
  ["ms MA", "ms K 1 MA\r\nX\r\n"],
  ["ms MR", "ms K 1 MR\r\nX\r\n"],
  ["ma", "ma K D2\r\n"],
];

/** Options of {@linkcode startPair}. */
export interface PairOptions {
  /** Put a fault relay in front of the primary, the backup or both: the proxy reaches them through it. */
  relay?: "primary" | "backup" | "both";
  /** Also start a lone memcached to compare replies with. */
  direct?: boolean;
  /** Proxy flags after -s and -b (default none). */
  proxyArgs?: string[];
}

/** The processes of {@linkcode startPair}. */
export interface Pair {
  /** The primary (-s); may be replaced by a test that restarts it: {@linkcode Pair.stop} stops the new one. */
  primary: ProcessHandle;
  /** The backup (-b). */
  backup: ProcessHandle;
  /** The relay in front of the primary; throws unless it was asked for. */
  readonly toPrimary: Relay;
  /** The relay in front of the backup; throws unless it was asked for. */
  readonly toBackup: Relay;
  /** The lone memcached; throws unless `direct` was asked for. */
  readonly direct: ProcessHandle;
  /** memrep proxy. */
  proxy: ProcessHandle;
  /** Stops the proxy, the relays and the memcacheds. */
  stop(): Promise<void>;
}

/** `x`, or a throw naming what was not asked of {@linkcode startPair}. */
function asked<T>(x: T | undefined, what: string): T {
  if (x === undefined) throw new Error(`startPair: no ${what} was asked for`);
  return x;
}

/**
 * Starts a memcached primary and backup, the relays and lone memcached asked
 * for, and `memrep proxy -s <primary> -b <backup>`.
 */
export async function startPair(opts: PairOptions = {}): Promise<Pair> {
  const primary = await startMemcached(), backup = await startMemcached();
  const direct = opts.direct ? await startMemcached() : undefined;
  const relayed = (which: "primary" | "backup", p: ProcessHandle) =>
    opts.relay === which || opts.relay === "both" ? startRelay(p.port) : undefined;
  const toPrimary = relayed("primary", primary), toBackup = relayed("backup", backup);
  const stopRest = async (procs: (ProcessHandle | undefined)[]) => {
    await toPrimary?.close();
    await toBackup?.close();
    await Promise.all(procs.map((p) => p?.stop()));
  };
  let proxy: ProcessHandle;
  try {
    proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${(toPrimary ?? primary).port}`,
      "-b",
      `127.0.0.1:${(toBackup ?? backup).port}`,
      ...(opts.proxyArgs ?? []),
    ]);
  } catch (err) {
    await stopRest([primary, backup, direct]);
    throw err;
  }
  const pair: Pair = {
    primary,
    backup,
    proxy,
    get toPrimary() {
      return asked(toPrimary, "relay to the primary");
    },
    get toBackup() {
      return asked(toBackup, "relay to the backup");
    },
    get direct() {
      return asked(direct, "direct memcached");
    },
    async stop() {
      await pair.proxy.stop();
      await stopRest([pair.primary, pair.backup, direct]);
    },
  };
  return pair;
}

/** `get <key>` on a connection: the value, or undefined on a miss. */
export async function getValue(c: TestConn, key: string): Promise<string | undefined> {
  const reply = await c.request(`get ${key}`, retrievalEnd, 5000);
  const m = /^VALUE \S+ \d+ \d+\r\n([\s\S]*)\r\nEND\r\n$/.exec(reply);
  if (m) return m[1];
  if (reply === "END\r\n") return undefined;
  throw new Error(`unexpected get reply: ${JSON.stringify(reply)}`);
}

/** `get <key>` straight on a memcached port. */
export async function directGet(port: number, key: string): Promise<string | undefined> {
  const c = await connect(port);
  try {
    return await getValue(c, key);
  } finally {
    await c.close();
  }
}

/** `set <key> 0 <exptime> ...` on a connection; returns the reply line. */
export async function setValue(
  c: TestConn,
  key: string,
  value: string,
  flags = 0,
  exptime = 0,
): Promise<string> {
  return await c.request(`set ${key} ${flags} ${exptime} ${value.length}\r\n${value}`);
}

/**
 * Sets `k` to "a", then cuts the primary behind `toPrimary` (refused, its
 * links dropped), reads until the proxy marks it down and sets `k` to "b",
 * on the backup alone: `k` is dirty on the primary.
 */
export async function dirtyWhileDown(
  c: TestConn,
  proxyPort: number,
  toPrimary: Relay,
): Promise<void> {
  equal(await setValue(c, "k", "a"), "STORED\r\n");
  toPrimary.refuse(true);
  toPrimary.drop();
  // Reads (which mark nothing dirty) until the primary is marked down.
  const name = `server:127.0.0.1:${toPrimary.port}:state`;
  const deadline = Date.now() + 10_000;
  while ((await proxyStats(proxyPort)).get(name) !== "down") {
    if (Date.now() > deadline) throw new Error("the primary was not marked down");
    await c.request("get x\r\n", retrievalEnd);
  }
  equal(await setValue(c, "k", "b"), "STORED\r\n");
}

/** `stats proxy` as a map. */
export async function proxyStats(port: number): Promise<Map<string, string>> {
  const c = await connect(port);
  try {
    return await c.stats("proxy");
  } finally {
    await c.close();
  }
}

/** Polls `stats proxy` until `server:<host:port>:state` is `state`. */
export async function waitForState(
  proxyPort: number,
  role: "server" | "backup",
  port: number,
  state: "up" | "down",
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const name = `${role}:127.0.0.1:${port}:state`;
  while (Date.now() < deadline) {
    if ((await proxyStats(proxyPort)).get(name) === state) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name} did not become ${state} within ${timeoutMs} ms`);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Ends a reply of `n` one-line answers (`STORED\r\n`, ...). */
function lines(n: number): (buf: Uint8Array) => number {
  return (buf) => {
    let seen = 0;
    for (let i = 1; i < buf.length; i++) {
      if (buf[i] === 10 && buf[i - 1] === 13 && ++seen === n) return i + 1;
    }
    return -1;
  };
}

/**
 * Pipelined `set`s on one connection, 500 per round trip; returns the keys
 * whose reply was `STORED`.
 */
export async function setMany(
  c: TestConn,
  entries: readonly (readonly [string, string])[],
): Promise<Set<string>> {
  const stored = new Set<string>();
  for (let i = 0; i < entries.length; i += 500) {
    const chunk = entries.slice(i, i + 500);
    await c.send(chunk.map(([k, v]) => `set ${k} 0 0 ${v.length}\r\n${v}\r\n`).join(""));
    const reply = new TextDecoder().decode(await c.readUntil(lines(chunk.length), 20_000));
    reply.split("\r\n").forEach((line, j) => {
      if (line === "STORED") stored.add(chunk[j][0]);
    });
  }
  return stored;
}

/** Multi-gets of 100 keys per request: key -> value for the hits. */
export async function getMany(c: TestConn, keys: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < keys.length; i += 100) {
    const reply = await c.request(`get ${keys.slice(i, i + 100).join(" ")}`, retrievalEnd, 20_000);
    const re = /VALUE (\S+) \d+ (\d+)\r\n/g;
    let m;
    while ((m = re.exec(reply)) !== null) {
      const start = m.index + m[0].length;
      out.set(m[1], reply.slice(start, start + Number(m[2])));
      re.lastIndex = start + Number(m[2]) + 2;
    }
  }
  return out;
}

/** Keys `prefix0`, `prefix1`, ... that the ketama ring puts on server `index` of `ports`. */
export function keysOn(
  ports: readonly number[],
  index: number,
  prefix: string,
  n: number,
): string[] {
  const ring = new Ketama(ports.map((p) => ({ name: ketamaName("127.0.0.1", p), weight: 1 })));
  const enc = new TextEncoder();
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const k = `${prefix}${i}`;
    if (ring.pick(enc.encode(k), 0, k.length) === index) out.push(k);
  }
  return out;
}

/** A seeded PRNG (mulberry32) in [0, 1). */
export function seeded(seed: number): () => number {
  return mulberry32(seed);
}

/**
 * Reads `key` (whose primary is `port`, just stopped) through the proxy
 * until the proxy has marked that primary down: it only notices on traffic.
 */
export async function markedDown(proxyPort: number, port: number, key: string): Promise<void> {
  const c = await connect(proxyPort);
  try {
    const deadline = Date.now() + 20_000;
    const name = `server:127.0.0.1:${port}:state`;
    while ((await proxyStats(proxyPort)).get(name) !== "down") {
      if (Date.now() > deadline) throw new Error(`${name} did not become down`);
      await getValue(c, key);
    }
  } finally {
    await c.close();
  }
}
