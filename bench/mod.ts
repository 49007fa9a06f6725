/**
 * `deno task bench [--quick] [section ...]`: runs the benchmark sections in
 * order and prints each ratio, measured in this same run with the contenders
 * alternating. Sections: serve, memory, connections, proxy, proxy-binary, proxy-multiget, replication, copy,
 * cost, proxy-floor, restart, startup, tls, checkouts (MEMREP_AB_ROOTS: other checkouts side by side;
 * proxy and proxy-multiget take it too), group (a group member's cost, MEMREP_AB_ROOTS too).
 *
 * Flags: `--quick` (3 s runs, 1 round, 200k items: a smoke test of the
 * harness), `--seconds N`, `--rounds N`, `--items N`.
 * `MEMREP_TARGET=memcached` makes memcached (and nutcracker) stand in for
 * memrep, to check the harness itself.
 * @module
 */

import { parseArgs } from "node:util";
import type { BenchContext, Result, Section } from "./harness.ts";
import { serveMemory, serveThroughput } from "./serve.ts";
import { proxyBinaryThroughput, proxyMultiGet, proxyThroughput } from "./proxy.ts";
import { replication } from "./replication.ts";
import { group } from "./group.ts";
import { copy } from "./copy.ts";
import { cost, proxyFloor } from "./cost.ts";
import { connections } from "./connections.ts";
import { warmRestart } from "./warm_restart.ts";
import { tls } from "./tls.ts";
import { checkouts } from "./checkouts.ts";
import { startup } from "./startup.ts";

/** Every section, in the order they run. Add new ones here. */
export const SECTIONS: Section[] = [
  serveThroughput,
  serveMemory,
  connections,
  proxyThroughput,
  proxyBinaryThroughput,
  proxyMultiGet,
  replication,
  copy,
  cost,
  proxyFloor,
  warmRestart,
  startup,
  tls,
  checkouts,
  group,
];

/** Runs the selected sections; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: "boolean" },
      seconds: { type: "string" },
      rounds: { type: "string" },
      items: { type: "string" },
    },
  });
  const quick = values.quick ?? false;
  const ctx: BenchContext = {
    seconds: Number(values.seconds ?? (quick ? 3 : 10)),
    rounds: Number(values.rounds ?? (quick ? 1 : 2)),
    items: Number(values.items ?? (quick ? 200_000 : 1_000_000)),
    log: (m) => console.error(m),
  };
  const unknown = positionals.filter((p) => !SECTIONS.some((s) => s.name === p));
  if (unknown.length) {
    console.error(
      `unknown section(s): ${unknown.join(", ")}; known: ${SECTIONS.map((s) => s.name).join(", ")}`,
    );
    return 2;
  }
  const chosen = positionals.length
    ? SECTIONS.filter((s) => positionals.includes(s.name))
    : SECTIONS.filter((s) => s !== checkouts && s !== group); // only when named (replication has the group part)
  const target = Deno.env.get("MEMREP_TARGET") === "memcached"
    ? " (MEMREP_TARGET=memcached: stand-ins)"
    : "";
  console.log(
    `memrep benchmarks${target}: ${ctx.seconds} s runs, ${ctx.rounds} round(s), ${ctx.items} items`,
  );
  const all: Result[] = [];
  let errors = 0;
  const t0 = performance.now();
  for (const s of chosen) {
    console.log(`\n== ${s.name}: ${s.title}`);
    try {
      const r = await s.run(ctx);
      if (typeof r === "string") {
        console.log(`skipped: ${r}`);
        continue;
      }
      for (const x of r) {
        console.log(`${x.name}: ${x.value.toFixed(2)}  (${x.detail})`);
        all.push(x);
      }
    } catch (e) {
      errors++;
      console.log(`error: ${e instanceof Error ? e.stack ?? e.message : e}`);
    }
  }
  console.log(`\n== summary (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  for (const x of all) console.log(`${x.name.padEnd(40)} ${x.value.toFixed(2)}`);
  return errors ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
