/**
 * A proxy test cluster: real memcached primaries and backups on free ports
 * and `memrep proxy` in front of them, plus small helpers to read through it.
 * @module
 */

import {
  connect,
  type ProcessHandle,
  retrievalEnd,
  startMemcached,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

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
