/**
 * `memrep serve`: memcached's flags (and repcached's -x/-X), then start the
 * server and, when asked, replication.
 * @module
 */

import { type BindingProtocol, Server, startThreads } from "../server/mod.ts";
import { daemonize, withoutDaemonFlag } from "./daemon.ts";
import {
  countFlag,
  type FlagSpec,
  intFlag,
  listFlag,
  parseFlags,
  parseHostPort,
  sizeFlag,
  stringFlag,
  UsageError,
} from "./flags.ts";
import { log } from "../log.ts";
import { errorText } from "../transport/mod.ts";
import { createReplicationShare, Replicator } from "../replication/mod.ts";
import type { ReplicationOptions } from "../replication/mod.ts";

const SPEC: FlagSpec = {
  port: { type: "string", short: "p" },
  listen: { type: "string", short: "l", multiple: true },
  "memory-limit": { type: "string", short: "m" },
  "conn-limit": { type: "string", short: "c" },
  "max-item-size": { type: "string", short: "I" },
  "disable-evictions": { type: "boolean", short: "M" },
  verbose: { type: "boolean", short: "v", multiple: true },
  "udp-port": { type: "string", short: "U" },
  user: { type: "string", short: "u" },
  daemon: { type: "boolean", short: "d" },
  pidfile: { type: "string", short: "P" },
  "enable-shutdown": { type: "boolean", short: "A" },
  threads: { type: "string", short: "t" },
  factor: { type: "string", short: "f" },
  "slab-min-size": { type: "string", short: "n" },
  "max-reqs-per-event": { type: "string", short: "R" },
  protocol: { type: "string", short: "B" },
  extended: { type: "string", short: "o", multiple: true },
  "repl-host": { type: "string", short: "x" },
  "repl-port": { type: "string", short: "X" },
  replicate: { type: "string" },
  "repl-sync": { type: "boolean" },
  "repl-secret": { type: "string" },
  "repl-secret-file": { type: "string" },
  "repl-timeout": { type: "string" },
  "repl-backlog": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** Help text for `memrep serve --help`. */
export const SERVE_HELP = `Usage: memrep serve [options]

A memcached-compatible cache server (text and meta protocol).

memcached options:
  -p, --port <num>            TCP port to listen on (default 11211)
  -l, --listen <addr>         interface to listen on, repeatable or comma separated (default 0.0.0.0)
  -m, --memory-limit <mb>     item memory in megabytes (default 64)
  -c, --conn-limit <num>      max simultaneous connections (default 1024)
  -I, --max-item-size <size>  max item size, e.g. 1m, 512k (default 1m)
  -M, --disable-evictions     return errors on memory exhaustion instead of evicting
  -f, --factor <num>          chunk size growth factor (default 1.25)
  -n, --slab-min-size <bytes> min space for key+value+flags (default 48)
  -A, --enable-shutdown       allow the shutdown command
  -v, --verbose               -v events, -vv details
  -d, --daemon                run in the background
  -P, --pidfile <file>        write the process id to <file>
  -U, --udp-port <num>        UDP is not supported; only 0 (off) is accepted silently
  -u, --user <name>           accepted for compatibility; memrep does not switch users
  -t, --threads <num>         serve threads sharing one cache (default: cores, at most 4;
                              Linux only, elsewhere 1)
  -B, --protocol <name>       auto (default: text or binary, by each connection's first byte),
                              ascii or binary

replication (two nodes, both read-write, like repcached):
  --replicate <host:port>     peer's replication address; this node listens on the same port
                              when the peer does not answer
  -x <host> / -X <port>       repcached's form of the same (default port 11212)
  --repl-secret <text>        shared secret; both sides must match (or MEMREP_REPL_SECRET)
  --repl-secret-file <file>   read the secret from a file
  --repl-sync                 acknowledge writes only after the peer applied them
  --repl-timeout <ms>         declare a silent peer dead after this long (default 2000)
  --repl-backlog <size>       changes kept for partial resync (default 64m)
`;

/** Run `memrep serve`; resolves with the exit code once the server stops. */
export async function serveMain(args: string[]): Promise<number> {
  const v = parseFlags(args, SPEC, "serve");
  if (v.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  log.level = countFlag(v, "verbose");
  const port = intFlag(v, "port", 11211, 0, 65535);
  const hostnames = listFlag(v, "listen").flatMap((l) => l.split(",")).map((h) => h.trim()).filter(
    Boolean,
  );
  if (hostnames.length === 0) hostnames.push("0.0.0.0");
  const memoryMb = intFlag(v, "memory-limit", 64, 1, 1 << 20);
  const maxItemSize = sizeFlag(v, "max-item-size", 1048576);
  if (maxItemSize < 1024 || maxItemSize > 256 * 1048576) {
    throw new UsageError("-I: item size must be between 1k and 256m");
  }
  const factorText = stringFlag(v, "factor");
  const factor = factorText === undefined ? 1.25 : Number(factorText);
  if (!(factor > 1)) throw new UsageError(`-f: factor must be greater than 1, got '${factorText}'`);
  const protocol = stringFlag(v, "protocol");
  if (
    protocol !== undefined && protocol !== "ascii" && protocol !== "auto" && protocol !== "binary"
  ) {
    throw new UsageError(`-B: protocol must be auto, ascii or binary, got '${protocol}'`);
  }
  const replication = replicationOptions(v, hostnames[0]);
  const cores = navigator.hardwareConcurrency || 1;
  // Threads share the port through SO_REUSEPORT, which only Linux load-balances (Deno ignores it elsewhere).
  const spread = Deno.build.os === "linux";
  let threads = intFlag(v, "threads", spread ? Math.min(cores, 4) : 1, 1, 64);

  if (v.daemon) {
    return await daemonize(
      ["serve", ...withoutDaemonFlag(args, SPEC)],
      hostnames[0],
      port,
      log.level > 0,
    );
  }
  // Said by the process that serves (with -d, the background one).
  if (threads > 1 && !spread) {
    log.warn(`memrep: -t ${threads} needs Linux (SO_REUSEPORT); serving with one thread`);
    threads = 1;
  }
  const udp = stringFlag(v, "udp-port");
  if (udp !== undefined && udp !== "0") {
    log.warn(`memrep: UDP is not supported (-U ${udp}); serving TCP only`);
  }
  if (stringFlag(v, "user") !== undefined) {
    log.info(`memrep: -u ${stringFlag(v, "user")} ignored (no privilege drop)`);
  }
  for (const o of listFlag(v, "extended")) log.info(`memrep: -o ${o} ignored`);

  const options = {
    hostnames,
    port,
    maxConnections: intFlag(v, "conn-limit", 1024, 1),
    memoryLimit: memoryMb * 1048576,
    maxItemSize,
    evict: !v["disable-evictions"],
    growthFactor: factor,
    minChunk: intFlag(v, "slab-min-size", 48, 8, 1048576),
    enableShutdown: Boolean(v["enable-shutdown"]),
    protocol: (protocol ?? "auto") as BindingProtocol,
    reusePort: threads > 1,
  };
  const server = new Server(options);
  // The pid file is there before the port answers: `-d` returns once it answers.
  const pidfile = stringFlag(v, "pidfile");
  if (pidfile) Deno.writeTextFileSync(pidfile, `${Deno.pid}\n`);
  // Signal handlers first: a SIGTERM that arrives as soon as the port answers must stop cleanly.
  const stop = () => server.stop();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, stop);
    } catch { /* not on this OS */ }
  }
  const cannotListen = (err: unknown) => {
    if (pidfile) Deno.removeSync(pidfile);
    return new UsageError(
      `memrep serve: cannot listen on ${hostnames.join(",")}:${port}: ${errorText(err)}`,
    );
  };
  // Worker threads queue their changes for the main thread's replicator through `share`.
  const share = replication && threads > 1
    ? createReplicationShare(maxItemSize, replication.sync)
    : undefined;
  if (threads > 1 && port !== 0) {
    // SO_REUSEPORT would let the threads bind next to another server on the port (even one
    // more memrep): refuse a port where something answers. A plain server there makes the
    // bind itself fail.
    const taken = await answering(hostnames, port);
    if (taken) throw cannotListen(new Error(`${taken} already answers (Address already in use)`));
  }
  // Workers listen first, then replication records changes, then the main thread listens:
  // no window where the port answers and then refuses, nor a write before replication.
  try {
    if (threads > 1 && port === 0) server.listen(); // the workers join the port it picks
    if (threads > 1) await startThreads(server, options, threads, share);
  } catch (err) {
    server.stop();
    throw cannotListen(err);
  }
  const replicator = replication ? new Replicator(server, replication, share) : undefined;
  try {
    if (!server.listening) server.listen();
  } catch (err) {
    server.stop();
    throw cannotListen(err);
  }
  log.debug(
    `memrep serve: listening on ${hostnames.join(",")}:${server.port}, ${threads} thread${
      threads === 1 ? "" : "s"
    }`,
  );
  try {
    await replicator?.start(); // a configuration mistake (secret, port) throws here
    await server.finished;
  } finally {
    server.stop();
    await replicator?.stop();
    if (pidfile) {
      try {
        Deno.removeSync(pidfile);
      } catch { /* gone */ }
    }
  }
  return 0;
}

