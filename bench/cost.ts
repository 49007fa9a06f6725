/**
 * Cost, not only speed: CPU seconds (user + system, the whole process tree)
 * each server spends for the same fixed number of memcaslap requests, as
 * CPU-µs per request, same run, alternating; and throughput while a
 * CPU-bound busy loop runs on every core (a shared host).
 * @module
 */

import {
  memrepTarget,
  type ProcessHandle,
  REPO_ROOT,
  startMemcached,
  startMemrep,
  startNutcracker,
  startProcess,
} from "../tests/helpers/process.ts";
import { freePort } from "../tests/helpers/ports.ts";
import {
  alternate,
  type BenchContext,
  fmt,
  median,
  memcaslap,
  type Result,
  type Section,
  slapConfig,
  startCpuLoad,
  treeCpuSeconds,
  unavailable,
} from "./harness.ts";

/** Requests per cost measurement (issue 14: 300,000). */
const OPS = 300_000;

/** CPU-µs per request that `pids` spend serving `OPS` memcaslap requests on `port`. */
async function cpuPerRequest(
  port: number,
  pids: number[],
  cfg: string,
  binary = false,
): Promise<number> {
  const before = pids.reduce((s, p) => s + treeCpuSeconds(p), 0);
  const r = await memcaslap(port, 0, cfg, { ops: OPS, binary });
  const after = pids.reduce((s, p) => s + treeCpuSeconds(p), 0);
  return (after - before) * 1e6 / r.ops;
}

function ratio(name: string, a: number, b: number, what: string, how: string): Result {
  return { name, value: a / b, detail: `${what}: ${a.toFixed(1)} vs ${b.toFixed(1)} (${how})` };
}

/** Cost section. */
export const cost: Section = {
  name: "cost",
  title: "CPU-µs per request (same 300k memcaslap requests) and throughput on loaded cores",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    const cfg = await slapConfig();
    const started: ProcessHandle[] = [];
    const track = async (p: Promise<ProcessHandle>) => {
      const h = await p;
      started.push(h);
      return h;
    };
    const how = `median of ${ctx.rounds} alternating runs of ${fmt(OPS)} requests`;
    const results: Result[] = [];
    try {
      const mc = await track(startMemcached(["-m", "256"]));
      const mr = await track(startMemrep(["serve", "-m", "256", "-U", "0"]));
      const s = await alternate(ctx, [
        { name: "memcached", measure: () => cpuPerRequest(mc.port, [mc.pid], cfg) },
        { name: "memrep serve", measure: () => cpuPerRequest(mr.port, [mr.pid], cfg) },
      ]);
      const cm = median(s.get("memcached")!), cr = median(s.get("memrep serve")!);
      results.push(ratio("serve/memcached CPU per request", cr, cm, "CPU-µs/request", how));

      const sb = await alternate(ctx, [
        { name: "memcached -B", measure: () => cpuPerRequest(mc.port, [mc.pid], cfg, true) },
        { name: "memrep serve -B", measure: () => cpuPerRequest(mr.port, [mr.pid], cfg, true) },
      ]).catch((e) => {
        ctx.log(`  binary cost skipped: ${e}`);
        return null;
      });
      if (sb) {
        const bm = median(sb.get("memcached -B")!), br = median(sb.get("memrep serve -B")!);
        results.push(ratio("serve/memcached CPU per binary request", br, bm, "CPU-µs/req", how));
        results.push(ratio("serve binary/text CPU per request", br, cr, "CPU-µs/req", how));
      }

      // Throughput with every core busy with other work, bounded in time.
      const stop = startCpuLoad(ctx.rounds * 2 * (ctx.seconds + 5) + 30);
      try {
        const t = await alternate(ctx, [
          {
            name: "memcached (loaded)",
            measure: async () => (await memcaslap(mc.port, ctx.seconds, cfg)).tps,
          },
          {
            name: "memrep (loaded)",
            measure: async () => (await memcaslap(mr.port, ctx.seconds, cfg)).tps,
          },
        ]);
        const a = median(t.get("memrep (loaded)")!), b = median(t.get("memcached (loaded)")!);
        results.push({
          name: "serve/memcached throughput, cores loaded",
          value: a / b,
          detail: `memrep ${fmt(a)} TPS, memcached ${fmt(b)} TPS with a busy loop on every core`,
        });
      } finally {
        await stop();
      }

      if (memrepTarget() !== "memcached" && !(await unavailable("proxy"))) {
        const b1 = await track(startMemcached(["-m", "256"]));
        const b2 = await track(startMemcached(["-m", "256"]));
        const b3 = await track(startMemcached(["-m", "256"]));
        const servers = [b1, b2].map((h) => `127.0.0.1:${h.port}`);
        const nc = await track(startNutcracker({ servers }));
        const mp = await track(startMemrep(["proxy", ...servers.flatMap((x) => ["-s", x])]));
        const mpb = await track(
          startMemrep([
            "proxy",
            ...servers.flatMap((x) => ["-s", x]),
            "-b",
            `127.0.0.1:${b3.port}`,
          ]),
        );
        const p = await alternate(ctx, [
          { name: "nutcracker", measure: () => cpuPerRequest(nc.port, [nc.pid], cfg) },
          { name: "memrep proxy", measure: () => cpuPerRequest(mp.port, [mp.pid], cfg) },
          { name: "memrep proxy -b", measure: () => cpuPerRequest(mpb.port, [mpb.pid], cfg) },
        ]);
        const n = median(p.get("nutcracker")!);
        results.push(
          ratio(
            "proxy/nutcracker CPU per request",
            median(p.get("memrep proxy")!),
            n,
            "CPU-µs/req",
            how,
          ),
          ratio(
            "proxy -b/nutcracker CPU per request",
            median(p.get("memrep proxy -b")!),
            n,
            "CPU-µs/req",
            how,
          ),
        );
      }

      const repl = String(freePort());
      const ra = await track(
        startMemrep(["serve", "-v", "-m", "256", "-x", "127.0.0.1", "-X", repl]),
      );
      await ra.waitForLog(/^replication: listen$/, 10_000);
      const rb = await track(
        startMemrep(["serve", "-v", "-m", "256", "-x", "127.0.0.1", "-X", repl]),
      );
      await ra.waitForLog(/^replication: start/, 10_000);
      const r = await alternate(ctx, [
        { name: "single serve", measure: () => cpuPerRequest(mr.port, [mr.pid], cfg) },
        { name: "replicated node", measure: () => cpuPerRequest(ra.port, [ra.pid], cfg) },
        { name: "replicated pair", measure: () => cpuPerRequest(ra.port, [ra.pid, rb.pid], cfg) },
      ]);
      const single = median(r.get("single serve")!);
      results.push(
        ratio(
          "replicated node/single serve CPU per request",
          median(r.get("replicated node")!),
          single,
          "CPU-µs/req",
          how,
        ),
        ratio(
          "replicated pair/single serve CPU per request",
          median(r.get("replicated pair")!),
          single,
          "CPU-µs/req",
          how,
        ),
      );
      return results;
    } finally {
      await Promise.all(started.map((h) => h.stop()));
      await Deno.remove(cfg);
    }
  },
};

