/**
 * nutcracker's YAML config (`memrep proxy -c nutcracker.yml`), read as
 * nutcracker reads it: one mapping of pools, each with `listen`, `hash`,
 * `distribution`, `servers: - host:port:weight [name]` and the rest, the
 * same defaults, the same validation, and the servers in nutcracker's order
 * (sorted by name) so keys land where nutcracker puts them. memrep's own
 * keys (`backups`, `miss_fallback`, `zone`, `backup_writes`) sit beside them. Options memrep does
 * not implement are refused by name, never silently ignored.
 * @module
 */

import { serverName } from "../client/mod.ts";
import { hashFunction } from "./hash.ts";
import { parseYaml, YamlError, type YamlMap, type YamlValue } from "./yaml.ts";
import { planZones, ZoneError } from "./zones.ts";

/** A backend as written in `servers:` (or `backups:`). */
export interface ServerSpec {
  /** Host to connect to; a unix socket's path for `/path:weight [name]`. */
  host: string;
  /** Port to connect to (0 for a unix socket). */
  port: number;
  /** Relative weight (ketama points, modula slots). */
  weight: number;
  /**
   * The string its ketama points hash: the given name, else host:port (host
   * alone for 11211; `path:` for a unix socket, as nutcracker names it).
   */
  name: string;
  /** `host:port:weight` as written. */
  pname: string;
  /** memrep: the server's zone (`- server: ...` / `zone: ...` item form), if given. */
  zone: string | undefined;
}

/** Where a pool listens: TCP `host:port`, or a unix-domain socket. */
export interface ListenAddress {
  /** Address to bind ("" for a unix socket). */
  host: string;
  /** TCP port (0 for a unix socket). */
  port: number;
  /** The socket's path, for `listen: /path [mode]`. */
  path: string | undefined;
  /** The socket file's permission bits (`listen: /path 0666`); undefined: the umask's. */
  mode: number | undefined;
}

/** A listen address as nutcracker's logs and memrep's messages write it. */
export function listenName(l: ListenAddress): string {
  return l.path ?? `${l.host}:${l.port}`;
}

/** One pool: a listener, its servers and how keys are spread over them. */
export interface PoolConfig {
  /** The pool's key in the file. */
  name: string;
  /** Listen address. */
  listen: ListenAddress;
  /** Key hash name (`fnv1a_64` by default, as nutcracker). */
  hash: string;
  /** Two bytes, opening and closing, or undefined. */
  hashTag: string | undefined;
  /** Key distribution. */
  distribution: "ketama" | "modula" | "random";
  /** Backend connect/request timeout (ms); undefined: not set in the file. */
  timeoutMs: number | undefined;
  /** Listen backlog (accepted; the runtime's own backlog is used). */
  backlog: number;
  /** Client connection limit; 0 = unlimited. */
  clientConnections: number;
  /** Connect to every backend at start. */
  preconnect: boolean;
  /** Take a failed server out of the distribution until it answers again. */
  autoEjectHosts: boolean;
  /** Retry a failed server this often (ms). */
  serverRetryTimeoutMs: number;
  /** Consecutive failures that mark a server failed. */
  serverFailureLimit: number;
  /** As written (memrep keeps one pipelined connection per backend). */
  serverConnections: number;
  /** Primaries, in nutcracker's order. */
  servers: ServerSpec[];
  /** memrep: servers that get a copy of every write (`-b`), in file order. */
  backups: ServerSpec[];
  /** memrep: look in the backups when a primary answers a miss. */
  missFallback: boolean;
  /** memrep: `backup_writes: sync`: a write is answered once its backup copies are. */
  syncBackups: boolean;
  /**
   * memrep: this proxy's zone: with servers in zones, its servers are the
   * primaries (the other zones hold copies); backups in it are tried first.
   */
  zone: string | undefined;
  /** memrep: the servers' zones in the order they first appear in the file (empty: none). */
  zones: string[];
}

