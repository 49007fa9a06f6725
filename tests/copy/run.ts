/**
 * `memrep replicate` runs for copy tests: started in the background with its
 * memory sampled, servers filled, stopped and waited on.
 * @module
 */

import { ok, waitUntil } from "../helpers/assert.ts";
import { type ProcessHandle, startMemcached, startMemrep } from "../helpers/process.ts";
import { type Relay, startRelay } from "../helpers/relay.ts";
import { Client } from "../../lib/client/mod.ts";

/** `127.0.0.1:<port>`. */
export function addr(port: number): string {
  return `127.0.0.1:${port}`;
}

/** The server's `curr_items`. */
export async function currItems(port: number): Promise<number> {
  const c = await Client.connect("127.0.0.1", port);
  try {
    return Number((await c.stats()).get("curr_items"));
  } finally {
    c.close();
  }
}

/** `count` items of `size` bytes on `port`, pipelined; every third without TTL. */
export async function fill(port: number, count: number, size: number): Promise<void> {
  const c = await Client.connect("127.0.0.1", port);
  try {
    const v = new Uint8Array(size);
    for (let i = 0; i < count; i += 500) {
      const sets = [];
      for (let j = i; j < Math.min(count, i + 500); j++) {
        v[0] = j & 0xff;
        v[size - 1] = (j >> 8) & 0xff;
        sets.push(c.set(`k:${j}`, v, j, j % 3 === 0 ? 0 : 5000 + (j % 1000)));
      }
      await Promise.all(sets);
    }
  } finally {
    c.close();
  }
}

/** The copier's peak resident memory (kB) while `p` runs, sampled every 20 ms. */
export async function peakRss(p: ProcessHandle): Promise<number> {
  let peak = 0;
  while (!p.exited()) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(await Deno.readTextFile(`/proc/${p.pid}/status`));
      if (m) peak = Math.max(peak, Number(m[1]));
    } catch { /* exited */ }
    await new Promise((r) => setTimeout(r, 20));
  }
  return peak;
}

/** How a copy ended, and the copier's peak memory. */
export interface Run {
  /** Exit status. */
  code: number;
  /** The --json summary. */
  summary: { copied: number; failed: number; errors: string[] };
  /** stdout and stderr. */
  out: string;
  /** stderr alone. */
  err: string;
  /** Peak resident memory, kB. */
  peakKb: number;
}

/** Starts `memrep replicate <args> --json`, runs `during` meanwhile, waits for its end. */
export async function copy(args: string[], during: () => Promise<void>): Promise<Run> {
  const p = await startMemrep(["replicate", ...args, "--json"], { waitPort: false });
  try {
    const peak = peakRss(p);
    await during();
    const guard = setTimeout(() => p.kill("SIGKILL"), 45_000);
    const status = await p.status;
    clearTimeout(guard);
    await p.stop();
    const out = p.outputLines().join("\n");
    const json = p.stdoutLines().find((l) => l.startsWith("{"));
    ok(json, out);
    const err = p.stderrLines().join("\n");
    return { code: status.code, summary: JSON.parse(json), out, err, peakKb: await peak };
  } finally {
    await p.stop();
  }
}

/** Waits until `dst` holds `after` items (the copy is slowed by a relay, so this is midway). */
export async function midway(dst: number, after: number): Promise<void> {
  await waitUntil(async () => await currItems(dst) >= after, `${after} items copied`, 30_000);
}

/** Stops `victim` (SIGSTOP) for `ms`. */
export async function freeze(victim: ProcessHandle, ms: number): Promise<void> {
  victim.kill("SIGSTOP");
  try {
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    victim.kill("SIGCONT");
  }
}

/** A source and a target memcached, and a relay in front of one of them. */
export interface Servers {
  /** The source memcached. */
  src: ProcessHandle;
  /** The target memcached. */
  dst: ProcessHandle;
  /** The relay in front of the side asked for. */
  relay: Relay;
}

/** Runs `fn` over a source and a target memcached with a relay in front of `side`; stops all after. */
export async function withServers(
  side: "source" | "target",
  fn: (s: Servers) => Promise<void>,
): Promise<void> {
  const src = await startMemcached();
  const dst = await startMemcached();
  const relay = startRelay(side === "target" ? dst.port : src.port);
  try {
    await fn({ src, dst, relay });
  } finally {
    await relay.close();
    await src.stop();
    await dst.stop();
  }
}
