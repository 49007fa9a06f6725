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
import { Ketama, ketamaName } from "../lib/proxy/mod.ts";
import {
  alternate,
  type BenchContext,
  fmt,
  median,
  memcaslap,
  type Result,
  type Section,
  slapConfig,
  startCheckoutMemrep,
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

/**
 * Starts the proxy of another checkout `root` (its own main.ts, deno.json and
 * V8 flags) over `servers` (and `backup`).
 */
function startCheckoutProxy(
  root: string,
  servers: number[],
  backup?: number,
): Promise<ProcessHandle> {
  return startCheckoutMemrep(root, "proxy", [
    ...servers.flatMap((p) => ["-s", `127.0.0.1:${p}`]),
    ...(backup === undefined ? [] : ["-b", `127.0.0.1:${backup}`]),
  ]);
}

/** CPU ns of each thread of process `pid` so far (schedstat: ns, not clock ticks), by thread id. */
function threadCpu(pid: number): Map<string, number> {
  const ns = new Map<string, number>();
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      ns.set(
        t.name,
        Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]),
      );
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns;
}

/** CPU seconds the threads of `now` spent since `then` (a thread that ended meanwhile: lost). */
function cpuSince(then: Map<string, number>, now: Map<string, number>): number {
  let ns = 0;
  for (const [tid, v] of now) ns += v - (then.get(tid) ?? 0);
  return ns / 1e9;
}