/** A config file that cannot be used; the message says why, naming the directive. */
export class ConfigError extends Error {
  /** A config error. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** nutcracker directives memrep implements. */
const KNOWN = new Set([
  "listen",
  "hash",
  "hash_tag",
  "distribution",
  "timeout",
  "backlog",
  "client_connections",
  "redis",
  "preconnect",
  "auto_eject_hosts",
  "server_connections",
  "server_retry_timeout",
  "server_failure_limit",
  "servers",
  // memrep's own
  "backups",
  "miss_fallback",
  "zone",
  "backup_writes",
]);

/** nutcracker directives memrep refuses, and why. */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  redis_auth: "memrep proxies memcached only (no redis)",
  redis_db: "memrep proxies memcached only (no redis)",
  tcpkeepalive: "TCP keepalive on client connections is not implemented",
  reuseport: "SO_REUSEPORT listeners are not implemented",
};

/** Read and validate a config file's text; `file` names it in messages. */
export function parseConfig(text: string, file = "config"): PoolConfig[] {
  let doc: YamlValue;
  try {
    doc = parseYaml(text);
  } catch (err) {
    if (err instanceof YamlError) throw new ConfigError(`${file}: ${err.message}`);
    throw err;
  }
  if (!(doc instanceof Map) || doc.size === 0) {
    throw new ConfigError(`${file}: has no pools (expected a mapping of pool names)`);
  }
  const pools: PoolConfig[] = [];
  for (const [name, body] of doc) {
    if (!(body instanceof Map)) {
      throw new ConfigError(`${file}: pool '${name}' must be a mapping of directives`);
    }
    pools.push(parsePool(name, body, file));
  }
  const listens = new Map<string, string>();
  for (const p of pools) {
    const key = listenName(p.listen);
    const other = listens.get(key);
    if (other !== undefined && (p.listen.port !== 0 || p.listen.path !== undefined)) {
      throw new ConfigError(
        `${file}: pools '${other}' and '${p.name}' have the same listen address '${key}'`,
      );
    }
    listens.set(key, p.name);
  }
  return pools;
}

