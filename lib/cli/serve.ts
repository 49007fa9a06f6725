/**
 * `memrep serve`: memcached's flags (and repcached's -x/-X), then start the
 * server and, when asked, replication.
 * @module
 */

import {
  type BindingProtocol,
  defaultOutputLimit,
  Engine,
  type ListenAddress,
  Server,
  ServerClock,
  startThreads,
  type Threads,
  VERSION,
} from "../server/mod.ts";
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
import { MEMREP_VERSION } from "../version.ts";
import { atoi, memcachedNumbers } from "./memcached_flags.ts";
import { type AuthConfig, AuthFileError, reloadOnHangup } from "../auth/mod.ts";
import { serveTls } from "./tls_flags.ts";
import { hostPort, listenArg, parseListen } from "./listen_flags.ts";
import { replicationOptions } from "./repl_flags.ts";
import { loadWarmImage, openWarmImage, saveWarmImage } from "./warm_restart.ts";
import { normalizeServeArgs, SERVE_HELP, SERVE_SPEC } from "./serve_flags.ts";

/** The module extra serve threads run (compile.sh --include's it). */
const WORKER_URL = new URL("./serve_worker.ts", import.meta.url).href;
import { errorText } from "../transport/mod.ts";
import type { Replicator } from "../replication/mod.ts";
import type { MetricsEndpoint } from "../metrics/mod.ts";

