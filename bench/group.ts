/**
 * One member of a 3-member replica group against a single serve, for this
 * checkout and for the other checkouts named in `MEMREP_AB_ROOTS` (as the
 * checkouts section: `/tmp/old,/tmp/older`), all in the same alternation:
 * memcaslap throughput, and CPU-µs per request of the member, of its two
 * peers and of the single serve over a fixed number of requests. The
 * replication section's group part without the rest (pair, copies,
 * takeover), for finding where a group member's cost went.
 * @module
 */

import { type ProcessHandle, REPO_ROOT } from "../tests/helpers/process.ts";
import { freePort } from "../tests/helpers/ports.ts";
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
  stats,
  treeCpuSeconds,
  unavailable,
} from "./harness.ts";

/** Requests per CPU measurement. */
const OPS = 200_000;

/** `memrep serve` of checkout `root` on a free loopback port, with `args`. */
function serveAt(root: string, args: string[], port = freePort()): Promise<ProcessHandle> {
  return startCheckoutMemrep(root, "serve", ["-m", "1024", "-U", "0", ...args], { port });
}

/** A linked 3-member group of checkout `root`. */
async function groupAt(root: string): Promise<ProcessHandle[]> {
  const ports = [freePort(), freePort(), freePort()];
  const list = ports.map((p) => `127.0.0.1:${p}`).join(",");
  const nodes: ProcessHandle[] = [];
  try {
    for (const p of ports) {
      nodes.push(await serveAt(root, ["--replicate", list, "--repl-listen", `127.0.0.1:${p}`]));
    }
    const deadline = performance.now() + 20_000;
    for (const node of nodes) {
      while ((await stats(node.port)).get("repl_link") !== "up") {
        if (performance.now() > deadline) throw new Error(`${root}: the group did not link`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return nodes;
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw e;
  }
}

/** Group section. */
export const group: Section = {
  name: "group",
  title: "3-member group member vs single serve: throughput, CPU per request (MEMREP_AB_ROOTS)",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    const roots = [
      REPO_ROOT,
      ...(Deno.env.get("MEMREP_AB_ROOTS") ?? "").split(",").filter((r) => r !== ""),
    ];
    const label = (root: string) => (root === REPO_ROOT ? "this" : root);
    const cfg = await slapConfig();
    const started: ProcessHandle[] = [];
    try {
      const sets: { root: string; single: ProcessHandle; nodes: ProcessHandle[] }[] = [];
      for (const root of roots) {
        const single = await serveAt(root, []);
        started.push(single);
        const nodes = await groupAt(root);
        started.push(...nodes);
        sets.push({ root, single, nodes });
      }
      const tps = await alternate(
        ctx,
        sets.flatMap((s) => [
          {
            name: `${label(s.root)} single`,
            measure: async () => (await memcaslap(s.single.port, ctx.seconds, cfg)).tps,
          },
          {
            name: `${label(s.root)} member`,
            measure: async () => (await memcaslap(s.nodes[0].port, ctx.seconds, cfg)).tps,
          },
        ]),
      );
      // CPU-µs per request: the member's and (separately) its peers', over OPS requests.
      const peerCpu = new Map<string, number[]>();
      const cpu = await alternate(
        ctx,
        sets.flatMap((s) => [
          {
            name: `${label(s.root)} single cpu`,
            measure: async () => {
              const c0 = treeCpuSeconds(s.single.pid);
              const r = await memcaslap(s.single.port, 0, cfg, { ops: OPS });
              return (treeCpuSeconds(s.single.pid) - c0) * 1e6 / r.ops;
            },
          },
          {
            name: `${label(s.root)} member cpu`,
            measure: async () => {
              const peers = () => treeCpuSeconds(s.nodes[1].pid) + treeCpuSeconds(s.nodes[2].pid);
              const c0 = treeCpuSeconds(s.nodes[0].pid), p0 = peers();
              const r = await memcaslap(s.nodes[0].port, 0, cfg, { ops: OPS });
              // The peers apply what the member sent a moment after its last reply.
              await new Promise((res) => setTimeout(res, 300));
              const key = `${label(s.root)} peers cpu`;
              if (!peerCpu.has(key)) peerCpu.set(key, []);
              peerCpu.get(key)!.push((peers() - p0) * 1e6 / 2 / r.ops);
              ctx.log(`    peers: ${peerCpu.get(key)!.at(-1)!.toFixed(2)} CPU-µs/request each`);
              return (treeCpuSeconds(s.nodes[0].pid) - c0) * 1e6 / r.ops;
            },
          },
        ]),
      );
      const results: Result[] = [];
      for (const s of sets) {
        const l = label(s.root);
        const [stM, stP] = await Promise.all([stats(s.nodes[0].port), stats(s.nodes[1].port)]);
        const m = median(tps.get(`${l} member`)!), t = median(tps.get(`${l} single`)!);
        const cm = median(cpu.get(`${l} member cpu`)!), cs = median(cpu.get(`${l} single cpu`)!);
        const cp = median(peerCpu.get(`${l} peers cpu`)!);
        results.push({
          name: `${l}: member/single throughput`,
          value: m / t,
          detail: `${fmt(m)} vs ${fmt(t)} TPS`,
        });
        results.push({
          name: `${l}: member/single CPU per request`,
          value: cm / cs,
          detail: `member ${cm.toFixed(1)}, single ${cs.toFixed(1)}, each peer ${
            cp.toFixed(1)
          } CPU-µs/request (member sent ${stM.get("repl_changes_sent")}, forwarded ${
            stM.get("repl_changes_forwarded")
          }; a peer applied ${stP.get("repl_changes_applied")}, ignored ${
            stP.get("repl_changes_ignored")
          }, forwarded ${stP.get("repl_changes_forwarded")})`,
        });
      }
      return results;
    } finally {
      await Promise.all(started.map((h) => h.stop()));
      await Deno.remove(cfg);
    }
  },
};