function parsePool(name: string, m: YamlMap, file: string): PoolConfig {
  const where = `${file}: pool '${name}'`;
  for (const key of m.keys()) {
    if (Object.hasOwn(UNSUPPORTED, key)) {
      throw new ConfigError(
        `${where}: directive "${key}:" is not supported by memrep: ${UNSUPPORTED[key]}`,
      );
    }
    if (!KNOWN.has(key)) throw new ConfigError(`${where}: directive "${key}:" is unknown`);
  }
  const str = (key: string): string | undefined => {
    const v = m.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== "string") {
      throw new ConfigError(`${where}: directive "${key}:" must be a scalar`);
    }
    return v;
  };
  const num = (key: string, fallback: number, min: number): number => {
    const v = str(key);
    if (v === undefined) return fallback;
    if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > 2 ** 31 - 1) {
      throw new ConfigError(`${where}: directive "${key}:" has an invalid value '${v}'`);
    }
    return Number(v);
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = str(key);
    if (v === undefined) return fallback;
    if (v === "true") return true;
    if (v === "false") return false;
    throw new ConfigError(
      `${where}: directive "${key}:" has an invalid value '${v}' (true or false)`,
    );
  };

  const listenText = str("listen");
  if (listenText === undefined) throw new ConfigError(`${where}: directive "listen:" is missing`);
  const listen = parseListen(listenText, where);

  const hash = str("hash") ?? "fnv1a_64";
  if (hashFunction(hash) === undefined) {
    throw new ConfigError(`${where}: directive "hash:" has an invalid value '${hash}'`);
  }
  const hashTag = str("hash_tag");
  if (
    hashTag !== undefined &&
    (hashTag.length !== 2 || hashTag.charCodeAt(0) > 127 || hashTag.charCodeAt(1) > 127)
  ) {
    throw new ConfigError(
      `${where}: directive "hash_tag:" must be two characters, got '${hashTag}'`,
    );
  }
  const distribution = str("distribution") ?? "ketama";
  if (distribution !== "ketama" && distribution !== "modula" && distribution !== "random") {
    throw new ConfigError(
      `${where}: directive "distribution:" has an invalid value '${distribution}'`,
    );
  }
  if (bool("redis", false)) {
    throw new ConfigError(
      `${where}: directive "redis: true" is not supported by memrep: it proxies memcached only`,
    );
  }
  const timeout = num("timeout", -1, -1);
  const serverConnections = num("server_connections", 1, 0);
  if (serverConnections === 0) {
    throw new ConfigError(`${where}: directive "server_connections:" cannot be 0`);
  }
  const serverList = m.get("servers");
  if (serverList === undefined) throw new ConfigError(`${where}: has no servers`);
  const servers = serverSpecs(serverList, "servers", where);
  if (servers.length === 0) throw new ConfigError(`${where}: has no servers`);
  const zones: string[] = [];
  for (const s of servers) if (s.zone !== undefined && !zones.includes(s.zone)) zones.push(s.zone);
  try {
    planZones(servers.map((s) => s.zone), undefined);
  } catch (err) {
    if (err instanceof ZoneError) throw new ConfigError(`${where}: "servers:" ${err.message}`);
    throw err;
  }
  if (zones.length > 0 && distribution === "random") {
    throw new ConfigError(
      `${where}: servers in zones need a key placement: "distribution: random" has none`,
    );
  }
  // nutcracker sorts its servers by name (shorter first) before numbering
  // them: modula slots and ring owners follow that order.
  servers.sort((a, b) => a.name.length - b.name.length || cmp(a.name, b.name));
  for (let i = 1; i < servers.length; i++) {
    if (servers[i].name === servers[i - 1].name) {
      throw new ConfigError(`${where}: has servers with same name '${servers[i].name}'`);
    }
  }
  const backupList = m.get("backups");
  const backups = backupList === undefined ? [] : serverSpecs(backupList, "backups", where);
  const seen = new Set(servers.map((s) => serverName(s.host, s.port)));
  for (const b of backups) {
    const addr = serverName(b.host, b.port);
    if (seen.has(addr)) {
      throw new ConfigError(
        `${where}: ${addr} is listed twice (a backup must not also be a server)`,
      );
    }
    seen.add(addr);
  }
  const backupWrites = str("backup_writes") ?? "async";
  if (backupWrites !== "async" && backupWrites !== "sync") {
    throw new ConfigError(
      `${where}: directive "backup_writes:" has an invalid value '${backupWrites}' (sync or async)`,
    );
  }
  const zone = str("zone");
  if (zone === "") throw new ConfigError(`${where}: directive "zone:" is empty`);
  return {
    name,
    listen,
    hash,
    hashTag,
    distribution,
    timeoutMs: timeout < 0 ? undefined : Math.max(1, timeout),
    backlog: num("backlog", 512, 0),
    clientConnections: num("client_connections", 0, 0),
    preconnect: bool("preconnect", false),
    autoEjectHosts: bool("auto_eject_hosts", false),
    serverRetryTimeoutMs: Math.max(1, num("server_retry_timeout", 30_000, 0)),
    serverFailureLimit: Math.max(1, num("server_failure_limit", 2, 0)),
    serverConnections,
    servers,
    backups,
    missFallback: bool("miss_fallback", true),
    syncBackups: backupWrites === "sync",
    zone,
    zones,
  };
}

/** Byte order of ASCII strings, as memcmp. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Longest unix socket path (sun_path holds 108 bytes with its NUL), as nutcracker checks. */
const UNIX_PATH_MAX = 107;

function parseListen(text: string, where: string): ListenAddress {
  if (text.startsWith("/")) {
    // nutcracker: "socket_path [permissions]", split at the last space, octal permissions.
    const sp = text.lastIndexOf(" ");
    const path = sp < 0 ? text : text.slice(0, sp);
    const modeText = sp < 0 ? undefined : text.slice(sp + 1);
    if (modeText !== undefined && (!/^[0-7]+$/.test(modeText) || parseInt(modeText, 8) > 0o777)) {
      throw new ConfigError(
        `${where}: directive "listen:" has an invalid file permission '${modeText}' in "socket_path permission"`,
      );
    }
    if (new TextEncoder().encode(path).length > UNIX_PATH_MAX) {
      throw new ConfigError(
        `${where}: directive "listen:" has a socket path over ${UNIX_PATH_MAX} bytes '${path}'`,
      );
    }
    // nutcracker leaves the umask's bits when the permissions are absent or 0.
    const mode = modeText === undefined ? 0 : parseInt(modeText, 8);
    return { host: "", port: 0, path, mode: mode === 0 ? undefined : mode };
  }
  const m = /^(.+):(\d+)$/.exec(text);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port > 65535) {
    throw new ConfigError(`${where}: directive "listen:" has an invalid "hostname:port" '${text}'`);
  }
  return { host: m[1].replace(/^\[(.*)\]$/, "$1"), port, path: undefined, mode: undefined };
}

