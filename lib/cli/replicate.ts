/**
 * `memrep replicate`: copy a cache between servers, warm one, or dump and
 * restore it.
 * @module
 */

import {
  keyMatcher,
  Progress,
  replicate,
  type ReplicateOptions,
  summaryLine,
} from "../copy/mod.ts";
import {
  type FlagSpec,
  intFlag,
  listFlag,
  parseFlags,
  parseHostPort,
  stringFlag,
  UsageError,
  usageText,
} from "./flags.ts";
import { clientTlsFlags, loginFlags } from "./client_flags.ts";

const SPEC: FlagSpec = {
  from: { type: "string", short: "f" },
  to: { type: "string", short: "t", multiple: true },
  dump: { type: "string" },
  restore: { type: "string" },
  mode: { type: "string" },
  match: { type: "string" },
  limit: { type: "string" },
  json: { type: "boolean" },
  batch: { type: "string" },
  timeout: { type: "string" },
  "connect-timeout": { type: "string" },
  auth: { type: "string" },
  "auth-file": { type: "string" },
  tls: { type: "boolean" },
  "tls-ca": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** Help text for `memrep replicate --help`. */
export const REPLICATE_HELP = `Usage:
  memrep replicate --from <host:port> --to <host:port> [--to <host:port> ...] [options]
  memrep replicate --from <host:port> --dump <file> [options]
  memrep replicate --restore <file> --to <host:port> [options]

Copies every item (value bytes, client flags, remaining TTL) of a running
memcached (>= 1.5) or memrep server to other servers or to a dump file, or
restores a dump. Keys are listed with 'lru_crawler metadump hash' ('all' on
servers before 1.6.9) and values fetched with pipelined meta gets; items that
expire or are evicted meanwhile are skipped, not errors.

Options:
  -f, --from <host:port>    source server (port defaults to 11211)
  -t, --to <host:port>      target server; repeat for several
      --dump <file>         write a dump file ('-' for stdout)
      --restore <file>      read items from a dump file ('-' for stdin) instead of --from
      --mode set|add        set overwrites (default); add only fills keys the target lacks
      --match <pattern>     only keys starting with <pattern>, or matching it as a glob
                            when it holds * ? or [...]
      --limit <n>           copy at most <n> matching items
      --json                print the summary as JSON on stdout
      --batch <n>           items per pipelined batch (default 1000)
      --timeout <ms>        reply timeout per server (default 10000)
      --connect-timeout <ms>  connect timeout per server (default 3000)
      --auth <user:password>  log in to servers that run with -Y (memcached or memrep)
      --auth-file <file>    the same, the first 'user:password' line of <file>
      --tls                 speak TLS to the servers (memcached -Z, memrep serve -Z)
      --tls-ca <pem>        ...trusting this CA (implies --tls; default: system roots)
  -h, --help                this help

On a terminal a live line shows items, bytes, rate and ETA; otherwise one
summary line is printed at the end. Ctrl-C stops cleanly and prints the
summary so far. Exit status: 0 all copied (or skipped), 1 some items or a
server failed, 2 bad flags, 130 interrupted.
`;

/** Run `memrep replicate`; resolves with the exit code. */
export async function replicateMain(args: string[]): Promise<number> {
  let options: ReplicateOptions;
  let json: boolean;
  try {
    const v = parseFlags(args, SPEC, "replicate");
    if (v.help) {
      console.log(REPLICATE_HELP);
      return 0;
    }
    json = v.json === true;
    options = buildOptions(v);
    if (json && options.dump === "-") {
      throw new UsageError("memrep replicate: --json and --dump - both want stdout");
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(usageText("replicate", err));
      return 2;
    }
    throw err;
  }

  const toStdout = options.dump !== "-";
  const say = (text: string) => (toStdout ? console.log(text) : console.error(text));
  const abort = new AbortController();
  let interrupts = 0;
  const onInterrupt = () => {
    if (++interrupts > 1) Deno.exit(130); // a second Ctrl-C does not wait
    abort.abort();
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  let live = false;
  try {
    live = Deno.stderr.isTerminal();
  } catch { /* not a terminal */ }
  options.signal = abort.signal;
  options.progress = new Progress({ live });
  try {
    const { summary, fatal, setupFailed } = await replicate(options);
    if (fatal !== undefined) console.error(`memrep replicate: ${fatal}`);
    for (const e of summary.errors) console.error(`memrep replicate: ${e}`);
    if (!setupFailed || json) {
      if (json) {
        console.log(JSON.stringify({
          ...summary,
          seconds: Number(summary.seconds.toFixed(3)),
          itemsPerSecond: Math.round(summary.itemsPerSecond),
          ...(fatal !== undefined ? { fatal } : {}),
        }));
      } else say(summaryLine(summary));
    }
    if (summary.interrupted) return 130;
    return fatal !== undefined || summary.failed > 0 || summary.errors.length > 0 ? 1 : 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

function buildOptions(v: ReturnType<typeof parseFlags>): ReplicateOptions {
  const from = stringFlag(v, "from");
  const restore = stringFlag(v, "restore");
  const dump = stringFlag(v, "dump");
  const to = listFlag(v, "to").flatMap((t) => t.split(",")).map((t) => t.trim()).filter(Boolean);
  if (from === undefined && restore === undefined) {
    throw new UsageError("memrep replicate: give a source: --from <host:port> or --restore <file>");
  }
  if (from !== undefined && restore !== undefined) {
    throw new UsageError("memrep replicate: --from and --restore cannot be combined");
  }
  if (to.length === 0 && dump === undefined) {
    throw new UsageError("memrep replicate: give a target: --to <host:port> or --dump <file>");
  }
  if (restore !== undefined && dump !== undefined) {
    throw new UsageError("memrep replicate: --restore reads a dump; write to servers with --to");
  }
  const mode = stringFlag(v, "mode") ?? "set";
  if (mode !== "set" && mode !== "add") {
    throw new UsageError(`memrep replicate: --mode must be 'set' or 'add', got '${mode}'`);
  }
  const match = stringFlag(v, "match");
  if (match === "") throw new UsageError("memrep replicate: --match needs a pattern");
  if (match !== undefined) {
    try {
      keyMatcher(match);
    } catch (err) {
      throw new UsageError(`memrep replicate: --match: not a glob: ${(err as Error).message}`);
    }
  }
  const limitText = stringFlag(v, "limit");
  return {
    from: from === undefined ? undefined : parseHostPort(from, "--from", 11211),
    restore,
    to: to.map((t) => parseHostPort(t, "--to", 11211)),
    dump,
    mode,
    match,
    limit: limitText === undefined ? undefined : intFlag(v, "limit", 0, 0, Number.MAX_SAFE_INTEGER),
    batchSize: intFlag(v, "batch", 1000, 1, 100_000),
    timeoutMs: intFlag(v, "timeout", 10_000, 1, 3_600_000),
    connectTimeoutMs: intFlag(v, "connect-timeout", 3000, 1, 3_600_000),
    login: loginFlags(v, "auth", "auth-file"),
    tls: clientTlsFlags(v, "tls", "tls-ca"),
  };
}
