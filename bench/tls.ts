/**
 * `memrep serve -Z` against `memcached -Z` (issue 13): throughput and
 * server CPU-µs per request under bench/tls_load.ts (memcaslap cannot speak
 * TLS), and the same generator over plain text in the same run, so the TLS
 * overhead of both is visible. Contenders alternate each round.
 * @module
 */

import {
  binaryPath,
  haveBinary,
  type ProcessHandle,
  REPO_ROOT,
  startMemcached,
  startMemrep,
} from "../tests/helpers/process.ts";
import { makeCerts } from "../tests/helpers/tls.ts";
import {
  alternate,
  type BenchContext,
  fmt,
  median,
  type Result,
  type Section,
  treeCpuSeconds,
  unavailable,
} from "./harness.ts";
import type { LoadResult } from "./tls_load.ts";

/** Connections in all, as memcaslap -c 32. */
const CONNS = 32;
/** Generator processes, as memcaslap -T 2 (one JS thread each). */
const PROCS = 2;
/** Keys in the key space (set before the timed loop). */
const KEYS = 10_000;

/** One measurement: the generator's figures and the CPU both sides spent in the timed loop. */
interface Sample {
  /** Requests per second, all generator processes together. */
  ops: number;
  /** Server CPU-µs per request. */
  serverCpu: number;
  /** Generator CPU-µs per request (it shares the cores with the server). */
  loadCpu: number;
  /** gets that missed or replies that were errors. */
  misses: number;
  errors: number;
}

/** Reads a child's stdout line by line. */
function lines(stream: ReadableStream<Uint8Array>): () => Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  return async () => {
    for (;;) {
      const nl = text.indexOf("\n");
      if (nl >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`tls_load ended early: ${text}`);
      text += value;
    }
  };
}

/**
 * Runs {@link PROCS} tls_load processes against `port` for `seconds`; the
 * CPU of the server (`pid`, its whole tree) and of the generators is read
 * from /proc right around the timed loop.
 */
async function measure(
  port: number,
  pid: number,
  seconds: number,
  ca: string | undefined,
): Promise<Sample> {
  const children = Array.from({ length: PROCS }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-q",
        "--allow-net",
        "--allow-read",
        `${REPO_ROOT}/bench/tls_load.ts`,
        "--wait",
        "--port",
        String(port),
        ...(ca ? ["--ca", ca] : []),
        "--conns",
        String(CONNS / PROCS),
        "--seconds",
        String(seconds),
        "--keys",
        String(KEYS),
        "--part",
        `${i}/${PROCS}`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn());
  const killer = setTimeout(() => {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* ended */ }
    }
  }, (seconds + 60) * 1000);
  const writers = children.map((c) => c.stdin.getWriter());
  try {
    const readers = children.map((c) => lines(c.stdout));
    for (const r of readers) {
      const l = await r();
      if (l !== "ready") throw new Error(`tls_load said ${l}`);
    }
    const cpu = () => ({
      server: treeCpuSeconds(pid),
      load: children.reduce((s, c) => s + treeCpuSeconds(c.pid), 0),
    });
    const before = cpu();
    const go = new TextEncoder().encode("go\n");
    await Promise.all(writers.map((w) => w.write(go)));
    const results: LoadResult[] = await Promise.all(
      readers.map(async (r) => JSON.parse(await r())),
    );
    const after = cpu(); // the children wait for stdin to close: still in /proc
    const ops = results.reduce((s, r) => s + r.ops, 0);
    return {
      ops: results.reduce((s, r) => s + r.ops / r.seconds, 0),
      serverCpu: (after.server - before.server) * 1e6 / ops,
      loadCpu: (after.load - before.load) * 1e6 / ops,
      misses: results.reduce((s, r) => s + r.misses, 0),
      errors: results.reduce((s, r) => s + r.errors, 0),
    };
  } finally {
    await Promise.all(writers.map((w) => w.close().catch(() => {})));
    await Promise.all(children.map((c) => c.status));
    clearTimeout(killer);
  }
}

/** Why memcached cannot serve TLS here, or undefined. */
async function noMemcachedTls(): Promise<string | undefined> {
  const bin = binaryPath("memcached");
  if (!bin) return "memcached is not installed";
  const out = await new Deno.Command(bin, { args: ["-h"], stdout: "piped", stderr: "piped" })
    .output();
  const help = new TextDecoder().decode(out.stdout);
  return /--enable-ssl/.test(help) ? undefined : "this memcached is built without TLS (-Z)";
}

