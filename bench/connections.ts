/**
 * Memory per connection, `memrep serve` against memcached (issue 9, items 7
 * and 8): RSS growth while two clients pipeline 1,000 gets of a 256 KB value
 * and never read, what is left after they close, and RSS after bursts of
 * 5,000 connections. Values are MB of growth over each server's own
 * starting RSS.
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

/** RSS growth (KiB) after `bursts` bursts of `n` connections, each served one get. */
async function bursts(server: ProcessHandle, bursts: number, n: number): Promise<number> {
  const base = rssKiB(server.pid);
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
  return rssKiB(server.pid) - base;
}

/** The connection-memory section. */
export const connections: Section = {
  name: "connections",
  title: "serve vs memcached: RSS growth with unread pipelined replies and connection bursts",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    const results: Result[] = [];
    const figures = new Map<string, { peak: number; after: number; bursts: number }>();
    for (const name of ["memcached", "memrep"]) {
      ctx.log(`connections: ${name}`);
      const server = name === "memcached"
        ? await startMemcached(["-m", "64", "-c", "20000"])
        : await startMemrep(["serve", "-m", "64", "-c", "20000", "-U", "0"]);
      try {
        const gets = await unreadGets(server);
        figures.set(name, { ...gets, bursts: await bursts(server, 8, 5000) });
      } finally {
        await server.stop();
      }
    }
    const mc = figures.get("memcached")!, mr = figures.get("memrep")!;
    const detail = (k: "peak" | "after" | "bursts") =>
      `memrep +${mb(mr[k]).toFixed(0)} MB, memcached +${mb(mc[k]).toFixed(0)} MB`;
    results.push(
      { name: "unread 2x1000 256 KB gets, peak MB", value: mb(mr.peak), detail: detail("peak") },
      { name: "unread gets, MB left after close", value: mb(mr.after), detail: detail("after") },
      { name: "8 bursts of 5,000 conns, MB", value: mb(mr.bursts), detail: detail("bursts") },
    );
    return results;
  },
};
