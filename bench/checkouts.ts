/**
 * `memrep serve` of this checkout against other checkouts of memrep (older
 * commits, other branches) and memcached, alternating in the same run:
 * throughput and CPU-µs per request under memcaslap. For finding where a
 * change of speed came from (`git worktree add /tmp/old <commit>`).
 *
 * `MEMREP_AB_ROOTS=/tmp/old,/tmp/older` names the other checkouts (each one
 * runs its own main.ts with its own deno.json; `/tmp/old#-t 1` gives one its
 * own serve flags). Each checkout runs with the V8 flags of its own
 * lib/v8_flags.ts (as its compile.sh builds it; none when it has no such
 * file); words starting with `--v8-flags=` replace those
 * (`/tmp/old#--v8-flags=--single-threaded-gc`; a bare `--v8-flags=`: V8's
 * defaults). The same root may be named twice with different flags. `MEMREP_AB_FLAGS="-t 1"`
 * adds serve flags to every memrep (default: none, each one's default
 * threads); `MEMREP_AB_THREADS=1,2` runs this checkout once per thread count.
 * @module
 */

import { type ProcessHandle, REPO_ROOT, startMemcached } from "../tests/helpers/process.ts";
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
  treeCpuSeconds,
  unavailable,
} from "./harness.ts";

/** Requests per cost measurement (as the cost section). */
const OPS = 300_000;

function startCheckout(root: string, words: string[]): Promise<ProcessHandle> {
  const given = words.filter((w) => w.startsWith("--v8-flags="));
  const v8 = given.length ? given.filter((w) => w !== "--v8-flags=") : undefined;
  const flags = words.filter((w) => !w.startsWith("--v8-flags="));
  return startCheckoutMemrep(root, "serve", ["-m", "256", "-U", "0", ...flags], { v8 });
}

function words(s: string | undefined): string[] {
  return (s ?? "").split(/\s+/).filter((w) => w !== "");
}

/** Checkouts section. */
export const checkouts: Section = {
  name: "checkouts",
  title: "serve of this checkout vs other checkouts (MEMREP_AB_ROOTS) and memcached",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    const roots = (Deno.env.get("MEMREP_AB_ROOTS") ?? "").split(",").filter((r) => r !== "");
    const flags = words(Deno.env.get("MEMREP_AB_FLAGS"));
    const threads = words(Deno.env.get("MEMREP_AB_THREADS")?.replaceAll(",", " "));
    const cfg = await slapConfig();
    const started: ProcessHandle[] = [];
    try {
      const mc = await startMemcached(["-m", "256"]);
      started.push(mc);
      const servers: { name: string; h: ProcessHandle }[] = [{ name: "memcached", h: mc }];
      const here = threads.length ? threads.map((t) => ["-t", t]) : [[]];
      for (const t of here) {
        const h = await startCheckout(REPO_ROOT, [...flags, ...t]);
        started.push(h);
        servers.push({ name: `this ${[...flags, ...t].join(" ")}`.trim(), h });
      }
      for (const entry of roots) {
        const [root, own] = entry.split("#");
        const f = [...flags, ...words(own)];
        const h = await startCheckout(root, f);
        started.push(h);
        servers.push({ name: `${root} ${f.join(" ")}`.trim(), h });
      }
      const tps = await alternate(
        ctx,
        servers.map((s) => ({
          name: s.name,
          measure: async () => (await memcaslap(s.h.port, ctx.seconds, cfg)).tps,
        })),
      );
      const cpu = await alternate(
        ctx,
        servers.map((s) => ({
          name: s.name,
          measure: async () => {
            const before = treeCpuSeconds(s.h.pid);
            const r = await memcaslap(s.h.port, 0, cfg, { ops: OPS });
            return (treeCpuSeconds(s.h.pid) - before) * 1e6 / r.ops;
          },
        })),
      );
      const t0 = median(tps.get("memcached")!), c0 = median(cpu.get("memcached")!);
      return servers.slice(1).flatMap((s) => {
        const t = median(tps.get(s.name)!), c = median(cpu.get(s.name)!);
        return [{
          name: `${s.name} / memcached throughput`,
          value: t / t0,
          detail: `${fmt(t)} vs ${fmt(t0)} TPS`,
        }, {
          name: `${s.name} / memcached CPU per request`,
          value: c / c0,
          detail: `${c.toFixed(1)} vs ${c0.toFixed(1)} CPU-µs/request`,
        }];
      });
    } finally {
      await Promise.all(started.map((h) => h.stop()));
      await Deno.remove(cfg);
    }
  },
};
