/**
 * Shared pieces of the benchmark sections: memcaslap runs, RSS readings, a
 * pipelined loader, and checks for which memrep subcommands exist yet.
 * Benchmarks print figures; they assert nothing.
 * @module
 */

import { connect } from "../tests/helpers/conn.ts";
import { pathToFileURL } from "node:url";
import {
  binaryPath,
  memrepTarget,
  type ProcessHandle,
  REPO_ROOT,
  runMemrep,
  startProcess,
} from "../tests/helpers/process.ts";
import { freePort } from "../tests/helpers/ports.ts";

/** Settings every section receives from bench/mod.ts. */
export interface BenchContext {
  /** Seconds per memcaslap run. */
  seconds: number;
  /** Alternating rounds per contender (each round runs every contender once). */
  rounds: number;
  /** Items loaded for memory measurements. */
  items: number;
  /** Prints a progress line (to stderr, so stdout keeps the results). */
  log(msg: string): void;
}

/** One figure a section reports. */
export interface Result {
  /** What is compared, e.g. "serve/memcached throughput ratio". */
  name: string;
  /** The ratio (or value) itself. */
  value: number;
  /** The raw numbers behind it. */
  detail: string;
}

/** A benchmark section: one file under bench/. */
export interface Section {
  /** Short name used on the command line (`deno task bench serve`). */
  name: string;
  /** What it measures, one line. */
  title: string;
  /** Runs it; a string result means "skipped" with that reason. */
  run(ctx: BenchContext): Promise<Result[] | string>;
}

/** Outcome of one memcaslap run. */
export interface SlapResult {
  /** Transactions per second as memcaslap reports them. */
  tps: number;
  /** Operations completed. */
  ops: number;
  /** get misses memcaslap counted (a proxy dropping writes shows here). */
  getMisses: number;
  /** memcaslap's full output. */
  raw: string;
}

/** memcaslap's workload file: 90% get / 10% set, 16-byte keys (its minimum), 100-byte values. */
export async function slapConfig(): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "memrep-bench-", suffix: ".cfg" });
  await Deno.writeTextFile(
    path,
    ["key", "16 16 1", "value", "100 100 1", "cmd", "0 0.1", "1 0.9", ""].join("\n"),
  );
  return path;
}

/** Extra memcaslap settings. */
export interface SlapOptions {
  /** Client threads (-T). */
  threads?: number;
  /** Connections (-c). */
  concurrency?: number;
  /** Run a fixed number of operations (-x) instead of `seconds`. */
  ops?: number;
  /** Binary protocol (-B). */
  binary?: boolean;
}

/**
 * Runs `memcaslap -s 127.0.0.1:<port> -T 2 -c 32 -t <s>s -F <cfg>` (or `-x <ops>`)
 * and parses its TPS.
 */
