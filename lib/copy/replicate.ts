/**
 * The copy loop behind `memrep replicate`: batches flow from one source to
 * every target, fetching the next batch while the previous one is stored.
 * @module
 */

import { decodeAscii } from "../protocol/mod.ts";
import { type CopySummary, Progress } from "./progress.ts";
import {
  CopyError,
  type CopyItem,
  FileSource,
  ServerSource,
  type Source,
  type SourceOptions,
} from "./source.ts";
import { type CopyMode, DumpTarget, Outcome, ServerTarget, type Target } from "./target.ts";
import { errorText } from "../transport/mod.ts";

/** A server address. */
export interface Endpoint {
  /** Host name or IP. */
  host: string;
  /** TCP port. */
  port: number;
}

/** What to copy from where to where. */
export interface ReplicateOptions {
  /** Live source server (exclusive with `restore`). */
  from?: Endpoint;
  /** Dump file to read (`-`: stdin), exclusive with `from`. */
  restore?: string;
  /** Target servers. */
  to: Endpoint[];
  /** Dump file to write (`-`: stdout). */
  dump?: string;
  /** `set` (default) overwrites; `add` keeps keys the target already has. */
  mode?: CopyMode;
  /** Key prefix, or a glob when it holds `*`, `?` or `[`. */
  match?: string;
  /** Copy at most this many matching items. */
  limit?: number;
  /** Items per pipelined batch (default 1000). */
  batchSize?: number;
  /** Connect timeout per server (ms, default 3000). */
  connectTimeoutMs?: number;
  /** Reply timeout per request (ms, default 10000). */
  timeoutMs?: number;
  /** The text login of servers that run with -Y (every server: source and targets). */
  login?: { user: string; password: string };
  /** Speak TLS to every server, trusting `ca` (PEM; Deno's roots when absent). */
  tls?: { ca?: string };
  /** Aborting stops the copy cleanly (Ctrl-C). */
  signal?: AbortSignal;
  /** Live progress reporter; created quiet when absent. */
  progress?: Progress;
}

/** Result of {@linkcode replicate}: the summary, plus the error that stopped it early. */
export interface ReplicateResult {
  /** Counts so far. */
  summary: CopySummary;
  /** Why the copy could not complete (setup or mid-run), if it did not. */
  fatal?: string;
  /** True when it never started copying (bad source/target). */
  setupFailed: boolean;
}

/**
 * Turns `--match` into a key predicate: prefix, or glob with `*`, `?`,
 * `[...]`. A glob reads a UTF-8 key as text (`?` is one character, `[éè]`
 * two choices), any other key byte by byte. Throws a SyntaxError for a glob
 * no pattern can follow (`[z-a]`).
 */
