/**
 * The pools of a nutcracker config running in one process: per pool a
 * listener, a router and its backends. {@linkcode ProxyPools.reload} applies
 * a new config without a restart: kept pools keep their listener and client
 * connections and get the new servers for new requests (backends that stay
 * keep their connections and health); new pools start listening, removed
 * ones stop; retired backends are closed only after requests in flight on
 * them had time to finish.
 * @module
 */

import type { Authenticator } from "../auth/mod.ts";
import { log } from "../log.ts";
import type { PoolConfig, ServerSpec } from "./config.ts";
import { KetamaDistribution, ModulaDistribution, RandomDistribution } from "./dist.ts";
import { hashFunction } from "./hash.ts";
import type { Distribution } from "./ketama.ts";
import { Backend, type BackendOptions } from "./pool.ts";
import { Router, type RouterOptions } from "./router/mod.ts";
import { ProxyServer } from "./server.ts";
import { ProxyStats } from "./stats.ts";
import { planZones, type ZoneRing } from "./zones.ts";

/** Logins for every pool, from the command line (`-Y`, `--backend-auth`). */
export interface PoolAccess {
  /** Clients log in first (memcached's text login). */
  auth?: Authenticator;
  /** Credentials for backends that run with -Y. */
  login?: { user: string; password: string };
  /** The router class (a subclass that times requests for --metrics); default Router. */
  routerClass?: typeof Router;
}

/** Timeout used when the file sets none (nutcracker would wait forever). */
export const DEFAULT_TIMEOUT_MS = 1000;

/** Largest value accepted from clients. */
const MAX_VALUE = 256 * 1048576;

/** The placement a pool config asks for over its servers (hash_tag applied). */
export function poolDistribution(config: PoolConfig): Distribution {
  return distributionFor(config, config.servers);
}

/**
 * The placement over the servers of one zone (indexes into that zone's
 * servers, in `config.servers` order): each zone is a full copy on its own ring.
 */
export function zoneDistribution(config: PoolConfig, zone: string): Distribution {
  return distributionFor(config, config.servers.filter((s) => s.zone === zone));
}

function distributionFor(config: PoolConfig, servers: readonly ServerSpec[]): Distribution {
  const hash = hashFunction(config.hash)!;
  const tag = config.hashTag === undefined
    ? undefined
    : { open: config.hashTag.charCodeAt(0), close: config.hashTag.charCodeAt(1) };
  switch (config.distribution) {
    case "ketama":
      return new KetamaDistribution(servers, hash, tag);
    case "modula":
      return new ModulaDistribution(servers.map((s) => s.weight), hash, tag);
    case "random":
      return new RandomDistribution(servers.length);
  }
}

/**
 * `auto_eject_hosts: true`: the distribution is rebuilt over the servers
 * that are up, as nutcracker rebuilds its continuum, whenever that set
 * changes; with none up, the full one is used (the router then falls back
 * to the backups or answers an error).
 */
class EjectingDistribution implements Distribution {
  readonly #config: PoolConfig;
  readonly #specs: readonly ServerSpec[];
  readonly #backends: readonly Backend[];
  readonly #full: Distribution;
  readonly #up: Uint8Array;
  #live: number[];
  #dist: Distribution;

  constructor(config: PoolConfig, specs: readonly ServerSpec[], backends: readonly Backend[]) {
    this.#config = config;
    this.#specs = specs;
    this.#backends = backends;
    this.#full = distributionFor(config, specs);
    this.#up = new Uint8Array(backends.length).fill(1);
    this.#live = backends.map((_, i) => i);
    this.#dist = this.#full;
  }

