/**
 * `memrep serve`, once its flags are read (serve.ts): the server, its
 * threads, replication and metrics, started in the order that keeps every
 * write replicated, then the stop and the saved cache.
 * @module
 */

import {
  defaultOutputLimit,
  Engine,
  Server,
  ServerClock,
  startThreads,
  type Threads,
} from "../server/mod.ts";
import { MemcachedUsageError, UsageError } from "./flags.ts";
import { log } from "../log.ts";
import { AuthFileError, authReloader } from "../auth/mod.ts";
import { hostPort } from "./listen_flags.ts";
import { loadWarmImage, openWarmImage, saveWarmImage } from "./warm_restart.ts";
import { closeListeners, errorText } from "../transport/mod.ts";
import type { Replicator } from "../replication/mod.ts";
import type { MetricsEndpoint } from "../metrics/mod.ts";
import { cannotListen as cannotListenOn, removePidFile, type ServePlan } from "./serve_plan.ts";

/** The module extra serve threads run (compile.sh --include's it). */
const WORKER_URL = new URL("./serve_worker.ts", import.meta.url).href;

/** Start the server `plan` describes; resolves with the exit code once it stops. */
export async function runServe(plan: ServePlan): Promise<number> {
  try {
    return await run(plan);
  } catch (err) {
    if (plan.bound) closeListeners(plan.bound);
    removePidFile(plan.pidfile);
    throw err;
  }
}

async function run(plan: ServePlan): Promise<number> {
  const { threads, picksPort, udp, replication, metricsAddr, metricsFlag, pidfile } = plan;
  const options = {
    ...plan.options,
    outputMemLimit: plan.options.outputMemLimit ?? defaultOutputLimit(plan.options.memoryLimit),
  };
  const { memoryFile, unixSocket, maxItemSize } = options;
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
  let exitCode = 0;
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
  plan.signals.stop = stop;
  // The other threads take the main thread's reload (a thread still starting would miss its
  // own SIGHUP and keep other users).
  const reload = server.authenticator &&
    authReloader(
      server.authenticator,
      (bytes) => server.engine.peers?.send(-1, { kind: "auth", bytes }),
    );
  if (reload) plan.signals.hangup = reload;
  const cannotListen = (err: unknown) => cannotListenOn(plan.where, err);
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
    const bound = plan.bound;
    plan.bound = undefined;
    server.listen(bound);
    // memcached gives each thread the UDP socket, one when -l lists several addresses.
    const perSocket = options.listenArg?.includes(",") ? 1 : threads;
    if (udp !== undefined) server.listenUdp(udp, perSocket, bound?.udp);
  };
  let workers: Threads | undefined;
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
    removePidFile(pidfile);
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