export function keyMatcher(pattern: string): (key: Uint8Array) => boolean {
  if (!/[*?[]/.test(pattern)) {
    const prefix = new TextEncoder().encode(pattern);
    return (key) => {
      if (key.length < prefix.length) return false;
      for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
      return true;
    };
  }
  const text = globRegExp(pattern, "u");
  // Keys that are not UTF-8 are matched as decodeAscii text so any byte is one
  // character; the pattern is turned into the same form (its UTF-8 bytes as characters).
  const bytes = new TextEncoder().encode(pattern);
  const latin = globRegExp(decodeAscii(bytes, 0, bytes.length), "");
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  return (key) => {
    let s: string;
    try {
      s = utf8.decode(key);
    } catch {
      return latin.test(decodeAscii(key, 0, key.length));
    }
    return text.test(s);
  };
}

function globRegExp(text: string, flags: string): RegExp {
  let re = "^";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "*") re += "[^]*";
    else if (c === "?") re += "[^]";
    else if (c === "[") {
      const close = text.indexOf("]", i + 2);
      if (close < 0) re += "\\[";
      else {
        let body = text.slice(i + 1, close);
        if (body.startsWith("!")) body = "^" + body.slice(1);
        re += "[" + body.replace(/\\/g, "\\\\") + "]";
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(re + "$", flags);
}

function emptySummary(): CopySummary {
  return {
    copied: 0,
    skipped: 0,
    failed: 0,
    bytes: 0,
    seconds: 0,
    itemsPerSecond: 0,
    expired: 0,
    missing: 0,
    existing: 0,
    interrupted: false,
    errors: [],
  };
}

/**
 * Copies items from `options.from` (or a dump) to every `options.to` server
 * (and/or a dump). Never throws for copy problems: they come back as
 * `fatal` and `summary.errors`.
 */
export async function replicate(options: ReplicateOptions): Promise<ReplicateResult> {
  const summary = emptySummary();
  const progress = options.progress ?? new Progress({ live: false });
  const clientOptions = {
    connectTimeoutMs: options.connectTimeoutMs ?? 3000,
    requestTimeoutMs: options.timeoutMs ?? 10_000,
    login: options.login,
    tls: options.tls,
  };
  const sourceOptions: SourceOptions = {
    match: options.match !== undefined ? keyMatcher(options.match) : undefined,
    limit: options.limit,
    signal: options.signal,
    batchSize: options.batchSize ?? 1000,
  };
  let source: Source | undefined;
  const targets: Target[] = [];
  const closeAll = () => {
    source?.close();
    for (const t of targets) t.close();
  };
  try {
    if (options.from !== undefined) {
      source = await ServerSource.open(
        options.from.host,
        options.from.port,
        sourceOptions,
        clientOptions,
      );
    } else if (options.restore !== undefined) {
      source = await FileSource.open(options.restore, sourceOptions);
    } else throw new CopyError("no source: give --from or --restore");
    const opened = await Promise.allSettled(
      options.to.map((e) =>
        ServerTarget.open(e.host, e.port, options.mode ?? "set", clientOptions)
      ),
    );
    for (const r of opened) if (r.status === "fulfilled") targets.push(r.value);
    const refused = opened.filter((r) => r.status === "rejected");
    if (refused.length > 0) {
      throw new CopyError(
        refused.map((r) => errorText((r as PromiseRejectedResult).reason)).join("; "),
      );
    }
    if (options.dump !== undefined) targets.push(await DumpTarget.open(options.dump, source.name));
    if (targets.length === 0) throw new CopyError("no target: give --to or --dump");
  } catch (err) {
    closeAll();
    return { summary, fatal: errorText(err), setupFailed: true };
  }

  const estimate = source.estimate;
  // With --match the server's item count says nothing about how many will be copied.
  progress.total = estimate === undefined || options.match !== undefined
    ? undefined
    : Math.min(estimate, options.limit ?? Infinity);
  const src = source;
  if (src.fraction !== undefined && options.limit === undefined) {
    progress.fraction = () => src.fraction?.();
  }
  progress.start();
  let fatal: string | undefined;
  const update = () => {
    const c = source.counts;
    summary.missing = c.missing;
    summary.expired = c.expired + expiredAtTarget;
    summary.skipped = summary.expired + summary.missing + summary.existing;
    summary.failed = failedAtTarget + c.failed;
    progress.update(summary);
  };
  let expiredAtTarget = 0;
  let failedAtTarget = 0;

  const storeBatch = async (batch: CopyItem[]): Promise<void> => {
    const outcomes = await Promise.all(targets.map((t) => t.store(batch)));
    for (let i = 0; i < batch.length; i++) {
      let worst: number = Outcome.STORED;
      for (const o of outcomes) {
        const v = o[i];
        // FAILED beats EXPIRED beats EXISTS beats STORED.
        if (v === Outcome.FAILED || (v === Outcome.EXPIRED && worst !== Outcome.FAILED)) worst = v;
        else if (v === Outcome.EXISTS && worst === Outcome.STORED) worst = v;
      }
      if (worst === Outcome.STORED) {
        summary.copied++;
        summary.bytes += batch[i].value.length;
      } else if (worst === Outcome.EXISTS) summary.existing++;
      else if (worst === Outcome.EXPIRED) expiredAtTarget++;
      else failedAtTarget++;
    }
    update();
  };

  let storing: Promise<void> | undefined;
  try {
    for await (const batch of source.batches()) {
      const previous = storing;
      storing = undefined; // its failure is reported once, below
      await previous;
      storing = storeBatch(batch);
      // A failure surfaces at the next await; keep it from being unhandled meanwhile.
      storing.catch(() => {});
      if (options.signal?.aborted) break;
    }
    const last = storing;
    storing = undefined;
    await last;
  } catch (err) {
    fatal = errorText(err);
    if (storing !== undefined) {
      // Items fetched before the failure are still written; nothing after it.
      try {
        await storing;
      } catch (e) {
        fatal = `${fatal}; ${errorText(e)}`;
      }
    }
  }
  update();
  summary.interrupted = options.signal?.aborted === true;
  // A dump is ended (so it reads back) when complete or interrupted; after a failure it is
  // only flushed, so a restore reports where it was cut.
  const complete = fatal === undefined;
  for (const t of targets) {
    try {
      await t.finish(complete);
    } catch (err) {
      if (complete) fatal = `${t.name}: ${errorText(err)}`;
    }
  }
  progress.stop();
  summary.seconds = progress.seconds;
  summary.itemsPerSecond = summary.seconds > 0 ? summary.copied / summary.seconds : 0;
  for (const e of source.errors()) summary.errors.push(e);
  for (const t of targets) for (const e of t.errors()) summary.errors.push(e);
  closeAll();
  return { summary, fatal, setupFailed: false };
}