  pick(buf: Uint8Array, start: number, end: number): number {
    const b = this.#backends;
    const up = this.#up;
    let changed = false;
    for (let i = 0; i < b.length; i++) {
      const u = b[i].up ? 1 : 0;
      if (u !== up[i]) {
        up[i] = u;
        changed = true;
      }
    }
    if (changed) this.#rebuild();
    if (this.#live.length === 0) return this.#full.pick(buf, start, end);
    return this.#live[this.#dist.pick(buf, start, end)];
  }

  #rebuild(): void {
    this.#live = [];
    for (let i = 0; i < this.#up.length; i++) if (this.#up[i]) this.#live.push(i);
    const specs = this.#live.map((i) => this.#specs[i]);
    this.#dist = specs.length === 0 ? this.#full : distributionFor(this.#config, specs);
    log.info(
      `proxy: pool '${this.#config.name}': ${this.#live.length} of ${this.#up.length} servers in the distribution`,
    );
  }
}

/**
 * The backups in the order reads and writes fall back to them: those in
 * the proxy's `zone` first (a nearer copy), then the rest, each in file
 * order. (With servers in zones, the other zones' copies come before any backup.)
 */
export function localFirst(config: PoolConfig): ServerSpec[] {
  const zone = config.zone;
  if (zone === undefined) return [...config.backups];
  return [
    ...config.backups.filter((b) => b.zone === zone),
    ...config.backups.filter((b) => b.zone !== zone),
  ];
}

/** How often a failed server is retried without `auto_eject_hosts`. */
const RETRY_WITHOUT_EJECT_MS = 1000;

function backendOptions(config: PoolConfig, access: PoolAccess): BackendOptions {
  return {
    login: access.login,
    timeoutMs: config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    // Without auto_eject_hosts nutcracker never sets a server aside (it
    // reconnects on the next request), so server_retry_timeout (30 s by
    // default) must not keep a restarted server unused that long here.
    retryMs: config.autoEjectHosts
      ? config.serverRetryTimeoutMs
      : Math.min(config.serverRetryTimeoutMs, RETRY_WITHOUT_EJECT_MS),
    failureLimit: config.serverFailureLimit,
  };
}

/**
 * Backends that are kept across a reload: same address, role and zone (the
 * magent-style number in `stats` stays the first one given). New settings
 * (timeout, retry, failure limit) apply to them in place: a new backend's
 * own connection let a read's fallback on the old one overtake a later
 * write's copy on the new one (a future value).
 */
function backendKey(role: string, s: ServerSpec): string {
  return `${role}|${s.host}|${s.port}|${s.zone ?? ""}`;
}

/** The backends of one config: the local zone's servers, the other zones, the backups. */
interface PoolBackends {
  servers: Backend[];
  /** The local zone's server specs, in ring order. */
  specs: ServerSpec[];
  zones: ZoneRing[];
  zone: string | undefined;
  backups: Backend[];
  kept: Set<Backend>;
}

function routerOptions(config: PoolConfig, made: PoolBackends): RouterOptions {
  return {
    missFallback: config.missFallback,
    syncBackups: config.syncBackups,
    zones: made.zones,
    zone: made.zone,
  };
}

/** One running pool. */
export class ProxyPool {
  /** Its config (the latest applied). */
  config: PoolConfig;
  /** Its router (kept across reloads). */
  readonly router: Router;
  /** Its listener (kept across reloads while `listen` is unchanged). */
  readonly server: ProxyServer;
  /** Backends by {@linkcode backendKey}. */
  #backends = new Map<string, Backend>();
  readonly #access: PoolAccess;

  /** A pool; nothing listens until {@linkcode ProxyPool.listen}. */
  constructor(config: PoolConfig, version: string, access: PoolAccess = {}) {
    this.config = config;
    this.#access = access;
    const made = this.#makeBackends(config, new Map());
    this.router = new (access.routerClass ?? Router)(
      made.servers,
      made.backups,
      this.#distribution(config, made),
      new ProxyStats(),
      routerOptions(config, made),
      version,
    );
    this.server = new ProxyServer({
      hostname: config.listen.host,
      port: config.listen.port,
      unixPath: config.listen.path,
      unixMode: config.listen.mode,
      maxConnections: config.clientConnections === 0 ? 1 << 20 : config.clientConnections,
      maxValue: MAX_VALUE,
      auth: access.auth,
    }, this.router);
  }

  /** Bind the listener (throws if the address is taken) and connect early if asked. */
  listen(): void {
    this.server.listen();
    if (this.config.preconnect) this.#preconnect();
  }

  /** Every backend (servers, other zones' servers, backups). */
  get backends(): Backend[] {
    return [...this.router.backends];
  }

  #preconnect(): void {
    for (const b of this.backends) {
      const c = b.acquire();
      if (c instanceof Promise) c.catch(() => {});
    }
  }

  /**
   * The local zone's placement (every server's without zones). With zones
   * no ring ejects: a down server's keys are read from the other zones, and
   * keys moved to another server while it was out would be stale on its return.
   */
  #distribution(config: PoolConfig, made: PoolBackends): Distribution {
    return config.autoEjectHosts && made.zones.length === 0
      ? new EjectingDistribution(config, made.specs, made.servers)
      : distributionFor(config, made.specs);
  }

  #makeBackends(config: PoolConfig, old: Map<string, Backend>): PoolBackends {
    const o = backendOptions(config, this.#access);
    const next = new Map<string, Backend>();
    const kept = new Set<Backend>();
    const make = (role: "server" | "backup", s: ServerSpec, i: number) => {
      const key = backendKey(role, s);
      let b = old.get(key);
      if (b === undefined) {
        b = new Backend(s.host, s.port, role, i + 1, o);
        // The same server in another role or zone: what it may hold stale stays dirty.
        for (const was of old.values()) {
          if (was.host === s.host && was.port === s.port) b.inherit(was);
        }
      } else {
        kept.add(b);
        b.configure(o);
      }
      b.zone = s.zone;
      next.set(key, b);
      return b;
    };
    const plan = planZones(config.servers.map((s) => s.zone), config.zone, config.zones);
    if (plan.local !== undefined && config.zone !== undefined && plan.local !== config.zone) {
      log.warn(
        `proxy: pool '${config.name}': no server is in zone '${config.zone}': reads go to zone '${plan.local}' first`,
      );
    }
    const specs = plan.localMembers.map((i) => config.servers[i]);
    const servers = specs.map((s, i) => make("server", s, i));
    // Another zone's servers are backups of their keys; numbered before the -b ones.
    let n = 0;
    const zones: ZoneRing[] = plan.remote.map((z) => {
      const zoneSpecs = z.members.map((i) => config.servers[i]);
      return {
        name: z.name,
        servers: zoneSpecs.map((s) => make("backup", s, n++)),
        dist: distributionFor(config, zoneSpecs), // never ejecting: see #distribution
      };
    });
    const backups = localFirst(config).map((s, i) => make("backup", s, n + i));
    this.#backends = next;
    return { servers, specs, zones, zone: plan.local, backups, kept };
  }

  /**
   * Apply a new config with the same listen address. Returns the backends
   * no longer used, for the caller to close once requests on them are done.
   */
  apply(config: PoolConfig): Backend[] {
    const old = this.#backends;
    const made = this.#makeBackends(config, old);
    const kept = made.kept;
    this.router.reconfigure(
      made.servers,
      made.backups,
      this.#distribution(config, made),
      routerOptions(config, made),
    );
    if (config.clientConnections !== this.config.clientConnections) {
      log.warn(`proxy: pool '${config.name}': client_connections changes at the next restart`);
    }
    this.config = config;
    if (config.preconnect) this.#preconnect();
    return [...old.values()].filter((b) => !kept.has(b));
  }

  /** Stop listening, close client connections and backends. */
  stop(): void {
    this.server.stop();
    for (const b of this.#backends.values()) b.close();
  }
}

