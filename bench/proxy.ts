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

/** Keys of the multi-get section. */
const MULTI_KEYS = 1000;
/** Multi-gets timed per sample. */
const MULTI_REQUESTS = 50;

/** Sends `req` `n` times, one at a time, on a new connection; median ms per whole reply. */
async function multiGetMs(port: number, req: Uint8Array, n: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(1 << 20);
  const times: number[] = [];
  try {
    for (let r = 0; r < n; r++) {
      const t0 = performance.now();
      await conn.write(req);
      let len = 0;
      // The reply ends with "END\r\n".
      while (
        len < 5 || buf[len - 5] !== 69 || buf[len - 4] !== 78 || buf[len - 3] !== 68 ||
        buf[len - 1] !== 10
      ) {
        const got = await conn.read(buf.subarray(len));
        if (got === null) throw new Error("connection closed");
        len += got;
      }
      times.push(performance.now() - t0);
    }
  } finally {
    conn.close();
  }
  return median(times);
}

/** Multi-get section: a 1,000-key get through the proxy over 4 memcached vs one memcached. */
export const proxyMultiGet: Section = {
  name: "proxy-multiget",
  title: `proxy ${MULTI_KEYS}-key get over 4 memcached vs the same get to one memcached (latency)`,
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const standIn = memrepTarget() === "memcached";
    if (!standIn) {
      const why = await unavailable("proxy");
      if (why) return why;
    }
    const started: ProcessHandle[] = [];
    const track = async (p: Promise<ProcessHandle>) => {
      const h = await p;
      started.push(h);
      return h;
    };
    try {
      const mcs = [];
      for (let i = 0; i < 4; i++) mcs.push(await track(startMemcached(["-m", "64"])));
      const direct = await track(startMemcached(["-m", "64"]));
      const proxy = await track(startProxy(mcs.map((h) => h.port)));
      const keys = Array.from({ length: MULTI_KEYS }, (_, i) => `mgkey:${i}`);
      const value = "v".repeat(32);
      const sets = new TextEncoder().encode(
        keys.map((k) => `set ${k} 0 0 ${value.length} noreply\r\n${value}\r\n`).join(""),
      );
      for (const port of [direct.port, proxy.port]) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        await c.write(sets);
        await c.write(new TextEncoder().encode("version\r\n"));
        await c.read(new Uint8Array(64));
        c.close();
      }
      const req = new TextEncoder().encode(`get ${keys.join(" ")}\r\n`);
      const samples = await alternate(ctx, [
        {
          name: "direct us",
          measure: async () => 1000 * await multiGetMs(direct.port, req, MULTI_REQUESTS),
        },
        {
          name: "proxy us",
          measure: async () => 1000 * await multiGetMs(proxy.port, req, MULTI_REQUESTS),
        },
      ]);
      const d = median(samples.get("direct us")!);
      const p = median(samples.get("proxy us")!);
      return [{
        name: `proxy/direct ${MULTI_KEYS}-key multi-get latency ratio`,
        value: p / d,
        detail: `proxy over 4 memcached ${fmt(p)} µs, one memcached ${
          fmt(d)
        } µs (median of ${ctx.rounds} alternating medians of ${MULTI_REQUESTS} gets)`,
      }];
    } finally {
      await Promise.all(started.map((h) => h.stop()));
    }
  },
};
