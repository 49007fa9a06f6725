/**
 * Memory per connection, `memrep serve` against memcached (issue 9, items 7
 * and 8): RSS growth while two clients pipeline 1,000 gets of a 256 KB value
 * and never read, what is left after they close, and RSS before and after
 * 8 bursts of 5,000 connections (memrep with its default threads and with
 * -t 1; the proxy in front of one memcached). Values are MB of growth over
 * each server's own starting RSS.
 * @module
 */

import { startMemcached, startMemrep } from "../tests/helpers/process.ts";
import type { ProcessHandle } from "../tests/helpers/process.ts";
import { type BenchContext, type Result, rssKiB, type Section, unavailable } from "./harness.ts";

const enc = new TextEncoder();

function mb(kib: number): number {
  return kib / 1024;
}

async function settle(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** RSS growth (KiB) at the peak of two non-reading pipelining clients and after they close. */
async function unreadGets(server: ProcessHandle): Promise<{ peak: number; after: number }> {
  const value = "v".repeat(256 * 1024);
  const setter = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await setter.write(enc.encode(`set big 0 0 ${value.length}\r\n${value}\r\n`));
  await setter.read(new Uint8Array(64));
  setter.close();
  const base = rssKiB(server.pid);
  const hogs: Deno.Conn[] = [];
  for (let i = 0; i < 2; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await c.write(enc.encode("get big\r\n".repeat(1000)));
    hogs.push(c);
  }
  let peak = 0;
  for (let i = 0; i < 20; i++) {
    peak = Math.max(peak, rssKiB(server.pid));
    await settle(100);
  }
  for (const c of hogs) c.close();
  await settle(3000);
  return { peak: peak - base, after: rssKiB(server.pid) - base };
}

/** RSS (KiB) before and after `bursts` bursts of `n` connections, each served one get. */
async function bursts(
  server: ProcessHandle,
  bursts: number,
  n: number,
): Promise<{ before: number; after: number }> {
  const before = rssKiB(server.pid);
  for (let b = 0; b < bursts; b++) {
    const conns: Deno.Conn[] = [];
    for (let i = 0; i < n; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    }
    await Promise.all(conns.map(async (c) => {
      await c.write(enc.encode("get k\r\n"));
      await c.read(new Uint8Array(16));
    }));
    for (const c of conns) c.close();
    await settle(500);
  }
  // The last burst's closes and memrep's heap trim (250 ms after they stop) take a moment.
  await settle(2000);
  return { before, after: rssKiB(server.pid) };
}

/** "a → b MB (+c)" for RSS before and after, in KiB. */
function span(r: { before: number; after: number }): string {
  return `${mb(r.before).toFixed(0)} → ${mb(r.after).toFixed(0)} MB (+${
    mb(r.after - r.before).toFixed(0)
  })`;
}

/** The connection-memory section. */
export const connections: Section = {
  name: "connections",
  title: "serve vs memcached: RSS growth with unread pipelined replies and connection bursts",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    const results: Result[] = [];
    type Burst = { before: number; after: number };
    const figures = new Map<string, { peak: number; after: number; bursts: Burst }>();
    for (const name of ["memcached", "memrep", "memrep -t 1"]) {
      ctx.log(`connections: ${name}`);
      const server = name === "memcached"
        ? await startMemcached(["-m", "64", "-c", "20000"])
        : await startMemrep([
          "serve",
          "-m",
          "64",
          "-c",
          "20000",
          "-U",
          "0",
          ...(name === "memrep" ? [] : ["-t", "1"]),
        ]);
      try {
        const gets = name === "memrep -t 1" ? { peak: 0, after: 0 } : await unreadGets(server);
        figures.set(name, { ...gets, bursts: await bursts(server, 8, 5000) });
      } finally {
        await server.stop();
      }
    }
    ctx.log("connections: proxy");
    const backend = await startMemcached(["-m", "64", "-c", "20000"]);
    let proxied: Burst;
    try {
      const proxy = await startMemrep(["proxy", "-s", `127.0.0.1:${backend.port}`, "-n", "20000"]);
      try {
        proxied = await bursts(proxy, 8, 5000);
      } finally {
        await proxy.stop();
      }
    } finally {
      await backend.stop();
    }
    const mc = figures.get("memcached")!, mr = figures.get("memrep")!;
    const one = figures.get("memrep -t 1")!;
    const detail = (k: "peak" | "after") =>
      `memrep +${mb(mr[k]).toFixed(0)} MB, memcached +${mb(mc[k]).toFixed(0)} MB`;
    const grown = (r: Burst) => mb(r.after - r.before);
    results.push(
      { name: "unread 2x1000 256 KB gets, peak MB", value: mb(mr.peak), detail: detail("peak") },
      { name: "unread gets, MB left after close", value: mb(mr.after), detail: detail("after") },
      {
        name: "8 bursts of 5,000 conns, MB",
        value: grown(mr.bursts),
        detail: `memrep ${span(mr.bursts)}, memcached ${span(mc.bursts)}`,
      },
      {
        name: "8 bursts of 5,000 conns, -t 1, MB",
        value: grown(one.bursts),
        detail: `memrep -t 1 ${span(one.bursts)}, memcached ${span(mc.bursts)}`,
      },
      {
        name: "8 bursts of 5,000 conns through the proxy, MB",
        value: grown(proxied),
        detail: `proxy ${span(proxied)}, memcached alone ${span(mc.bursts)}`,
      },
    );
    return results;
  },
};