/** Every pool of a config file. */
export class ProxyPools {
  /** Running pools by name. */
  readonly pools = new Map<string, ProxyPool>();
  /** When the pools started (ms since the epoch). */
  readonly startedAt: number = Date.now();
  readonly #version: string;
  readonly #access: PoolAccess;
  #stopped = false;
  readonly #done: PromiseWithResolvers<void> = Promise.withResolvers();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  /** Pools answering `version` with `version`, with the command line's logins. */
  constructor(version: string, access: PoolAccess = {}) {
    this.#version = version;
    this.#access = access;
  }

  /** Resolves once {@linkcode stop} was called. */
  get finished(): Promise<void> {
    return this.#done.promise;
  }

  /** Start every pool; if one cannot listen, none stays listening and the error is thrown. */
  start(configs: readonly PoolConfig[]): void {
    const started: ProxyPool[] = [];
    try {
      for (const c of configs) {
        const p = new ProxyPool(c, this.#version, this.#access);
        p.listen();
        started.push(p);
      }
    } catch (err) {
      for (const p of started) p.stop();
      throw err;
    }
    for (const p of started) this.pools.set(p.config.name, p);
  }

  /**
   * Apply a new config. New listeners are bound first: if one fails the
   * running config is left exactly as it was and the error is thrown.
   */
  reload(
    configs: readonly PoolConfig[],
  ): { added: string[]; removed: string[]; changed: string[] } {
    const names = new Set(configs.map((c) => c.name));
    const sameListen = (p: ProxyPool, c: PoolConfig) =>
      p.config.listen.host === c.listen.host && p.config.listen.port === c.listen.port &&
      p.config.listen.path === c.listen.path && p.config.listen.mode === c.listen.mode;
    const fresh: ProxyPool[] = [];
    const keep: [ProxyPool, PoolConfig][] = [];
    const kept = new Set<ProxyPool>();
    try {
      for (const c of configs) {
        let cur = this.pools.get(c.name);
        if (cur === undefined) {
          // A pool renamed on the same address keeps its listener and clients.
          cur = [...this.pools.values()].find((p) =>
            !names.has(p.config.name) && !kept.has(p) && sameListen(p, c)
          );
        }
        if (cur !== undefined && sameListen(cur, c)) {
          keep.push([cur, c]);
          kept.add(cur);
          continue;
        }
        // A new pool, or one moving to a new address: bound there first, the old one stops below.
        const p = new ProxyPool(c, this.#version, this.#access);
        fresh.push(p);
        p.listen();
      }
    } catch (err) {
      for (const p of fresh) p.stop();
      throw err;
    }
    const removed: string[] = [];
    for (const [name, p] of this.pools) {
      if (kept.has(p)) continue;
      if (!names.has(name)) removed.push(name);
      p.stop();
    }
    const wait = Math.max(
      DEFAULT_TIMEOUT_MS,
      ...keep.map(([p]) => p.config.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    );
    const retired: Backend[] = [];
    this.pools.clear();
    for (const [p, c] of keep) {
      retired.push(...p.apply(c));
      this.pools.set(c.name, p);
    }
    for (const p of fresh) this.pools.set(p.config.name, p);
    this.#retire(retired, wait);
    return {
      added: fresh.map((p) => p.config.name),
      removed,
      changed: keep.map(([, c]) => c.name),
    };
  }

  /** Close backends after requests in flight on them had their timeout to finish. */
  #retire(backends: Backend[], timeoutMs: number): void {
    if (backends.length === 0) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      for (const b of backends) b.close();
    }, timeoutMs + 2000);
    this.#timers.add(t);
  }

  /** Stop every pool. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    for (const p of this.pools.values()) p.stop();
    this.#done.resolve();
  }
}