export async function memcaslap(
  port: number,
  seconds: number,
  cfg: string,
  options: SlapOptions = {},
): Promise<SlapResult> {
  const bin = binaryPath("memcaslap");
  if (!bin) throw new Error("memcaslap is not installed (libmemcached-tools)");
  const { threads = 2, concurrency = 32, ops, binary = false } = options;
  const proc = new Deno.Command(bin, {
    args: [
      "-s",
      `127.0.0.1:${port}`,
      "-T",
      String(threads),
      "-c",
      String(concurrency),
      ...(ops === undefined ? ["-t", `${seconds}s`] : ["-x", String(ops)]),
      "-F",
      cfg,
      ...(binary ? ["-B"] : []),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(
    () => proc.kill("SIGKILL"),
    (ops === undefined ? seconds + 30 : 300) * 1000,
  );
  const out = await proc.output().finally(() => clearTimeout(killer));
  const raw = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const m = /Ops: (\d+) TPS: (\d+)/.exec(raw);
  if (!m) throw new Error(`memcaslap printed no TPS (exit ${out.code}):\n${raw}`);
  const misses = /get_misses: (\d+)/.exec(raw);
  return { ops: Number(m[1]), tps: Number(m[2]), getMisses: misses ? Number(misses[1]) : 0, raw };
}

/** Clock ticks per second of /proc's utime/stime (USER_HZ: 100 on every Linux build we run). */
const USER_HZ = 100;

/**
 * CPU seconds (user + system, every thread) used so far by `pid` and all its
 * descendants, from /proc/<pid>/stat. Linux only.
 */
export function treeCpuSeconds(pid: number): number {
  const parent = new Map<number, number[]>();
  const own = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the parenthesised command name (which may hold spaces).
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const p = Number(e.name), pp = Number(f[1]);
    own.set(p, (Number(f[11]) + Number(f[12])) / USER_HZ);
    if (!parent.has(pp)) parent.set(pp, []);
    parent.get(pp)!.push(p);
  }
  let total = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    total += own.get(p) ?? 0;
    todo.push(...(parent.get(p) ?? []));
  }
  return total;
}

/**
 * Starts one CPU-bound busy loop per core for at most `seconds` (so the bench
 * measures contended cores, as on a shared production host); returns a stop function.
 */
export function startCpuLoad(seconds: number): () => Promise<void> {
  const procs = Array.from(
    { length: navigator.hardwareConcurrency },
    () =>
      new Deno.Command("timeout", {
        args: [String(seconds), "sh", "-c", "while :; do :; done"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn(),
  );
  return async () => {
    for (const p of procs) {
      try {
        p.kill("SIGTERM"); // timeout passes it on to the loop
      } catch { /* already ended */ }
    }
    await Promise.all(procs.map((p) => p.status));
  };
}

/** Resident set size of a process in KiB (VmRSS from /proc). */
export function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/**
 * Loads `count` items (`keyLen`-byte keys "k0000…", `valueLen`-byte values)
 * with pipelined `set`s, 1000 per write, waiting for each batch's replies.
 * Resolves with the number of replies that were not STORED.
 */
export async function loadItems(
  port: number,
  count: number,
  keyLen = 14,
  valueLen = 100,
): Promise<number> {
  const c = await connect(port);
  const batch = 1000;
  const header = ` 0 0 ${valueLen}\r\n`;
  const value = "v".repeat(valueLen) + "\r\n";
  let notStored = 0;
  try {
    for (let i = 0; i < count; i += batch) {
      const n = Math.min(batch, count - i);
      let s = "";
      for (let j = 0; j < n; j++) {
        s += "set k" + String(i + j).padStart(keyLen - 1, "0") + header + value;
      }
      await c.send(s);
      let left = n;
      while (left > 0) {
        const line = await c.readLine(30_000);
        if (line !== "STORED") notStored++;
        left--;
      }
    }
  } finally {
    await c.close();
  }
  return notStored;
}

/** `stats` of a server as a map. */
export async function stats(port: number): Promise<Map<string, string>> {
  const c = await connect(port);
  try {
    return await c.stats("", 10_000);
  } finally {
    await c.close();
  }
}

/**
 * Why memrep's `sub` cannot be benchmarked yet, or undefined when it can:
 * main.ts must exist and `memrep <sub> --help` must exit 0. With
 * MEMREP_TARGET=memcached, `serve` is always available (memcached stands in).
 */
export async function unavailable(sub: string): Promise<string | undefined> {
  if (sub === "serve" && memrepTarget() === "memcached") return undefined;
  try {
    Deno.statSync(`${REPO_ROOT}/main.ts`);
  } catch {
    return "main.ts does not exist yet";
  }
  const r = await runMemrep([sub, "--help"], { timeoutMs: 20_000 });
  if (r.code !== 0) {
    return `'memrep ${sub}' is not implemented yet (--help exited ${r.code}: ${
      (r.stderr || r.stdout).trim().split("\n")[0]
    })`;
  }
  return undefined;
}

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Formats an integer with thousands separators. */
export function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/**
 * Runs each contender's measurement once per round, alternating A B A B so
 * drift on a shared machine hits both alike; returns the samples by name.
 */
export async function alternate(
  ctx: BenchContext,
  contenders: { name: string; measure: () => Promise<number> }[],
): Promise<Map<string, number[]>> {
  const samples = new Map(contenders.map((c) => [c.name, [] as number[]]));
  for (let r = 0; r < ctx.rounds; r++) {
    for (const c of contenders) {
      const v = await c.measure();
      ctx.log(`  round ${r + 1}/${ctx.rounds} ${c.name}: ${v < 100 ? v.toFixed(2) : fmt(v)}`);
      samples.get(c.name)!.push(v);
    }
  }
  return samples;
}

/** The V8 flags `root` runs with: its lib/v8_flags.ts, as its compile.sh and tests use them. */
export async function checkoutV8Flags(root: string): Promise<string[]> {
  const file = `${root}/lib/v8_flags.ts`;
  try {
    Deno.statSync(file);
  } catch {
    return []; // older checkouts: V8's defaults
  }
  const mod = await import(pathToFileURL(file).href);
  return [mod.v8FlagsArg()];
}

/**
 * `memrep <sub> -l 127.0.0.1 -p <port> ...args` of checkout `root` (its own
 * main.ts and deno.json), with `v8` or else the checkout's own V8 flags,
 * once the port answers.
 */
export async function startCheckoutMemrep(
  root: string,
  sub: "serve" | "proxy",
  args: string[],
  options: { port?: number; v8?: string[] } = {},
): Promise<ProcessHandle> {
  const port = options.port ?? freePort();
  return startProcess(
    `memrep ${sub} (${root})`,
    Deno.execPath(),
    [
      "run",
      "-q",
      "-P=memrep",
      ...(options.v8 ?? await checkoutV8Flags(root)),
      "--config",
      `${root}/deno.json`,
      `${root}/main.ts`,
      sub,
      "-l",
      "127.0.0.1",
      "-p",
      String(port),
      ...args,
    ],
    port,
    { cwd: root },
  );
}
