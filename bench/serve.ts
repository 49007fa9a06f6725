/**
 * `memrep serve` against memcached: throughput under memcaslap (90% get,
 * 10% set, 100-byte values) and resident memory after loading 1M items.
 * @module
 */

import { startMemcached, startMemrep } from "../tests/helpers/process.ts";
import {
  alternate,
  type BenchContext,
  fmt,
  loadItems,
  median,
  memcaslap,
  type Result,
  rssKiB,
  type Section,
  slapConfig,
  stats,
  unavailable,
} from "./harness.ts";

/** Throughput section. */
export const serveThroughput: Section = {
  name: "serve",
  title:
    "serve vs memcached: memcaslap throughput (90/10 get/set, 100-byte values), text and binary",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    const cfg = await slapConfig();
    const flags = ["-m", "256", "-U", "0"];
    const mc = await startMemcached(["-m", "256"]);
    const mr = await startMemrep(["serve", ...flags]).catch(async (e) => {
      await mc.stop();
      throw e;
    });
    try {
      const samples = await alternate(ctx, [
        {
          name: "memcached",
          measure: async () => (await memcaslap(mc.port, ctx.seconds, cfg)).tps,
        },
        { name: "memrep", measure: async () => (await memcaslap(mr.port, ctx.seconds, cfg)).tps },
        {
          name: "memcached -B",
          measure: async () => (await memcaslap(mc.port, ctx.seconds, cfg, { binary: true })).tps,
        },
        {
          name: "memrep -B",
          measure: async () => (await memcaslap(mr.port, ctx.seconds, cfg, { binary: true })).tps,
        },
      ]);
      const how = `median of ${ctx.rounds} alternating ${ctx.seconds} s runs, memcaslap -T 2 -c 32`;
      const a = median(samples.get("memrep")!);
      const b = median(samples.get("memcached")!);
      const ab = median(samples.get("memrep -B")!);
      const bb = median(samples.get("memcached -B")!);
      return [{
        name: "serve/memcached throughput ratio",
        value: a / b,
        detail: `memrep ${fmt(a)} TPS, memcached ${fmt(b)} TPS (${how})`,
      }, {
        name: "serve/memcached binary throughput ratio",
        value: ab / bb,
        detail: `memrep ${fmt(ab)} TPS, memcached ${fmt(bb)} TPS (${how} -B)`,
      }];
    } finally {
      await Promise.all([mc.stop(), mr.stop()]);
      await Deno.remove(cfg);
    }
  },
};

async function loadedRss(
  ctx: BenchContext,
  name: string,
  start: () => Promise<{ port: number; pid: number; stop(): Promise<unknown> }>,
): Promise<{ idle: number; loaded: number; items: string; notStored: number; secs: number }> {
  const h = await start();
  try {
    const idle = rssKiB(h.pid);
    const t0 = performance.now();
    const notStored = await loadItems(h.port, ctx.items);
    const secs = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 500)); // let the heap settle
    const loaded = rssKiB(h.pid);
    const items = (await stats(h.port)).get("curr_items") ?? "?";
    ctx.log(
      `  ${name}: idle ${fmt(idle / 1024)} MiB, loaded ${fmt(loaded / 1024)} MiB, ` +
        `curr_items ${items}, load ${secs.toFixed(1)} s`,
    );
    return { idle, loaded, items, notStored, secs };
  } finally {
    await h.stop();
  }
}

/** Memory section. */
export const serveMemory: Section = {
  name: "memory",
  title: "serve vs memcached: RSS after loading 14-byte keys with 100-byte values",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    const mc = await loadedRss(ctx, "memcached", () => startMemcached(["-m", "1024"]));
    const mr = await loadedRss(
      ctx,
      "memrep",
      () => startMemrep(["serve", "-m", "1024", "-U", "0"]),
    );
    const mib = (k: number) => (k / 1024).toFixed(0);
    return [{
      name: "serve/memcached RSS ratio",
      value: mr.loaded / mc.loaded,
      detail:
        `after ${fmt(ctx.items)} items: memrep ${mib(mr.loaded)} MiB (idle ${mib(mr.idle)}, ` +
        `curr_items ${mr.items}, load ${mr.secs.toFixed(1)} s), memcached ${mib(mc.loaded)} MiB ` +
        `(idle ${mib(mc.idle)}, curr_items ${mc.items}, load ${mc.secs.toFixed(1)} s)` +
        (mr.notStored + mc.notStored
          ? `; NOT STORED: memrep ${mr.notStored}, memcached ${mc.notStored}`
          : ""),
    }];
  },
};