/** TLS section. */
export const tls: Section = {
  name: "tls",
  title:
    "serve -Z vs memcached -Z: tls_load throughput (90/10 get/set, 100 B, 32 conns) and CPU-µs/request, plain text alongside",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    if (!haveBinary("openssl")) return "openssl is not installed (it makes the certificates)";
    const noTls = await noMemcachedTls();
    if (noTls) return noTls;
    const certs = await makeCerts();
    const started: ProcessHandle[] = [];
    const track = async (p: Promise<ProcessHandle>) => {
      const h = await p;
      started.push(h);
      return h;
    };
    try {
      const z = ["-Z", "-o", `ssl_chain_cert=${certs.cert},ssl_key=${certs.key}`];
      const mcZ = await track(startMemcached(["-m", "256", ...z]));
      const mrZ = await track(startMemrep(["serve", "-m", "256", "-U", "0", ...z]));
      const mc = await track(startMemcached(["-m", "256"]));
      const mr = await track(startMemrep(["serve", "-m", "256", "-U", "0"]));
      const all = new Map<string, Sample[]>();
      const contender = (name: string, h: ProcessHandle, ca?: string) => ({
        name,
        measure: async () => {
          const s = await measure(h.port, h.pid, ctx.seconds, ca);
          all.set(name, [...(all.get(name) ?? []), s]);
          ctx.log(
            `    ${name}: server ${s.serverCpu.toFixed(1)} CPU-µs/req, ` +
              `generator ${s.loadCpu.toFixed(1)}, misses ${s.misses}, errors ${s.errors}`,
          );
          return s.ops;
        },
      });
      await alternate(ctx, [
        contender("memcached -Z", mcZ, certs.ca),
        contender("memrep -Z", mrZ, certs.ca),
        contender("memcached", mc),
        contender("memrep", mr),
      ]);
      const med = (name: string, f: (s: Sample) => number) => median(all.get(name)!.map(f));
      const fig = (name: string) => ({
        ops: med(name, (s) => s.ops),
        cpu: med(name, (s) => s.serverCpu),
        load: med(name, (s) => s.loadCpu),
        bad: all.get(name)!.reduce((n, s) => n + s.misses + s.errors, 0),
      });
      const aZ = fig("memrep -Z"),
        bZ = fig("memcached -Z"),
        a = fig("memrep"),
        b = fig("memcached");
      const how = `median of ${ctx.rounds} alternating ${ctx.seconds} s runs, tls_load ` +
        `${PROCS} procs × ${CONNS / PROCS} conns; the generator shares the cores, spending ` +
        `${bZ.load.toFixed(1)}/${aZ.load.toFixed(1)} CPU-µs/req over TLS, ` +
        `${b.load.toFixed(1)}/${a.load.toFixed(1)} plain (memcached/memrep runs)`;
      const bad = aZ.bad + bZ.bad + a.bad + b.bad;
      const note = bad ? `; MISSES+ERRORS ${bZ.bad}/${aZ.bad}/${b.bad}/${a.bad}` : "";
      return [{
        name: "tls: serve -Z/memcached -Z throughput",
        value: aZ.ops / bZ.ops,
        detail: `memrep ${fmt(aZ.ops)} ops/s, memcached ${fmt(bZ.ops)} ops/s (${how})${note}`,
      }, {
        name: "tls: serve -Z/memcached -Z CPU per req",
        value: aZ.cpu / bZ.cpu,
        detail: `CPU-µs/request: ${aZ.cpu.toFixed(1)} vs ${bZ.cpu.toFixed(1)} (same runs)`,
      }, {
        name: "tls: serve/memcached plain throughput",
        value: a.ops / b.ops,
        detail: `memrep ${fmt(a.ops)} ops/s, memcached ${fmt(b.ops)} ops/s (same generator)`,
      }, {
        name: "tls: serve/memcached plain CPU per req",
        value: a.cpu / b.cpu,
        detail: `CPU-µs/request: ${a.cpu.toFixed(1)} vs ${b.cpu.toFixed(1)} (same runs)`,
      }, {
        name: "tls: memrep TLS/plain throughput",
        value: aZ.ops / a.ops,
        detail: `${fmt(aZ.ops)} vs ${fmt(a.ops)} ops/s; CPU-µs/req ${aZ.cpu.toFixed(1)} vs ${
          a.cpu.toFixed(1)
        }`,
      }, {
        name: "tls: memcached TLS/plain throughput",
        value: bZ.ops / b.ops,
        detail: `${fmt(bZ.ops)} vs ${fmt(b.ops)} ops/s; CPU-µs/req ${bZ.cpu.toFixed(1)} vs ${
          b.cpu.toFixed(1)
        }`,
      }];
    } finally {
      await Promise.all(started.map((h) => h.stop()));
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
};
