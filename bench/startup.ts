/**
 * Start-up: from spawn to the port accepting a connection, and to the
 * first `version` reply, for `memrep serve` (as the tests start it:
 * `deno run -P=memrep` with the V8 flags) and memcached, alternating.
 * Client test kits talk to a spawned memcached 0.1 s after they start it
 * (Dalli's harness), so the first figure has a budget: 100 ms.
 *
 * Also the `startup` section of bench/mod.ts (`deno task bench startup`).
 * @module
 */

import { binaryPath, memrepCommand } from "../tests/helpers/process.ts";
import { freePort } from "../tests/helpers/ports.ts";
import { type BenchContext, median, type Result, type Section } from "./harness.ts";

/** Milliseconds from spawn to accept and to the first reply (polling every 1 ms). */
async function startOnce(cmd: string, args: string[]): Promise<[number, number]> {
  const port = freePort();
  const t0 = performance.now();
  const proc = new Deno.Command(cmd, {
    args: [...args, "-p", String(port), "-l", "127.0.0.1", "-U", "0"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let conn: Deno.TcpConn | undefined;
    while (!conn) {
      conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
      if (!conn) await new Promise((r) => setTimeout(r, 1));
      if (performance.now() - t0 > 10_000) throw new Error(`${cmd} did not listen in 10 s`);
    }
    const accepted = performance.now() - t0;
    await conn.write(new TextEncoder().encode("version\r\n"));
    const buf = new Uint8Array(64);
    await conn.read(buf);
    const replied = performance.now() - t0;
    conn.close();
    return [accepted, replied];
  } finally {
    proc.kill("SIGKILL");
    await proc.status;
  }
}

/** The `startup` section. */
export const startup: Section = {
  name: "startup",
  title: "serve start-up: spawn to accepting, to the first reply (budget: 100 ms to accept)",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const memcached = binaryPath("memcached");
    if (!memcached) return "memcached is not installed";
    const { cmd, args } = memrepCommand();
    const root = Deno.uid() === 0 ? ["-u", "root"] : [];
    const samples = { memrep: [] as [number, number][], memcached: [] as [number, number][] };
    await startOnce(cmd, [...args, "serve"]); // (fills Deno's caches)
    const runs = Math.max(10, ctx.rounds * 5);
    for (let i = 0; i < runs; i++) {
      samples.memrep.push(await startOnce(cmd, [...args, "serve"]));
      samples.memcached.push(await startOnce(memcached, root));
    }
    const ms = (xs: [number, number][], k: 0 | 1) => median(xs.map((x) => x[k]));
    const worst = (xs: [number, number][]) => Math.max(...xs.map((x) => x[0]));
    return [
      {
        name: "serve start to accepting, ms",
        value: ms(samples.memrep, 0),
        detail: `median of ${runs}, worst ${worst(samples.memrep).toFixed(0)} ms; memcached ${
          ms(samples.memcached, 0).toFixed(1)
        } ms`,
      },
      {
        name: "serve start to first reply, ms",
        value: ms(samples.memrep, 1),
        detail: `memcached ${ms(samples.memcached, 1).toFixed(1)} ms`,
      },
    ];
  },
};