/**
 * Proxy floor section: CPU-µs per request of nutcracker, `memrep proxy` and
 * bench/floor_relay.ts (the least a Deno relay does per request) over the
 * same two memcached, alternating. How close memrep is to the relay tells
 * its own per-request cost apart from Deno's (reads, writes, promises).
 */
export const proxyFloor: Section = {
  name: "proxy-floor",
  title: "CPU-µs per request: memrep proxy and a minimal Deno relay against nutcracker",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    if (memrepTarget() === "memcached") return "needs memrep";
    const why = await unavailable("proxy");
    if (why) return why;
    const cfg = await slapConfig();
    const started: ProcessHandle[] = [];
    const track = async (p: Promise<ProcessHandle>) => {
      const h = await p;
      started.push(h);
      return h;
    };
    const how = `median of ${ctx.rounds} alternating runs of ${fmt(OPS)} requests`;
    try {
      const b1 = await track(startMemcached(["-m", "256"]));
      const b2 = await track(startMemcached(["-m", "256"]));
      const servers = [b1, b2].map((h) => `127.0.0.1:${h.port}`);
      const nc = await track(startNutcracker({ servers }));
      const mp = await track(startMemrep(["proxy", ...servers.flatMap((x) => ["-s", x])]));
      const port = freePort();
      const relay = await track(startProcess(
        "floor relay",
        Deno.execPath(),
        ["run", "-q", "--allow-net", `${REPO_ROOT}/bench/floor_relay.ts`, String(port), ...servers],
        port,
      ));
      const p = await alternate(ctx, [
        { name: "nutcracker", measure: () => cpuPerRequest(nc.port, [nc.pid], cfg) },
        { name: "memrep proxy", measure: () => cpuPerRequest(mp.port, [mp.pid], cfg) },
        { name: "floor relay", measure: () => cpuPerRequest(relay.port, [relay.pid], cfg) },
      ]);
      const n = median(p.get("nutcracker")!);
      const m = median(p.get("memrep proxy")!);
      const f = median(p.get("floor relay")!);
      return [
        ratio("proxy/nutcracker CPU per request", m, n, "CPU-µs/req", how),
        ratio("floor relay/nutcracker CPU per request", f, n, "CPU-µs/req", how),
        ratio("proxy/floor relay CPU per request", m, f, "CPU-µs/req", how),
      ];
    } finally {
      await Promise.all(started.map((h) => h.stop()));
      await Deno.remove(cfg);
    }
  },
};
