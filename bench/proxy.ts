/**
 * `memrep proxy` against nutcracker (twemproxy) over the same two memcached:
 * memcaslap throughput through each, then memrep proxy with a backup server;
 * and the proxy's binary protocol against its text protocol (memcaslap -B).
 * @module
 */

import {
  memrepTarget,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  startNutcracker,
} from "../tests/helpers/process.ts";
import {
  alternate,
  type BenchContext,
  fmt,
  median,
  memcaslap,
  type Result,
  type Section,
  slapConfig,
  unavailable,
} from "./harness.ts";

/** Starts memrep proxy over `servers` (and `backup`); with MEMREP_TARGET=memcached a nutcracker stands in. */
function startProxy(servers: number[], backup?: number): Promise<ProcessHandle> {
  if (memrepTarget() === "memcached") {
    return startNutcracker({ servers: servers.map((p) => `127.0.0.1:${p}`) });
  }
  const args = ["proxy", ...servers.flatMap((p) => ["-s", `127.0.0.1:${p}`])];
  if (backup !== undefined) args.push("-b", `127.0.0.1:${backup}`);
  return startMemrep(args);
}

/** Proxy section. */
export const proxyThroughput: Section = {
  name: "proxy",
  title: "proxy vs nutcracker over the same two memcached (memcaslap 90/10)",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    if (memrepTarget() !== "memcached") {
      const why = await unavailable("proxy");
      if (why) return why;
    }
    const cfg = await slapConfig();
    const started: ProcessHandle[] = [];
    const track = async (p: Promise<ProcessHandle>) => {
      const h = await p;
      started.push(h);
      return h;
    };
    try {
      const a = await track(startMemcached(["-m", "256"]));
      const b = await track(startMemcached(["-m", "256"]));
      const c = await track(startMemcached(["-m", "256"]));
      const nc = await track(
        startNutcracker({ servers: [a, b].map((h) => `127.0.0.1:${h.port}`) }),
      );
      const mp = await track(startProxy([a.port, b.port]));
      const mpb = await track(startProxy([a.port, b.port], c.port));
      const slap = (port: number) => async () => (await memcaslap(port, ctx.seconds, cfg)).tps;
      const samples = await alternate(ctx, [
        { name: "nutcracker", measure: slap(nc.port) },
        { name: "memrep proxy", measure: slap(mp.port) },
        { name: "memrep proxy -b", measure: slap(mpb.port) },
      ]);
      const n = median(samples.get("nutcracker")!);
      const p = median(samples.get("memrep proxy")!);
      const pb = median(samples.get("memrep proxy -b")!);
      const how = `median of ${ctx.rounds} alternating ${ctx.seconds} s runs`;
      return [
        {
          name: "proxy/nutcracker throughput ratio",
          value: p / n,
          detail: `memrep proxy ${fmt(p)} TPS, nutcracker ${fmt(n)} TPS (${how})`,
        },
        {
          name: "proxy -b/nutcracker throughput ratio",
          value: pb / n,
          detail: `memrep proxy with a backup ${fmt(pb)} TPS, nutcracker ${fmt(n)} TPS (${how})`,
        },
      ];
    } finally {
      await Promise.all(started.map((h) => h.stop()));
      await Deno.remove(cfg);
    }
  },
};

/** Binary section: the same proxy (two primaries, a backup) driven by memcaslap -B and by text. */
export const proxyBinaryThroughput: Section = {
  name: "proxy-binary",
  title: "proxy binary vs proxy text, two memcached and a backup (memcaslap -B vs text, 90/10)",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    // nutcracker speaks no binary: with MEMREP_TARGET=memcached, memcached itself stands in.
    const standIn = memrepTarget() === "memcached";
    if (!standIn) {
      const why = await unavailable("proxy");
      if (why) return why;
    }
    const cfg = await slapConfig();
    const started: ProcessHandle[] = [];
    const track = async (p: Promise<ProcessHandle>) => {
      const h = await p;
      started.push(h);
      return h;
    };
    try {
      const a = await track(startMemcached(["-m", "256"]));
      const b = await track(startMemcached(["-m", "256"]));
      const c = await track(startMemcached(["-m", "256"]));
      const port = standIn ? a.port : (await track(startMemrep([
        "proxy",
        "-s",
        `127.0.0.1:${a.port}`,
        "-s",
        `127.0.0.1:${b.port}`,
        "-b",
        `127.0.0.1:${c.port}`,
      ]))).port;
      const slap = (binary: boolean) => async () =>
        (await memcaslap(port, ctx.seconds, cfg, { binary })).tps;
      const samples = await alternate(ctx, [
        { name: "binary", measure: slap(true) },
        { name: "text", measure: slap(false) },
      ]);
      const bin = median(samples.get("binary")!);
      const txt = median(samples.get("text")!);
      const how = `median of ${ctx.rounds} alternating ${ctx.seconds} s runs`;
      return [{
        name: "proxy binary/text throughput ratio",
        value: bin / txt,
        detail: `binary ${fmt(bin)} TPS, text ${fmt(txt)} TPS (${how})`,
      }];
    } finally {
      await Promise.all(started.map((h) => h.stop()));
      await Deno.remove(cfg);
    }
  },
};
