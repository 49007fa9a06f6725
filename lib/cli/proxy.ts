/**
 * `memrep proxy`: magent's flags (plus long forms and memrep's own), then
 * the backends, the router and the listener.
 * @module
 */

import {
  Backend,
  DEFAULT_BUFFERED_MB,
  Ketama,
  ketamaName,
  Modula,
  planZones,
  PROXY_VERSION,
  ProxyServer,
  ProxyStats,
  replyBudget,
  Router,
  splitZone,
  ZoneError,
  type ZonePlan,
} from "../proxy/mod.ts";
import { daemonize, isDaemonized } from "./daemon.ts";
import {
  countFlag,
  type FlagSpec,
  intFlag,
  listFlag,
  parseFlags,
  parseHostPort,
  stringFlag,
  UsageError,
} from "./flags.ts";
import { log } from "../log.ts";
import { Authenticator, AuthFileError, reloadOnHangup } from "../auth/mod.ts";
import { errorText } from "../transport/mod.ts";
import { proxyTls } from "./tls_flags.ts";
import { clientTlsFlags, loginFlags } from "./client_flags.ts";
import {
  type MetricsEndpoint,
  proxyMetrics,
  startMetricsEndpoint,
  TimedRouter,
} from "../metrics/mod.ts";

/** memrep's own options, the same with and without -c. */
const SHARED_SPEC: FlagSpec = {
  "auth-file": { type: "string", short: "Y" },
  "backend-auth": { type: "string" },
  "backend-auth-file": { type: "string" },
  metrics: { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "backend-tls": { type: "boolean" },
  "backend-tls-ca": { type: "string" },
  "max-buffered-mb": { type: "string" },
};

const SPEC: FlagSpec = {
  port: { type: "string", short: "p" },
  listen: { type: "string", short: "l" },
  unix: { type: "string" },
  "unix-mode": { type: "string" },
  "max-conns": { type: "string", short: "n" },
  server: { type: "string", short: "s", multiple: true },
  backup: { type: "string", short: "b", multiple: true },
  user: { type: "string", short: "u" },
  group: { type: "string", short: "g" },
  verbose: { type: "boolean", short: "v", multiple: true },
  daemon: { type: "boolean", short: "d" },
  ketama: { type: "boolean", short: "k" },
  hash: { type: "string" },
  timeout: { type: "string" },
  retry: { type: "string" },
  "failure-limit": { type: "string" },
  "no-miss-fallback": { type: "boolean" },
  "backup-writes": { type: "string" },
  zone: { type: "string" },
  ...SHARED_SPEC,
  help: { type: "boolean", short: "h" },
  // nutcracker's stats port, named here only to say that it needs -c.
  "test-conf": { type: "boolean", short: "t" },
  "check-config": { type: "boolean" },
  "stats-port": { type: "string" },
  "stats-addr": { type: "string", short: "a" },
  "stats-interval": { type: "string", short: "i" },
};

/**
 * With -c: nutcracker's own options, letters and values as nutcracker
 * takes them (-s stats port, -p pid file, -o log file, -v level, -m mbuf
 * size), and memrep's that apply to every pool.
 */
const NC_SPEC: FlagSpec = {
  help: { type: "boolean", short: "h" },
  "conf-file": { type: "string", short: "c" },
  "test-conf": { type: "boolean", short: "t" },
  "check-config": { type: "boolean" },
  daemonize: { type: "boolean", short: "d" },
  // -v N is taken out first (see ncVerbosity); memrep's -v/-vv stay.
  verbose: { type: "boolean", short: "v", multiple: true },
  output: { type: "string", short: "o" },
  "stats-port": { type: "string", short: "s" },
  "stats-addr": { type: "string", short: "a" },
  "stats-interval": { type: "string", short: "i" },
  "pid-file": { type: "string", short: "p" },
  "mbuf-size": { type: "string", short: "m" },
  "describe-stats": { type: "boolean", short: "D" },
  daemon: { type: "boolean" },
  user: { type: "string", short: "u" },
  group: { type: "string", short: "g" },
  ...SHARED_SPEC,
};

/** True when the arguments name a config file (-c, --conf-file): nutcracker's options then. */
function namesConfFile(args: readonly string[]): boolean {
  // -c alone, with its value attached, or after nutcracker's on/off letters (-dc file).
  return args.some((a) => /^--conf-file(=|$)/.test(a) || /^-[dtDh]*c/.test(a));
}

/**
 * nutcracker's -v N (also -vN, --verbose=N, --verbose N) taken out of
 * `args`: its level, 0..11 (5, notice, by default), and the rest.
 */
function ncVerbosity(args: readonly string[]): { rest: string[]; level?: number } {
  const rest: string[] = [];
  let level: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const attached = /^(?:-v|--verbose=)(\d+)$/.exec(args[i]);
    if (attached) level = Number(attached[1]);
    else if (/^(-v|--verbose)$/.test(args[i]) && /^\d+$/.test(args[i + 1] ?? "")) {
      level = Number(args[++i]);
    } else rest.push(args[i]);
  }
  return { rest, level };
}

