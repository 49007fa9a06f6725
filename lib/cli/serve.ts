/**
 * `memrep serve`: memcached's flags (and repcached's -x/-X) read into a
 * {@linkcode ServePlan}, the port bound, then serve_run.ts loads and starts
 * the server and, when asked, replication. This module loads little, so the
 * port answers within Deno's start-up.
 * @module
 */

import type { BindingProtocol } from "../server/engine_options.ts";
import { daemonize, isDaemonized } from "./daemon.ts";
import {
  countFlag,
  intFlag,
  listFlag,
  MemcachedUsageError,
  parseFlags,
  parseHostPort,
  stringFlag,
  UsageError,
} from "./flags.ts";
import { log } from "../log.ts";
import { MEMCACHED_VERSION, MEMREP_VERSION } from "../version.ts";
import { atoi, memcachedNumbers } from "./memcached_flags.ts";
import type { AuthConfig } from "../auth/mod.ts";
import { serveTls } from "./tls_flags.ts";
import { hostPort, listenArg, parseListen } from "./listen_flags.ts";
import { replicationOptions } from "./repl_flags.ts";
import { cannotListen, removePidFile, type ServePlan, ServeSignals } from "./serve_plan.ts";
import { normalizeServeArgs, SERVE_HELP, SERVE_SPEC } from "./serve_flags.ts";
import {
  bindDatagrams,
  bindListeners,
  closeListeners,
  type ListenAddress,
} from "../transport/mod.ts";

// Not literal specifiers: Deno would read all their sources before this module runs
// (compile.sh --include's serve_run.ts; auth is in its graph).
/** The module that runs the server. */
const SERVE_RUN_URL = new URL("./serve_run.ts", import.meta.url).href;
/** -S / -Y: the password files are read before the port answers. */
const AUTH_URL = new URL("../auth/mod.ts", import.meta.url).href;