/**
 * Proxy section: memcaslap through nutcracker, `memrep proxy` and `memrep
 * proxy -b`, alternating; throughput and CPU-µs per request (every thread's
 * schedstat over the same timed run, divided by its requests). With
 * `MEMREP_AB_ROOTS` (other checkouts, comma-separated) their proxies, with
 * and without the backup, take their turns too: paired ratios per round.
 */
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
      const roots = (Deno.env.get("MEMREP_AB_ROOTS") ?? "").split(",").filter((r) => r !== "");
      const others: { name: string; h: ProcessHandle }[] = [];
      for (const root of roots) {
        others.push({
          name: `${root} proxy`,
          h: await track(startCheckoutProxy(root, [a.port, b.port])),
        });
        others.push({
          name: `${root} proxy -b`,
          h: await track(startCheckoutProxy(root, [a.port, b.port], c.port)),
        });
      }
      /** CPU-µs per request of each contender's runs, in round order. */
      const cpu = new Map<string, number[]>();
      const slap = (name: string, h: ProcessHandle) => async () => {
        const t0 = threadCpu(h.pid);
        const r = await memcaslap(h.port, ctx.seconds, cfg);
        const us = 1e6 * cpuSince(t0, threadCpu(h.pid)) / r.ops;
        cpu.set(name, [...(cpu.get(name) ?? []), us]);
        ctx.log(`    ${name}: ${us.toFixed(2)} CPU-µs per request`);
        return r.tps;
      };
      const contenders = [
        { name: "nutcracker", h: nc },
        { name: "memrep proxy", h: mp },
        { name: "memrep proxy -b", h: mpb },
        ...others,
      ];
      const samples = await alternate(
        ctx,
        contenders.map((x) => ({ name: x.name, measure: slap(x.name, x.h) })),
      );
      const tps = (name: string) => median(samples.get(name)!);
      const us = (name: string) => median(cpu.get(name)!);
      const n = tps("nutcracker"), p = tps("memrep proxy"), pb = tps("memrep proxy -b");
      const how = `median of ${ctx.rounds} alternating ${ctx.seconds} s runs`;
      const paired = (x: Map<string, number[]>, a: string, b: string) =>
        x.get(a)!.map((v, i) => v / x.get(b)![i]);
      const rounds = (r: number[]) => r.map((v) => v.toFixed(2)).join(", ");
      const results: Result[] = [
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
      for (const name of ["memrep proxy", "memrep proxy -b"]) {
        const r = paired(cpu, name, "nutcracker");
        results.push({
          name: `${name.slice(7)}/nutcracker CPU-µs per request`,
          value: median(r),
          detail: `${us(name).toFixed(1)} vs ${
            us("nutcracker").toFixed(1)
          } µs (medians); paired per round: ${rounds(r)}`,
        });
      }
      for (const o of others) {
        const mine = o.name.endsWith("-b") ? "memrep proxy -b" : "memrep proxy";
        const rc = paired(cpu, mine, o.name), rt = paired(samples, mine, o.name);
        results.push({
          name: `${mine.slice(7)}/${o.name} CPU-µs per request`,
          value: median(rc),
          detail: `${us(mine).toFixed(1)} vs ${us(o.name).toFixed(1)} µs; paired per round: ${
            rounds(rc)
          }`,
        }, {
          name: `${mine.slice(7)}/${o.name} throughput`,
          value: median(rt),
          detail: `${fmt(tps(mine))} vs ${fmt(tps(o.name))} TPS; paired per round: ${rounds(rt)}`,
        });
      }
      return results;
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
/** Multi-gets per contender per round (one to each in turn), after as many to warm up. */
const MULTI_REQUESTS = 200;
/** Then multi-gets per contender in a run of their own. */
const MULTI_RUN = 50;

/** One connection sending the same multi-get and timing each whole reply (it ends with END). */
class MultiGetter {
  readonly #conn: Deno.Conn;
  readonly #buf = new Uint8Array(1 << 20);

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connects to `port` on loopback. */
  static async open(port: number): Promise<MultiGetter> {
    return new MultiGetter(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Sends `req` and waits for the whole reply; its latency in µs. */
  async once(req: Uint8Array): Promise<number> {
    const buf = this.#buf;
    const t0 = performance.now();
    await this.#conn.write(req);
    let len = 0;
    while (
      len < 5 || buf[len - 5] !== 69 || buf[len - 4] !== 78 || buf[len - 3] !== 68 ||
      buf[len - 1] !== 10
    ) {
      const got = await this.#conn.read(buf.subarray(len));
      if (got === null) throw new Error("connection closed");
      len += got;
    }
    return 1000 * (performance.now() - t0);
  }

  /** Closes the connection. */
  close(): void {
    this.#conn.close();
  }
}

/**
 * The floor a proxy cannot beat: the client itself sends each server its
 * part of the multi-get (the keys the proxy's ring gives it, in order) on
 * its own connection, all at once, and waits for every END.
 */
class FanOut {
  readonly #parts: MultiGetter[];
  readonly #reqs: Uint8Array[];

  private constructor(parts: MultiGetter[], reqs: Uint8Array[]) {
    this.#parts = parts;
    this.#reqs = reqs;
  }

  /** One connection per server in `ports`, each with its keys' `get` line. */
  static async open(ports: number[], keys: string[]): Promise<FanOut> {
    const ring = new Ketama(ports.map((p) => ({ name: ketamaName("127.0.0.1", p), weight: 1 })));
    const enc = new TextEncoder();
    const mine: string[][] = ports.map(() => []);
    for (const k of keys) {
      const b = enc.encode(k);
      mine[ring.pick(b, 0, b.length)].push(k);
    }
    const parts: MultiGetter[] = [], reqs: Uint8Array[] = [];
    for (let i = 0; i < ports.length; i++) {
      if (mine[i].length === 0) continue;
      parts.push(await MultiGetter.open(ports[i]));
      reqs.push(enc.encode(`get ${mine[i].join(" ")}\r\n`));
    }
    return new FanOut(parts, reqs);
  }

  /** All parts at once; the latency of the whole in µs. */
  async once(): Promise<number> {
    const t0 = performance.now();
    await Promise.all(this.#parts.map((p, i) => p.once(this.#reqs[i])));
    return 1000 * (performance.now() - t0);
  }

  /** Closes the connections. */
  close(): void {
    for (const p of this.#parts) p.close();
  }
}

/**
 * Multi-get section: a 1,000-key get through the proxy over 4 memcached vs
 * the same get to one memcached. The two take turns request by request, so
 * both see the same moments of a busy machine; the ratio is that of the
 * medians, per round, and the median of the rounds' ratios is reported.
 * The second figure is the section's first method: a run of gets to one,
 * then a run to the other. The third is the floor of any proxy here: the
 * client sending each of the 4 memcached its part itself, in parallel
 * (in the same turns, after the proxy's get). With `MEMREP_AB_ROOTS` (other
 * checkouts, comma-separated) their proxies run over the same 4 memcached and
 * take turns with this one (in a rotating order): latency and CPU per get of
 * this proxy over each of theirs.
 */
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
    const conns: { close(): void }[] = [];
    try {
      const mcs = [];
      for (let i = 0; i < 4; i++) mcs.push(await track(startMemcached(["-m", "64"])));
      const direct = await track(startMemcached(["-m", "64"]));
      const proxy = await track(startProxy(mcs.map((h) => h.port)));
      // MEMREP_AB_ROOTS: other checkouts' proxies over the same 4 memcached, in the same turns.
      const roots = (Deno.env.get("MEMREP_AB_ROOTS") ?? "").split(",").filter((r) => r !== "");
      const others: { root: string; h: ProcessHandle }[] = [];
      for (const root of roots) {
        others.push({ root, h: await track(startCheckoutProxy(root, mcs.map((h) => h.port))) });
      }
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
      const d = await MultiGetter.open(direct.port);
      conns.push(d);
      const p = await MultiGetter.open(proxy.port);
      conns.push(p);
      // nutcracker (the stand-in) hashes with fnv1a_64: the floor's split would not be its own.
      const f = standIn ? null : await FanOut.open(mcs.map((h) => h.port), keys);
      if (f !== null) conns.push(f);
      const os: MultiGetter[] = [];
      for (const o of others) {
        const g = await MultiGetter.open(o.h.port);
        conns.push(g);
        os.push(g);
      }
      for (let i = 0; i < MULTI_REQUESTS; i++) {
        await d.once(req);
        await p.once(req);
        for (const g of os) await g.once(req);
        await f?.once();
      }
      /** Per other checkout: this proxy's latency and CPU per get over its, per round. */
      const abLatency: number[][] = others.map(() => []), abCpu: number[][] = others.map(() => []);
      // Per round: the two in turn, request by request; then, as this section first measured,
      // a run of gets to one and a run to the other.
      const turns: number[] = [], runs: number[] = [], ds: number[] = [], ps: number[] = [];
      const floors: number[] = [], fs: number[] = [];
      for (let r = 0; r < ctx.rounds; r++) {
        const dt: number[] = [], pt: number[] = [], ft: number[] = [];
        const ot: number[][] = others.map(() => []);
        const cpu0 = threadCpu(proxy.pid);
        const ocpu0 = others.map((o) => threadCpu(o.h.pid));
        for (let i = 0; i < MULTI_REQUESTS; i++) {
          dt.push(await d.once(req));
          // This proxy and the others take turns in an order that rotates (none always first).
          const order = [p, ...os];
          const k = i % order.length;
          for (let j = 0; j < order.length; j++) {
            const at = (j + k) % order.length;
            const t = await order[at].once(req);
            if (at === 0) pt.push(t);
            else ot[at - 1].push(t);
          }
          if (f !== null) ft.push(await f.once());
        }
        const cpu = cpuSince(cpu0, threadCpu(proxy.pid));
        const abLog: string[] = [];
        others.forEach((o, j) => {
          const ocpu = cpuSince(ocpu0[j], threadCpu(o.h.pid));
          abLatency[j].push(median(pt) / median(ot[j]));
          abCpu[j].push(cpu / ocpu);
          abLog.push(
            `${o.root} ${fmt(median(ot[j]))} µs (this/it ${
              (median(pt) / median(ot[j])).toFixed(2)
            }, CPU ${fmt(1e6 * cpu / MULTI_REQUESTS)}/${
              fmt(1e6 * ocpu / MULTI_REQUESTS)
            } µs per get)`,
          );
        });
        if (abLog.length > 0) ctx.log(`  round ${r + 1}/${ctx.rounds}: ${abLog.join("; ")}`);
        ds.push(median(dt));
        ps.push(median(pt));
        turns.push(median(pt) / median(dt));
        if (f !== null) {
          fs.push(median(ft));
          floors.push(median(ft) / median(dt));
        }
        const dr: number[] = [], pr: number[] = [];
        for (let i = 0; i < MULTI_RUN; i++) dr.push(await d.once(req));
        for (let i = 0; i < MULTI_RUN; i++) pr.push(await p.once(req));
        runs.push(median(pr) / median(dr));
        ctx.log(
          `  round ${r + 1}/${ctx.rounds}: in turn direct ${fmt(median(dt))} µs, proxy ${
            fmt(median(pt))
          } µs${f !== null ? `, fan-out ${fmt(median(ft))} µs` : ""}; in runs direct ${
            fmt(median(dr))
          } µs, proxy ${fmt(median(pr))} µs`,
        );
      }
      const floor: Result[] = f === null ? [] : [{
        name: `fan-out/direct ${MULTI_KEYS}-key multi-get (a proxy's floor)`,
        value: median(floors),
        detail: `the client sending each memcached its part itself, in parallel: ${
          fmt(median(fs))
        } µs (same turns)`,
      }];
      const ab: Result[] = others.flatMap((o, j) => [{
        name: `proxy/${o.root} proxy ${MULTI_KEYS}-key multi-get latency`,
        value: median(abLatency[j]),
        detail: `same turns, median of ${ctx.rounds} rounds' ratios of medians: ${
          abLatency[j].map((v) => v.toFixed(2)).join(", ")
        }`,
      }, {
        name: `proxy/${o.root} proxy CPU per ${MULTI_KEYS}-key multi-get`,
        value: median(abCpu[j]),
        detail: `all threads' schedstat, per round: ${
          abCpu[j].map((v) => v.toFixed(2)).join(", ")
        }`,
      }]);
      return [...ab, {
        name: `proxy/direct ${MULTI_KEYS}-key multi-get latency ratio`,
        value: median(turns),
        detail: `proxy over 4 memcached ${fmt(median(ps))} µs, one memcached ${
          fmt(median(ds))
        } µs (median of ${ctx.rounds} rounds of ${MULTI_REQUESTS} gets to each in turn)`,
      }, {
        name: `proxy/direct ${MULTI_KEYS}-key multi-get, runs`,
        value: median(runs),
        detail:
          `the same in runs of ${MULTI_RUN} gets to one, then to the other (median of ${ctx.rounds} rounds)`,
      }, ...floor];
    } finally {
      for (const c of conns) c.close();
      await Promise.all(started.map((h) => h.stop()));
    }
  },
};
