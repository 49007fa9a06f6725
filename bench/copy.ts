/**
 * `memrep replicate` speed: N items (default 200k) of 100-byte values copied
 * memcached → memcached, timing the whole command as a user runs it
 * (`deno run -P=memrep main.ts replicate ...`, start-up included).
 *
 *   deno run -A bench/copy.ts [items]
 *
 * Also the `copy` section of bench/mod.ts (`deno task bench copy`).
 * @module
 */

import { Client } from "../lib/client/mod.ts";
import { memrepCommand, startMemcached } from "../tests/helpers/process.ts";
import type { BenchContext, Result, Section } from "./harness.ts";

/** Result of {@linkcode benchCopy}. */
export interface CopyBenchResult {
  /** Items copied. */
  items: number;
  /** Wall time of the whole command, seconds. */
  seconds: number;
  /** items / seconds. */
  itemsPerSecond: number;
  /** The command's own summary (copy loop only). */
  summary: Record<string, unknown>;
}

/** Fills a source, runs the copy command, checks the target, returns the rate. */
export async function benchCopy(items = 200_000, valueSize = 100): Promise<CopyBenchResult> {
  const source = await startMemcached(["-m", "512"]);
  const target = await startMemcached(["-m", "512"]);
  try {
    const c = await Client.connect("127.0.0.1", source.port);
    const value = new Uint8Array(valueSize).fill(120);
    for (let i = 0; i < items; i += 5000) {
      const batch = [];
      for (let j = i; j < Math.min(items, i + 5000); j++) {
        batch.push(c.set(`key:${String(j).padStart(10, "0")}`, value, j & 0xffff, 0));
      }
      await Promise.all(batch);
    }
    c.close();
    const { cmd, args } = memrepCommand();
    const t0 = performance.now();
    const out = await new Deno.Command(cmd, {
      args: [
        ...args,
        "replicate",
        "--from",
        `127.0.0.1:${source.port}`,
        "--to",
        `127.0.0.1:${target.port}`,
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const seconds = (performance.now() - t0) / 1000;
    const text = new TextDecoder().decode(out.stdout).trim();
    if (out.code !== 0) {
      throw new Error(`replicate exited ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
    }
    const summary = JSON.parse(text);
    const t = await Client.connect("127.0.0.1", target.port);
    const copied = Number((await t.stats()).get("curr_items"));
    t.close();
    if (copied !== items) throw new Error(`target holds ${copied} items, expected ${items}`);
    return { items, seconds, itemsPerSecond: items / seconds, summary };
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

/** The `copy` section of bench/mod.ts: 200k items of 100 B; goal >= 50k items/s. */
export const copy: Section = {
  name: "copy",
  title: "replicate memcached -> memcached, 200k x 100 B, whole command (goal >= 50k items/s)",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    ctx.log("copy: filling the source with 200k items");
    const r = await benchCopy(200_000);
    return [{
      name: "replicate items/s (whole command)",
      value: r.itemsPerSecond,
      detail: `${r.items} items in ${r.seconds.toFixed(2)} s including start-up; ` +
        `copy loop ${r.summary.itemsPerSecond} items/s`,
    }];
  },
};

if (import.meta.main) {
  const items = Number(Deno.args[0] ?? 200_000);
  const r = await benchCopy(items);
  console.log(
    `replicate memcached -> memcached: ${r.items} items of 100 B in ${r.seconds.toFixed(2)} s ` +
      `(whole command) = ${Math.round(r.itemsPerSecond)} items/s; ` +
      `copy loop alone ${r.summary.itemsPerSecond} items/s`,
  );
}