/** Run `memrep serve`; resolves with the exit code once the server stops. */
export async function serveMain(argv: string[]): Promise<number> {
  const args = normalizeServeArgs(argv);
  const v = parseFlags(args, SERVE_SPEC, "serve");
  if (v.help) {
    // memcached -h opens with its version line: client test kits read it there
    // (Dalli's finds its server with `memcached -h | head -1`).
    console.log(`memcached ${MEMCACHED_VERSION}\n`);
    console.log(SERVE_HELP);
    return 0;
  }
  if (v.version) {
    // memcached -V: the version it speaks (memrep's own: `memrep --version`).
    console.log(`memcached ${MEMCACHED_VERSION}`);
    return 0;
  }
  if (v.license) {
    // memcached -i prints its and libevent's licenses; memrep includes neither's code.
    console.log(
      `memrep ${MEMREP_VERSION}: speaks memcached ${MEMCACHED_VERSION}'s protocols; no memcached code`,
    );
    return 0;
  }
  log.level = countFlag(v, "verbose");
  // memcached: -U <n> (not 0) without -p makes n the TCP port too; -p -1 is a port the
  // system picks (memrep's -p 0 picks one too).
  const udpText = stringFlag(v, "udp-port");
  const portText = stringFlag(v, "port") ??
    (udpText !== undefined && atoi(udpText) !== 0 ? String(atoi(udpText)) : undefined);
  const port = portText === "-1"
    ? 0
    : intFlag(portText === undefined ? {} : { port: portText }, "port", 11211, 0, 65535);
  // memcached's own conversions and refusals, with its messages (memcached_flags.ts).
  const mc = memcachedNumbers({
    m: stringFlag(v, "memory-limit"),
    c: stringFlag(v, "conn-limit"),
    t: stringFlag(v, "threads"),
    I: stringFlag(v, "max-item-size"),
    f: stringFlag(v, "factor") ?? stringFlag(v, "slab-growth-factor"),
    n: stringFlag(v, "slab-min-size"),
    R: stringFlag(v, "max-reqs-per-event"),
    b: stringFlag(v, "listen-backlog"),
    C: Boolean(v["disable-cas"]),
    D: stringFlag(v, "prefix-delimiter"),
    N: stringFlag(v, "napi_ids"),
    o: listFlag(v, "extended"),
  });
  mc.startup.dumpEnabled = !v["disable-dumping"];
  // memcached -L preallocates its memory in huge pages; memrep's memory is the runtime's (and
  // Deno reads /sys only with every permission, so the kernel's support is not even checked).
  if (v["enable-largepages"]) log.info("memrep: -L accepted; memory uses the runtime's pages");
  // memcached -k goes on when mlockall fails, with this warning; memrep cannot call it.
  if (v["lock-memory"]) {
    log.warn("warning: -k invalid, mlockall() failed: memrep cannot lock its memory");
  }
  for (const w of mc.warnings) log.warn(w);
  // Page ids stop at MAX_PAGES (32 GiB): a larger (or "negative", so unlimited) -m is that.
  const memoryLimit = Math.min(mc.maxBytes, 32 * 1073741824);
  const maxItemSize = mc.itemSizeMax;
  const factor = mc.factor;
  const protocol = stringFlag(v, "protocol");
  if (
    protocol !== undefined && protocol !== "ascii" && protocol !== "auto" && protocol !== "binary"
  ) {
    throw new MemcachedUsageError(
      `Invalid value for binding protocol: ${protocol}\n -- should be one of auto, binary, or ascii`,
    );
  }
  const auth = authConfig(v, protocol);
  const unixSocket = stringFlag(v, "unix-socket");
  if (unixSocket === "") throw new UsageError("-s: the socket path is empty");
  const maskText = stringFlag(v, "unix-mask");
  // memcached reads -a with strtol(.., 8): the leading octal digits, 0 when there are none.
  const unixMask = maskText === undefined
    ? undefined
    : parseInt(/^\s*[0-7]*/.exec(maskText)![0].trim() || "0", 8);
  const memoryFile = stringFlag(v, "memory-file");
  if (memoryFile === "") throw new UsageError("-e: the memory file name is empty");
  // -l after the flags above, as memcached reads it only when it binds: the list
  // (`stats settings` inter) and its listeners, refused with its messages (listen_flags.ts).
  const inter = listenArg(listFlag(v, "listen"));
  const listen = unixSocket === undefined
    ? parseListen(inter, Boolean(v["enable-ssl"]), port)
    : unixListenHosts(inter, Boolean(v["enable-ssl"]), port);
  const hostnames = listen.map((l) => l.hostname);
  // The listeners without a port of their own share -p's; with -p 0 the first one picks it.
  const picksPort = listen.some((l) => (l.port ?? port) === 0);
  const replication = replicationOptions(v, hostnames[0], hostnames);
  const metricsFlag = stringFlag(v, "metrics");
  const metricsAddr = metricsFlag === undefined
    ? undefined
    : parseHostPort(metricsFlag, "--metrics");
  const cores = navigator.hardwareConcurrency || 1;
  // Threads share the port through SO_REUSEPORT, which only Linux load-balances (Deno ignores it elsewhere).
  const spread = Deno.build.os === "linux";
  let threads = Math.min(mc.threads ?? (spread ? defaultThreads(cores) : 1), 64);

  if (v.daemon && !isDaemonized()) {
    return await daemonize(
      listen[0].hostname,
      listen[0].port ?? port,
      log.level > 0,
      // Loading a saved cache comes before listening: allow for a large one.
      { unixPath: unixSocket, waitMs: memoryFile ? 120_000 : 5000 },
    );
  }
  // Said by the process that serves (with -d, the background one).
  if (unixSocket !== undefined && threads > 1) {
    // One socket file, one listener: SO_REUSEPORT has no unix-domain form.
    log.info(`memrep: -s serves with one thread (-t ${threads} ignored)`);
    threads = 1;
  }
  if (threads > 1 && !spread) {
    log.warn(`memrep: -t ${threads} needs Linux (SO_REUSEPORT); serving with one thread`);
    threads = 1;
  }
  // memcached -U (atoi): 0 off, -1 a port the system picks; with -s there is no UDP.
  const udpPort = udpText === undefined ? 0 : atoi(udpText);
  if (udpPort < -1 || udpPort > 65535) {
    throw new UsageError(`memrep serve: -U: ${udpText} is not a UDP port (0 to 65535, or -1)`);
  }
  if (udpPort !== 0 && auth) {
    throw new MemcachedUsageError(
      auth.authFile
        ? "Cannot use UDP with ascii authentication enabled (-U 0 to disable)"
        : "ERROR: Cannot enable UDP while using binary SASL authentication.",
    );
  }
  if (stringFlag(v, "user") !== undefined) {
    log.info(`memrep: -u ${stringFlag(v, "user")} ignored (no privilege drop)`);
  }
  const tlsFlags = serveTls(Boolean(v["enable-ssl"]), listFlag(v, "extended"), unixSocket);
  for (const o of tlsFlags.otherExtended) log.info(`memrep: -o ${o} ignored`);
  if (stringFlag(v, "repl-queue") !== undefined) {
    const queue = intFlag(v, "repl-queue", 0); // checked, then ignored
    log.info(`memrep: -q ${queue} ignored (the replication backlog is sized by --repl-backlog)`);
  }

  const options = {
    listen,
    tls: tlsFlags.tls,
    extraSettings: tlsFlags.settings,
    port,
    udpPort,
    listenArg: inter,
    maxConnections: mc.maxConnections,
    idleTimeout: Math.max(mc.idleTimeout, 0),
    reqsPerEvent: mc.reqsPerEvent,
    readBufMemLimit: mc.readBufMemLimit,
    // Absent: the server's default for -m (serve_run.ts).
    outputMemLimit: v["max-buffered-mb"] === undefined
      ? undefined
      : intFlag(v, "max-buffered-mb", 0, 1, 1 << 20) * 1048576,
    slabChunkMax: mc.slabChunkMax,
    startup: mc.startup,
    memoryLimit,
    maxItemSize,
    evict: !v["disable-evictions"],
    growthFactor: factor,
    minChunk: Math.min(Math.max(mc.chunkSize, 8), 1048576),
    enableShutdown: Boolean(v["enable-shutdown"]),
    // memcached: -S serves binary only, -Y text only (memrep's -S -Y: both, one user file).
    protocol: (protocol ??
      (auth?.sasl && !auth.authFile
        ? "binary"
        : auth?.authFile && !auth.sasl
        ? "ascii"
        : "auto")) as BindingProtocol,
    reusePort: threads > 1,
    auth: auth ?? undefined,
    flushDisabled: Boolean(v["disable-flush-all"]),
    watchDisabled: Boolean(v["disable-watch"]),
    gracefulBySignal: Deno.build.os !== "windows",
    memoryFile,
    unixSocket,
    unixMask,
  };
  if (auth) {
    // Read the password files before the port answers: a bad one ends serve without answering,
    // as memcached (the threads, and a SIGHUP that finds the file broken, start from these bytes).
    const { Authenticator, AuthFileError }: typeof import("../auth/mod.ts") = await import(
      AUTH_URL
    );
    try {
      options.auth = Authenticator.load(auth).current;
    } catch (err) {
      if (err instanceof AuthFileError) throw new MemcachedUsageError(err.message);
      throw err;
    }
  }
  const where = unixSocket ?? listen.map((l) => hostPort(l.hostname, l.port ?? port)).join(",");
  const plan: ServePlan = {
    options,
    threads,
    picksPort,
    // memcached -U on the TCP addresses (none with -s): -1 is a port the system picks.
    udp: udpPort !== 0 && unixSocket === undefined ? Math.max(udpPort, 0) : undefined,
    replication,
    metricsAddr,
    metricsFlag,
    pidfile: stringFlag(v, "pidfile"),
    where,
    signals: new ServeSignals(),
  };
  // The pid file is there before the port answers: `-d` returns once it answers.
  if (plan.pidfile) Deno.writeTextFileSync(plan.pidfile, `${Deno.pid}\n`);
  try {
    if (threads > 1) {
      // SO_REUSEPORT would let the threads bind next to another server on the port (even one
      // more memrep): refuse a port where something answers (a connection, not a bind: a
      // probing listener would take, then reset, a client's connection). A plain server there
      // makes the bind itself fail.
      const taken = await answering(listen, port);
      if (taken) throw new Error(`${taken} already answers (Address already in use)`);
    }
    // The port answers before the server loads (its connections wait in the backlog): client
    // test kits talk to a spawned memcached 0.1 s after they start it, and loading the server
    // takes Deno about that long. Not when the port must wait: a saved cache loads first (-e,
    // as memcached), and replication orders its listeners itself (serve_run.ts).
    // Nor with --metrics: its endpoint needs the engine, and scrapes count on it with the port.
    if (!replication && !memoryFile && !metricsAddr) {
      const bound = plan.bound = bindListeners(options);
      if (plan.udp !== undefined) {
        try {
          bound.udp = bindDatagrams(options.listen, plan.udp);
        } catch (err) {
          closeListeners(bound);
          throw err;
        }
      }
    }
  } catch (err) {
    removePidFile(plan.pidfile);
    throw cannotListen(where, err);
  }
  const run: typeof import("./serve_run.ts") = await import(SERVE_RUN_URL);
  return await run.runServe(plan);
}