/** The first of `hostnames`:`port` that accepts a TCP connection (wildcards tried on loopback). */
async function answering(hostnames: string[], port: number): Promise<string | undefined> {
  for (const host of hostnames) {
    const target = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
    const attempt = Deno.connect({ hostname: target, port }).then((c) => {
      c.close();
      return true;
    }, () => false);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((r) => timer = setTimeout(() => r(false), 1000));
    const answered = await Promise.race([attempt, late]);
    clearTimeout(timer);
    if (answered) return `${target}:${port}`;
  }
  return undefined;
}

function replicationOptions(
  v: Record<string, unknown>,
  listenHost: string,
): ReplicationOptions | null {
  const values = v as Parameters<typeof stringFlag>[0];
  const replicate = stringFlag(values, "replicate");
  const xHost = stringFlag(values, "repl-host");
  const xPort = stringFlag(values, "repl-port");
  if (!replicate && !xHost && !xPort) {
    for (
      const f of ["repl-sync", "repl-secret", "repl-secret-file", "repl-timeout", "repl-backlog"]
    ) {
      if (values[f] !== undefined) throw new UsageError(`--${f} needs --replicate (or -x/-X)`);
    }
    return null;
  }
  if (replicate && (xHost || xPort)) {
    throw new UsageError("use either --replicate or -x/-X, not both");
  }
  const peer = replicate
    ? parseHostPort(replicate, "--replicate")
    : parseHostPort(`${xHost ?? "127.0.0.1"}:${xPort ?? "11212"}`, "-x/-X");
  let secret = stringFlag(values, "repl-secret") ?? Deno.env.get("MEMREP_REPL_SECRET");
  const secretFile = stringFlag(values, "repl-secret-file");
  if (secretFile) {
    try {
      secret = Deno.readTextFileSync(secretFile).trim();
    } catch (err) {
      throw new UsageError(`--repl-secret-file: cannot read ${secretFile}: ${errorText(err)}`);
    }
  }
  return {
    peer,
    listen: { host: listenHost, port: peer.port },
    secret: secret || undefined,
    sync: Boolean(values["repl-sync"]),
    timeoutMs: intFlag(values, "repl-timeout", 2000, 100, 3_600_000),
    backlogBytes: sizeFlag(values, "repl-backlog", 64 * 1048576),
  };
}