/** Help text for `memrep proxy --help`. */
export const PROXY_HELP =
  `Usage: memrep proxy -s host:port [-s host:port ...] [-b host:port ...] [options]

A memcached proxy (magent-compatible flags) that spreads keys over the
servers (-s) and copies every write to the backups (-b). Reads fall back to
a backup when a server is down, slow, or restarted empty, and the server is
repaired from the backup.

magent options:
  -s, --server <host:port>   a primary memcached, repeatable (order matters for hashing);
                             host:port@zone puts it in a zone (see --zone); an absolute
                             path is a unix socket (memcached -s)
  -b, --backup <host:port>   a backup memcached holding a copy of every key, repeatable;
                             host:port@zone: backups in the proxy's zone are tried first
  -p, --port <num>           TCP port to listen on (default 11211)
  -l, --listen <addr>        address to listen on (default 0.0.0.0)
  --unix <path>              listen on this unix-domain socket instead of TCP (a socket file
                             left there is replaced; nutcracker's listen: /path)
  --unix-mode <octal>        the socket file's permissions, e.g. 0666 (default: the umask's)
  -n, --max-conns <num>      max simultaneous client connections (default 4096)
  -k, --ketama               consistent hashing (the default)
  -v, --verbose              -v backend up/down events, -vv details
  -d, --daemon               run in the background
  -u, --user <name>          accepted for compatibility; memrep does not switch users
  -g, --group <name>         accepted for compatibility

memrep options:
  --hash ketama|modula       ketama: twemproxy-compatible ring (distribution ketama, hash md5);
                             modula: magent's modulo of a DJB hash (default ketama)
  --timeout <ms>             connect and request timeout per backend (default 1000)
  --retry <ms>               retry a server marked down this often (default 1000)
  --failure-limit <num>      consecutive failures that mark a server down (default 2)
  --no-miss-fallback         do not look in the backups when a server answers a miss
  --backup-writes sync|async sync: answer a write once the backups acknowledged their copies
                             (default async: as soon as the server answered)
  --zone <name>              the proxy's zone. With -s in zones, each zone is a full copy on
                             its own ring: reads go to this zone's server for the key, then
                             the other zones', then -b; writes reach the key's server in
                             every zone (the others as backup copies)
  -Y, --auth-file <file>     clients log in first, as with memcached -Y ('user:password' lines);
                             binary clients with SASL PLAIN (memcached -S) against the same users
  --backend-auth <user:pw>   log in to backends that run with -Y (memcached or memrep serve)
  --backend-auth-file <file> the same, the first 'user:password' line of <file>
  --metrics <host:port>      serve Prometheus metrics at http://<host:port>/metrics
                             (requests, latency per command class, errors, fallbacks,
                             repairs, backend up/down and queues)
  --tls-cert <pem>           clients connect with TLS: the certificate chain...
  --tls-key <pem>            ...and its key (both, or neither)
  --backend-tls              speak TLS to the backends (memcached -Z, memrep serve -Z)
  --backend-tls-ca <pem>     ...trusting this CA (implies --backend-tls; default: system roots)
  --max-buffered-mb <num>    reply bytes all client connections may hold before those
                             holding over 256 KB stop sending requests until their clients
                             read (clients that read go on; default ${DEFAULT_BUFFERED_MB})
  -h, --help                 this help

nutcracker config mode (every pool of the file in one process; see README):
  With -c, the options are nutcracker's (and -Y, --backend-auth*, --metrics, -u, -g):
  -c, --conf-file <file>     nutcracker.yml: pools, listen, hash, distribution, servers...
  -t, --test-conf            check the file and exit (also --check-config)
  -d, --daemonize            run in the background
  -s, --stats-port <num>     nutcracker's JSON stats port (default 22222)
  -a, --stats-addr <addr>    stats address (default 0.0.0.0)
  -i, --stats-interval <ms>  accepted; memrep's counters are live
  -p, --pid-file <file>      write the process id there (removed at exit)
  -o, --output <file>        log to this file (default stderr)
  -v, --verbose <N>          nutcracker's log level: 6 is -v, 7 and up -vv (-v/-vv work too)
  -m, --mbuf-size <num>      accepted (512..16777216); memrep sizes its buffers itself
  SIGHUP re-reads the file; a bad file is refused and the running config kept.

Commands answered by the proxy: version, verbosity, quit, mn; stats (STAT lines:
the proxy's own plus counters summed over the servers), stats items|slabs|sizes
(merged), stats settings, stats reset (every backend), stats proxy (counters,
backend states, refills), stats agent (magent's server list). flush_all goes to
every backend. A backup that returns (or restarted empty) is refilled from the
servers in the background. Clients may speak text, meta or the binary protocol
(picked by the first byte, as memcached -B auto); backends are spoken to in
text/meta.
`;