/** Run `memrep serve`; resolves with the exit code once the server stops. */
export async function serveMain(argv: string[]): Promise<number> {
  const args = normalizeServeArgs(argv);
  const v = parseFlags(args, SERVE_SPEC, "serve");
  if (v.help) {
    // memcached -h opens with its version line: client test kits read it there
    // (Dalli's finds its server with `memcached -h | head -1`).
    console.log(`memcached ${VERSION}\n`);
    console.log(SERVE_HELP);
    return 0;
  }
  if (v.version) {
    // memcached -V: the version it speaks (memrep's own: `memrep --version`).
    console.log(`memcached ${VERSION}`);
    return 0;
  }
  if (v.license) {
    // memcached -i prints its and libevent's licenses; memrep includes neither's code.
    console.log(
      `memrep ${MEMREP_VERSION}: speaks memcached ${VERSION}'s protocols; no memcached code`,
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
    outputMemLimit: v["max-buffered-mb"] === undefined
      ? defaultOutputLimit(memoryLimit)
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
  // Replication and metrics load only when asked for: a plain serve listens sooner (client
  // test kits spawn memcached and talk to it ~0.1 s later).
  const repl = replication ? await import("../replication/mod.ts") : undefined;
  let server: Server;
  try {
    const warm = memoryFile ? warmEngine(memoryFile, options) : null;
    if (repl && replication && warm?.extra) {
      const state = repl.decodeResume(warm.extra);
      if (typeof state === "string") {
        console.error(`[restart] ${memoryFile}: ${state}, ignored (the peer sends a full copy)`);
      } else replication.resume = state;
    }
    server = new Server(options, warm?.engine ?? new Engine(options));
  } catch (err) {
    if (err instanceof AuthFileError) throw new MemcachedUsageError(err.message);
    throw err;
  }
  // The pid file is there before the port answers: `-d` returns once it answers.
  const pidfile = stringFlag(v, "pidfile");
  let exitCode = 0;
  if (pidfile) Deno.writeTextFileSync(pidfile, `${Deno.pid}\n`);
  // Signal handlers first: a SIGTERM that arrives as soon as the port answers must stop cleanly.
  // A second signal ends the wait for the peer (the stop drain).
  const running: { replicator?: Replicator } = {};
  let signals = 0;
  // memcached stops gracefully on SIGUSR1 and, with -e, saves the cache; memrep's -e saves on all three.
  let save = false;
  const stop = () => {
    save = memoryFile !== undefined;
    if (signals++ === 0) server.stop();
    else running.replicator?.abandonDrain();
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGUSR1"] as const) {
    try {
      Deno.addSignalListener(signal, stop);
    } catch { /* not on this OS */ }
  }
  // The other threads take the main thread's reload (a thread still starting would miss its
  // own SIGHUP and keep other users).
  if (server.authenticator) {
    reloadOnHangup(
      server.authenticator,
      (bytes) => server.engine.peers?.send(-1, { kind: "auth", bytes }),
    );
  }
  const cannotListen = (err: unknown) => {
    if (pidfile) Deno.removeSync(pidfile);
    const where = unixSocket ?? listen.map((l) => hostPort(l.hostname, l.port ?? port)).join(",");
    return new UsageError(`memrep serve: cannot listen on ${where}: ${errorText(err)}`);
  };
  // Scrapes run on this thread's event loop, between batches; they only read counters.
  let metrics: MetricsEndpoint | undefined;
  if (metricsAddr) {
    const { serveMetrics, startMetricsEndpoint } = await import("../metrics/mod.ts");
    try {
      metrics = startMetricsEndpoint(
        metricsAddr,
        serveMetrics(server.engine),
        (err) => log.warn(`memrep serve: metrics: ${errorText(err)}`),
      );
    } catch (err) {
      if (pidfile) Deno.removeSync(pidfile);
      throw new UsageError(
        `memrep serve: --metrics: cannot listen on ${metricsFlag}: ${errorText(err)}`,
      );
    }
    log.info(`memrep serve: metrics on http://${metricsFlag}/metrics`);
  }
  // Worker threads queue their changes for the main thread's replicator through `share`.
  const share = repl && replication && threads > 1
    ? repl.createReplicationShare(
      maxItemSize,
      replication.sync,
      replication.syncDegrade,
      replication.syncTimeoutMs,
    )
    : undefined;
  // TCP, then UDP on the same addresses (memcached binds both before it serves either).
  const listenMain = () => {
    server.listen();
    // memcached gives each thread the UDP socket, one when -l lists several addresses.
    const perSocket = inter?.includes(",") ? 1 : threads;
    if (udpPort !== 0 && unixSocket === undefined) {
      server.listenUdp(udpPort === -1 ? 0 : udpPort, perSocket);
    }
  };
  let workers: Threads | undefined;
  if (threads > 1) {
    // SO_REUSEPORT would let the threads bind next to another server on the port (even one
    // more memrep): refuse a port where something answers. A plain server there makes the
    // bind itself fail.
    const taken = await answering(listen, port);
    if (taken) throw cannotListen(new Error(`${taken} already answers (Address already in use)`));
  }
  // A warm-restarted replicated node first catches up with its peer, bounded, so that it does
  // not answer with what changed there meanwhile: no thread accepts before that (with -p 0 the
  // main thread must bind first to pick the port the workers join).
  const warmReplica = replication?.resume !== undefined && !picksPort;
  // Without replication the main thread listens first and the workers join (SO_REUSEPORT):
  // the port answers without waiting for them to load (memcached answers within
  // milliseconds, and client test kits count on it). With replication the workers listen
  // first, then replication records changes, then the main thread listens: no write before
  // replication records it.
  try {
    // -p 0: the workers join the ports it picks
    if (threads > 1 && (picksPort || !replication)) listenMain();
    if (threads > 1) {
      workers = await startThreads(server, options, threads, WORKER_URL, share, {
        deferListen: warmReplica,
      });
    }
  } catch (err) {
    server.stop();
    await metrics?.close();
    throw cannotListen(err);
  }
  const replicator = repl && replication
    ? new repl.Replicator(server, replication, share)
    : undefined;
  running.replicator = replicator;
  // Restored CAS values are versions: the clock must never issue one below them (a saved
  // replication state has the clock that issued or saw them all).
  const resumed = replication?.resume;
  if (replicator && memoryFile && !(resumed && replicator.hlc.last >= resumed.hlc)) {
    replicator.hlc.observe(largestCas(server.engine));
  }
  const startListening = async () => {
    try {
      await workers?.listen();
      if (!server.listening) listenMain();
    } catch (err) {
      server.stop();
      await metrics?.close();
      throw cannotListen(err);
    }
    if (unixSocket === undefined) writePortFile(server.addresses, server.udpAddresses);
    log.debug(
      `memrep serve: listening on ${
        unixSocket ?? server.addresses.map((a) => hostPort(a.hostname, a.port)).join(",")
      }, ${threads} thread${threads === 1 ? "" : "s"}`,
    );
  };
  const catchUp = replicator !== undefined && resumed !== undefined && !server.listening;
  if (!catchUp) await startListening();
  try {
    if (catchUp) {
      await replicator.start(); // a configuration mistake (secret, port) throws here
      await replicator.catchUp(replication!.timeoutMs, () => signals > 0);
      if (signals === 0) await startListening();
    } else await replicator?.start(); // a configuration mistake (secret, port) throws here
    await server.finished;
  } finally {
    // Clients first (no write after this), then the threads, then the peer gets the rest.
    server.stop();
    await workers?.stopped;
    await replicator?.stop();
    await metrics?.close();
    if (save && memoryFile) exitCode = saveCache(memoryFile, server.engine, replicator);
    if (pidfile) {
      try {
        Deno.removeSync(pidfile);
      } catch { /* gone */ }
    }
  }
  return exitCode;
}

/**
 * memcached's MEMCACHED_PORT_FILENAME: once listening, write one
 * `TCP INET: <port>` (INET6 for an IPv6 address) line per listener, then
 * one `UDP INET: <port>` per UDP socket, to `<file>.lck`, then rename it
 * to the file, so a reader never sees half of it.
 */
function writePortFile(
  addresses: Array<{ hostname: string; port: number }>,
  udp: Array<{ port: number }>,
): void {
  const file = Deno.env.get("MEMCACHED_PORT_FILENAME");
  if (!file) return;
  const family = (host: string) => `INET${host.includes(":") ? "6" : ""}`;
  const lines = [
    ...addresses.map((a) => `TCP ${family(a.hostname)}: ${a.port}\n`),
    // A dual-stack UDP socket is named by its -l entry, as its TCP listener is.
    ...udp.map((u, i) => `UDP ${family(addresses[i]?.hostname ?? "")}: ${u.port}\n`),
  ];
  try {
    Deno.writeTextFileSync(`${file}.lck`, lines.join(""), { append: true });
    Deno.renameSync(`${file}.lck`, file);
  } catch (err) {
    console.error(`Failed to open "${file}.lck": ${errorText(err)}`);
  }
}

/**
 * The engine for `serve -e file`: the saved cache when the file holds a
 * usable one (its clock resumes the saved origin), else an empty one; with
 * what was saved beside the cache (a replicated node's state).
 */
function warmEngine(
  path: string,
  options: ConstructorParameters<typeof Engine>[0],
): { engine: Engine; extra: Uint8Array | null } {
  const image = openWarmImage(path);
  if (image) {
    const engine = new Engine(options, new ServerClock(image.origin));
    const loaded = loadWarmImage(image, engine.store);
    if (loaded) {
      log.info(
        `[restart] loaded ${engine.store.stats.currItems} items (${
          (loaded.bytes / 1048576).toFixed(1)
        } MB) from ${path} in ${Math.round(loaded.ms)} ms`,
      );
      return { engine, extra: loaded.extra ?? null };
    }
  }
  return { engine: new Engine(options), extra: null };
}

/**
 * Saves the stopped server's cache to `path`, with the replicator's state
 * when replicating (the next start resumes from the peer's backlog); the
 * exit code (1 when it could not).
 */
function saveCache(path: string, engine: Engine, replicator?: Replicator): number {
  try {
    const extra = replicator?.resumeImage();
    const saved = saveWarmImage(path, engine.store, engine.clock.origin, extra);
    log.info(
      `[restart] saved ${engine.store.stats.currItems} items (${
        (saved.bytes / 1048576).toFixed(1)
      } MB${extra ? ", replication state" : ""}) to ${path} in ${Math.round(saved.ms)} ms`,
    );
    return 0;
  } catch (err) {
    console.error(`[restart] cannot save the cache to ${path}: ${errorText(err)}`);
    return 1;
  }
}

/** The largest CAS among the items (a scan: only when a restored cache meets replication). */
function largestCas(engine: Engine): number {
  const store = engine.store;
  let max = 0;
  let cursor = 0;
  while (cursor !== -1) {
    engine.beginBatch(); // serve threads may be running already
    try {
      cursor = store.scan(cursor, 65536, (h) => {
        const cas = store.cas(h);
        if (cas > max) max = cas;
      });
    } finally {
      engine.endBatch();
    }
  }
  return max;
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