/**
 * Serve threads when -t is not given: the cores, at most 4. Measured on 2
 * cores (README, benchmark notes; -t 1..4 alternating in one run): -t 2
 * gave the most throughput (0.85x memcached's, -t 1 0.71x) for ~9% more
 * CPU per request than -t 1; -t 3 and -t 4 (more loops than cores) cost
 * more CPU per request and gave less throughput than -t 2. -t 1 is the
 * cheaper choice for a host whose cores are busy with other work.
 */
function defaultThreads(cores: number): number {
  return Math.min(cores, 4);
}

/**
 * -S / -Y / MEMCACHED_SASL_PWDB, with memcached's refusals of a protocol
 * that cannot authenticate. Null when nothing asks for authentication.
 */
function authConfig(v: Parameters<typeof stringFlag>[0], protocol?: string): AuthConfig | null {
  const sasl = Boolean(v["enable-sasl"]);
  const authFile = stringFlag(v, "auth-file");
  if (!sasl && authFile === undefined) return null;
  if (authFile === "") throw new UsageError("-Y: the auth file name is empty");
  // memcached: -S wants -B binary and -Y wants -B ascii when -B is given (so -S -Y takes no -B).
  if (sasl && protocol !== undefined && protocol !== "binary") {
    throw new MemcachedUsageError("ERROR: You cannot allow the ASCII protocol while using SASL.");
  }
  if (authFile && protocol !== undefined && protocol !== "ascii") {
    throw new MemcachedUsageError(
      "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.",
    );
  }
  const pwdbFile = sasl ? Deno.env.get("MEMCACHED_SASL_PWDB") || undefined : undefined;
  return { sasl, authFile, pwdbFile };
}