function serverSpecs(v: YamlValue, key: string, where: string): ServerSpec[] {
  if (!Array.isArray(v)) throw new ConfigError(`${where}: directive "${key}:" must be a sequence`);
  return v.map((item) => {
    if (typeof item === "string") return serverSpec(item, key, where, undefined);
    // memrep's item form: `- server: host:port:weight [name]` with `zone: z`.
    if (item instanceof Map) {
      for (const k of item.keys()) {
        if (k !== "server" && k !== "zone") {
          throw new ConfigError(`${where}: "${key}:" item key "${k}:" is unknown (server, zone)`);
        }
      }
      const server = item.get("server");
      const zone = item.get("zone");
      const zoneOk = zone === undefined || (typeof zone === "string" && zone !== "");
      if (typeof server === "string" && zoneOk) {
        return serverSpec(server, key, where, zone as string | undefined);
      }
    }
    throw new ConfigError(
      `${where}: "${key}:" items must be "hostname:port:weight [name]" strings (or server:/zone: mappings)`,
    );
  });
}

/** `host:port:weight [name]`, split from the end as nutcracker does. */
function serverSpec(
  text: string,
  key: string,
  where: string,
  zone: string | undefined,
): ServerSpec {
  const bad = (why: string) =>
    new ConfigError(`${where}: "${key}:" item '${text}' ${why} in "hostname:port:weight [name]"`);
  let rest = text;
  let name: string | undefined;
  const sp = rest.lastIndexOf(" ");
  if (sp >= 0) {
    name = rest.slice(sp + 1);
    rest = rest.slice(0, sp);
    if (name === "") throw bad("has an empty name");
  }
  if (rest.startsWith("/")) return unixServerSpec(rest, name, key, where, zone);
  const c2 = rest.lastIndexOf(":");
  const c1 = c2 > 0 ? rest.lastIndexOf(":", c2 - 1) : -1;
  if (c1 <= 0) throw bad("has an invalid format");
  const addr = rest.slice(0, c1);
  const portText = rest.slice(c1 + 1, c2);
  const weightText = rest.slice(c2 + 1);
  if (!/^\d+$/.test(weightText)) throw bad("has an invalid weight");
  const weight = Number(weightText);
  if (weight === 0) throw bad("has a zero weight");
  // memrep bound: modula keeps one slot per unit of weight.
  if (weight > 1_000_000) throw bad("has a weight over 1000000");
  const port = /^\d+$/.test(portText) ? Number(portText) : -1;
  if (port < 1 || port > 65535) throw bad("has an invalid port");
  return {
    host: addr.replace(/^\[(.*)\]$/, "$1"),
    port,
    weight,
    // libmemcached compatibility: without a name, port 11211 is not hashed.
    name: name ?? (port === 11211 ? addr : `${addr}:${portText}`),
    pname: rest,
    zone,
  };
}

/** `/path/unix_socket:weight [name]`, split as nutcracker does (a path with a colon is refused). */
function unixServerSpec(
  rest: string,
  name: string | undefined,
  key: string,
  where: string,
  zone: string | undefined,
): ServerSpec {
  const bad = (why: string) =>
    new ConfigError(
      `${where}: "${key}:" item '${rest}' ${why} in "/path/unix_socket:weight [name]"`,
    );
  const c = rest.lastIndexOf(":");
  const path = rest.slice(0, c);
  if (c < 0 || path.includes(":")) throw bad("has an invalid format");
  const weightText = rest.slice(c + 1);
  if (!/^\d+$/.test(weightText)) throw bad("has an invalid weight");
  const weight = Number(weightText);
  if (weight === 0) throw bad("has a zero weight");
  if (weight > 1_000_000) throw bad("has a weight over 1000000");
  if (new TextEncoder().encode(path).length > UNIX_PATH_MAX) {
    throw bad(`has a socket path over ${UNIX_PATH_MAX} bytes`);
  }
  // Without a name nutcracker hashes (and its stats name) the path and the colon after it.
  return { host: path, port: 0, weight, name: name ?? `${path}:`, pname: rest, zone };
}

/** Read `path` and parse it; a missing or unreadable file is a ConfigError too. */
export async function loadConfig(path: string): Promise<PoolConfig[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(`${path}: cannot read: ${err instanceof Error ? err.message : err}`);
  }
  return parseConfig(text, path);
}