/** Run `memrep proxy`; resolves with the exit code once the proxy stops. */
export async function proxyMain(args: string[]): Promise<number> {
  const nc = namesConfFile(args);
  let ncLevel: number | undefined;
  if (nc) ({ rest: args, level: ncLevel } = ncVerbosity(args));
  else {
    const level = args.findIndex((a, i) => /^\d+$/.test(a) && /^(-v|--verbose)$/.test(args[i - 1]));
    if (level > 0) {
      throw new UsageError(
        `memrep proxy: -v takes no level (nutcracker's -v ${
          args[level]
        } needs -c): use -v for events, -vv for details`,
      );
    }
  }
  const v = parseFlags(args, nc ? NC_SPEC : SPEC, "proxy");
  if (v.help) {
    console.log(PROXY_HELP);
    return 0;
  }
  // nutcracker's levels: 6 = info (memrep's -v), 7 = debug and up (-vv).
  log.level = ncLevel === undefined
    ? countFlag(v, "verbose")
    : ncLevel >= 7
    ? 2
    : ncLevel >= 6
    ? 1
    : 0;
  replyBudget.limit = intFlag(v, "max-buffered-mb", DEFAULT_BUFFERED_MB, 1, 1 << 20) * 1048576;
  if (v["describe-stats"]) {
    throw new UsageError(
      "memrep proxy: -D/--describe-stats is not supported: see README (stats port)",
    );
  }
  const metricsFlag = stringFlag(v, "metrics");
  const metricsAddr = metricsFlag === undefined
    ? undefined
    : parseHostPort(metricsFlag, "--metrics");
  const authFile = stringFlag(v, "auth-file");
  let auth: Authenticator | undefined;
  try {
    auth = authFile === undefined ? undefined : Authenticator.load({ sasl: true, authFile });
  } catch (err) {
    if (err instanceof AuthFileError) throw new UsageError(err.message);
    throw err;
  }
  const confFile = stringFlag(v, "conf-file");
  if (confFile !== undefined) {
    if (["tls-cert", "tls-key", "backend-tls", "backend-tls-ca"].some((f) => v[f] !== undefined)) {
      throw new UsageError("memrep proxy: the --tls-* flags work with -s/-b, not yet with -c");
    }
    const { checkConfig, configMain } = await import("./proxy_config.ts");
    const test = v["test-conf"] || v["check-config"];
    if ((v.daemonize || v.daemon) && !test && !isDaemonized()) {
      // Refuse a bad file here, in the foreground; the daemon is ready once its first pool listens.
      const first = (await checkConfig(confFile))[0].listen;
      return await daemonize(
        first.host,
        first.port,
        log.level > 0 && v.output === undefined, // with -o, its log goes to the file
        { unixPath: first.path },
      );
    }
    if (auth) reloadOnHangup(auth);
    const access = {
      auth,
      login: loginFlags(v, "backend-auth", "backend-auth-file"),
      routerClass: metricsAddr ? TimedRouter : undefined,
    };
    return await configMain(v, confFile, access, metricsAddr);
  }
  for (const f of ["test-conf", "check-config", "stats-port", "stats-addr", "stats-interval"]) {
    if (v[f] !== undefined) throw new UsageError(`memrep proxy: --${f} needs -c <nutcracker.yml>`);
  }
  const port = intFlag(v, "port", 11211, 0, 65535);
  const hostname = stringFlag(v, "listen") ?? "0.0.0.0";
  const { unixPath, unixMode } = unixFlags(v);
  const maxConnections = intFlag(v, "max-conns", 4096, 1, 1 << 20);
  const tls = proxyTls(stringFlag(v, "tls-cert"), stringFlag(v, "tls-key"));
  if (tls && unixPath !== undefined) {
    throw new UsageError("memrep proxy: --tls-cert/--tls-key work on TCP, not with --unix");
  }
  const zoned = (flag: string, text: string) => {
    const { addr, zone } = splitZone(text);
    if (zone === "") throw new UsageError(`${flag}: empty zone in '${text}'`);
    // An absolute path is a unix-domain socket (as nutcracker's `- /path:weight`).
    if (addr.startsWith("/")) return { host: addr, port: 0, zone };
    return { ...parseHostPort(addr, flag, 11211), zone };
  };
  const servers = listFlag(v, "server").map((s) => zoned("-s", s));
  const proxyZone = stringFlag(v, "zone");
  if (proxyZone === "") throw new UsageError("--zone: empty zone name");
  // As localFirst does for the config file: backups in the proxy's zone first.
  const backups = listFlag(v, "backup").map((s) => zoned("-b", s)).sort((a, b) =>
    Number(b.zone === proxyZone && proxyZone !== undefined) -
    Number(a.zone === proxyZone && proxyZone !== undefined)
  );
  let plan: ZonePlan;
  try {
    plan = planZones(servers.map((s) => s.zone), proxyZone);
  } catch (err) {
    if (err instanceof ZoneError) throw new UsageError(`memrep proxy: -s: ${err.message}`);
    throw err;
  }
  if (plan.local !== undefined && proxyZone !== undefined && plan.local !== proxyZone) {
    log.warn(
      `memrep proxy: no -s is in zone '${proxyZone}': reads go to zone '${plan.local}' first`,
    );
  }
  if (servers.length === 0) {
    throw new UsageError("memrep proxy: at least one -s host:port is required (try --help)");
  }
  const hash = stringFlag(v, "hash") ?? "ketama";
  if (hash !== "ketama" && hash !== "modula") {
    throw new UsageError(`--hash: expected ketama or modula, got '${hash}'`);
  }
  if (v.ketama && hash === "modula") throw new UsageError("-k and --hash modula contradict");
  const backupWrites = stringFlag(v, "backup-writes") ?? "async";
  if (backupWrites !== "sync" && backupWrites !== "async") {
    throw new UsageError(`--backup-writes: expected sync or async, got '${backupWrites}'`);
  }
  const syncBackups = backupWrites === "sync";
  const backendOptions = {
    timeoutMs: intFlag(v, "timeout", 1000, 1, 3_600_000),
    retryMs: intFlag(v, "retry", 1000, 1, 3_600_000),
    failureLimit: intFlag(v, "failure-limit", 2, 1, 1000),
    login: loginFlags(v, "backend-auth", "backend-auth-file"),
    tls: clientTlsFlags(v, "backend-tls", "backend-tls-ca"),
  };
  if (backendOptions.tls && [...servers, ...backups].some((s) => s.port === 0)) {
    throw new UsageError("memrep proxy: --backend-tls is for TCP backends, not unix sockets");
  }
  if (v.daemon && !isDaemonized()) {
    return await daemonize(
      hostname,
      port,
      log.level > 0,
      { unixPath },
    );
  }
  // Said by the process that serves (with -d, the background one).
  const user = stringFlag(v, "user");
  if (user !== undefined) log.info(`memrep proxy: -u ${user} ignored (no privilege drop)`);

  const backend = (
    s: { host: string; port: number; zone?: string },
    role: "server" | "backup",
    n: number,
  ) => {
    const b = new Backend(s.host, s.port, role, n, backendOptions);
    b.zone = s.zone;
    return b;
  };
  // Each zone's servers on their own ring, in -s order.
  const ring = (members: number[]) =>
    hash === "modula" ? new Modula(members.length) : new Ketama(
      members.map((i) => ({ name: ketamaName(servers[i].host, servers[i].port), weight: 1 })),
    );
  const primaries = plan.localMembers.map((i, n) => backend(servers[i], "server", n + 1));
  let n = 0;
  const zones = plan.remote.map((z) => ({
    name: z.name,
    servers: z.members.map((i) => backend(servers[i], "backup", ++n)),
    dist: ring(z.members),
  }));
  const spares = backups.map((s) => backend(s, "backup", ++n));
  const routerArgs = [
    primaries,
    spares,
    ring(plan.localMembers),
    new ProxyStats(),
    { missFallback: !v["no-miss-fallback"], syncBackups, zones, zone: plan.local },
    PROXY_VERSION,
  ] as const;
  // Requests are timed only when metrics are asked for (TimedRouter wraps handle()).
  const router = metricsAddr ? new TimedRouter(...routerArgs) : new Router(...routerArgs);
  const server = new ProxyServer(
    { hostname, port, unixPath, unixMode, maxConnections, maxValue: 256 * 1048576, auth, tls },
    router,
  );
  // Signal handlers first: a SIGTERM that arrives as soon as the port answers must stop cleanly.
  const stop = () => server.stop();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, stop);
    } catch { /* not on this OS */ }
  }
  if (auth) reloadOnHangup(auth);
  try {
    server.listen();
  } catch (err) {
    throw new UsageError(
      `memrep proxy: cannot listen on ${unixPath ?? `${hostname}:${port}`}: ${errorText(err)}`,
    );
  }
  let metrics: MetricsEndpoint | undefined;
  if (metricsAddr) {
    try {
      metrics = startMetricsEndpoint(
        metricsAddr,
        proxyMetrics(() => [{ router }]),
        (err) => log.warn(`memrep proxy: metrics: ${errorText(err)}`),
      );
    } catch (err) {
      server.stop();
      for (const b of router.backends) b.close();
      throw new UsageError(
        `memrep proxy: --metrics: cannot listen on ${metricsFlag}: ${errorText(err)}`,
      );
    }
    log.info(`memrep proxy: metrics on http://${metricsFlag}/metrics`);
  }
  const zoneNote = plan.local === undefined
    ? ""
    : `, zone ${plan.local} (${zones.length} other zones: ${zones.map((z) => z.name).join(" ")})`;
  log.info(
    `memrep proxy: listening on ${unixPath ?? `${hostname}:${server.port}`}, ` +
      `${primaries.length} servers, ` +
      `${spares.length} backups, ${hash}${zoneNote}`,
  );
  await server.finished;
  await metrics?.close();
  for (const b of router.backends) b.close();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.removeSignalListener(signal, stop);
    } catch { /* not on this OS */ }
  }
  return 0;
}