/**
 * The first listen address (its own port, else `port`; a picked one
 * skipped) that accepts a TCP connection (wildcards tried on loopback).
 */
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

async function answering(listen: ListenAddress[], port: number): Promise<string | undefined> {
  for (const l of listen) {
    const host = l.hostname;
    const at = l.port ?? port;
    if (at === 0) continue;
    const target = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
    const attempt = Deno.connect({ hostname: target, port: at }).then((c) => {
      c.close();
      return true;
    }, () => false);
    // Loopback answers or refuses at once; only another host's address may hang. (Deno's first
    // timer costs ~10 ms of start-up.)
    if (LOOPBACK.test(target)) {
      if (await attempt) return hostPort(target, at);
      continue;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((r) => timer = setTimeout(() => r(false), 1000));
    const answered = await Promise.race([attempt, late]);
    clearTimeout(timer);
    if (answered) return hostPort(target, at);
  }
  return undefined;
}

/**
 * -l beside -s, which replaces TCP: memcached does not read -l then (no
 * refusal); its hosts still name this node to replication when they parse.
 */
function unixListenHosts(inter: string | undefined, tls: boolean, port: number): ListenAddress[] {
  try {
    return parseListen(inter, tls, port);
  } catch (err) {
    if (err instanceof UsageError) return parseListen(undefined, tls, port);
    throw err;
  }
}