/** --unix <path> (replacing -p/-l, which are refused beside it) and --unix-mode <octal>. */
function unixFlags(
  v: Parameters<typeof stringFlag>[0],
): { unixPath: string | undefined; unixMode: number | undefined } {
  const unixPath = stringFlag(v, "unix");
  const modeText = stringFlag(v, "unix-mode");
  if (unixPath === undefined) {
    if (modeText !== undefined) throw new UsageError("memrep proxy: --unix-mode needs --unix");
    return { unixPath, unixMode: undefined };
  }
  if (!unixPath.startsWith("/") || unixPath.includes("\0")) {
    throw new UsageError(
      `memrep proxy: --unix: expected an absolute socket path, got '${unixPath}'`,
    );
  }
  for (const f of ["port", "listen"]) {
    if (v[f] !== undefined) {
      throw new UsageError(`memrep proxy: --${f} and --unix contradict (--unix replaces TCP)`);
    }
  }
  if (modeText !== undefined && (!/^[0-7]+$/.test(modeText) || parseInt(modeText, 8) > 0o777)) {
    throw new UsageError(
      `memrep proxy: --unix-mode: expected octal permissions, got '${modeText}'`,
    );
  }
  return { unixPath, unixMode: modeText === undefined ? undefined : parseInt(modeText, 8) };
}
