/**
 * Seeded fault injection on pairs and groups of 3 and 5 (README "serve
 * --replicate", "replica groups"): while every member takes random writes
 * of every kind on one small key space (text set/add/replace/append/
 * prepend/cas/incr/decr/touch/gat/delete, meta ms/mg/md/ma with flags,
 * binary, flush_all now and delayed), members are killed with -9 and
 * restarted empty, SIGSTOPped past --repl-timeout, and links are cut,
 * hung, black-holed, slowed and flapped, two faults at a time; some members
 * run `-t 2`, some runs `--repl-sync` / `=quorum`. Once the faults stop and
 * the links heal, every member must hold the same items (value, flags,
 * version, expiry: full dumps compared), the restarted ones by themselves,
 * and no process may have crashed (exit code, stderr). Violations are
 * counted per kind; the seed is printed. MEMREP_SEEDS=n runs n seeds per
 * case, MEMREP_CHAOS_SEED replays one.
 */

import { equal } from "../helpers/assert.ts";
import { connect, mulberry32, type TestConn } from "../helpers/mod.ts";
import { sendPackets } from "../helpers/binary.ts";
import { chaosPacket, chaosRequest } from "../helpers/chaos_ops.ts";
import { Op } from "../../lib/protocol/mod.ts";
import type { Client } from "../../lib/client/mod.ts";
import { client, fill } from "./pair.ts";
import { type Group, settledGroup, startGroup } from "./group.ts";
import { differences, fault, healAll, Lives, seeds, sleep, Violations } from "./fault_mix.ts";

const KEYS = 40;
const CHAOS_MS = 6000;
const enc = new TextEncoder();

/** One text/meta batch: mostly chaos_ops' mix, a few delayed flush_all. */
async function textBatch(c: Client, rnd: () => number, tag: string): Promise<void> {
  const n = 5 + Math.floor(rnd() * 30);
  const replies: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    if (rnd() < 0.004) {
      replies.push(
        c.request(enc.encode(`flush_all ${1 + Math.floor(rnd() * 2)}\r\n`), Op.FLUSH_ALL),
      );
      continue;
    }
    const r = chaosRequest(rnd, KEYS, `${tag}${i}`);
    replies.push(c.request(r.bytes, r.op));
  }
  await Promise.all(replies);
}

async function binaryBatch(t: TestConn, rnd: () => number, tag: string, opaque: number) {
  const n = 3 + Math.floor(rnd() * 15);
  const packets = Array.from(
    { length: n },
    (_, i) => chaosPacket(rnd, KEYS, `${tag}${i}`, opaque + i),
  );
  await sendPackets(t, packets);
}

/** A writer on member `m` until `stop`; it reconnects to whoever is member `m` now. */
async function writer(
  g: Group,
  m: number,
  binary: boolean,
  rnd: () => number,
  stop: () => boolean,
) {
  for (let round = 0; !stop(); round++) {
    const tag = `${m}${binary ? "b" : "t"}${round}.`;
    try {
      if (binary) {
        const t = await connect(g.nodes[m].port);
        try {
          for (let op = 1; !stop(); op += 100) await binaryBatch(t, rnd, tag, op);
        } finally {
          await t.close();
        }
      } else {
        const c = await client(g.nodes[m]);
        try {
          while (!stop()) await textBatch(c, rnd, tag);
        } finally {
          c.close();
        }
      }
    } catch {
      // the member was killed or restarted under us (or the reply timed out while stopped)
      await sleep(100);
    }
  }
}

interface Case {
  n: number;
  sync: string[];
  /** Members with `-t 2`. */
  threaded: number[];
  /** fault_mix's extra shapes too (long stops, fast flaps, restarts while split, kills mid copy). */
  shapes?: boolean;
}

const cases: Case[] = [
  { n: 2, sync: [], threaded: [1] },
  { n: 3, sync: ["--repl-sync=quorum"], threaded: [0] },
  { n: 5, sync: [], threaded: [1, 3] },
  { n: 3, sync: [], threaded: [2], shapes: true },
];
if (Deno.env.get("MEMREP_SEEDS")) {
  cases.push(
    { n: 2, sync: ["--repl-sync"], threaded: [0, 1] },
    { n: 3, sync: [], threaded: [] },
    { n: 5, sync: ["--repl-sync=quorum"], threaded: [0] },
    { n: 5, sync: [], threaded: [0, 4], shapes: true },
    { n: 3, sync: ["--repl-sync"], threaded: [], shapes: true },
  );
}

for (const c of cases) {
  for (const seed of seeds(1)) {
    const label = `${c.n} members${c.sync.length ? ` ${c.sync[0]}` : ""}, -t 2 on ${
      c.threaded.join(",") || "none"
    }${c.shapes ? ", long stops, restarts while split, kills mid copy" : ""}`;
    Deno.test(`${label}: kill -9 + empty restarts, SIGSTOPs, cut/hung/flapping links under every kind of write: all end identical, none crashed (seed ${seed})`, async () => {
      const extra = (i: number) => (c.threaded.includes(i) ? ["-t", "2"] : []);
      const args = ["--repl-timeout", "500", "--repl-backlog", "4m"];
      if (c.sync.length > 0) args.push(...c.sync, "--repl-sync-timeout", "700");
      const g = await startGroup(c.n, args, { relays: true, member: extra });
      const lives = new Lives();
      for (const node of g.nodes) lives.started(node);
      const v = new Violations();
      const log: string[] = [];
      try {
        // Enough items that a full copy to a restarted member takes a while (kill-copy).
        if (c.shapes) await fill(g.nodes[0], "pre", 20_000, 200);
        let stopped = false;
        const stop = () => stopped;
        const work: Promise<void>[] = [];
        for (let m = 0; m < c.n; m++) {
          work.push(writer(g, m, false, mulberry32(seed * 7 + m), stop));
          if (m < 2) work.push(writer(g, m, true, mulberry32(seed * 11 + m), stop));
        }
        const busy = new Set<number>();
        const end = Date.now() + CHAOS_MS;
        const faults = Array.from({ length: 2 }, async (_, f) => {
          const frnd = mulberry32(seed * 13 + f);
          while (Date.now() < end) {
            await sleep(100 + frnd() * 600);
            log.push(
              await fault(
                g,
                frnd,
                {
                  kill: true,
                  stop: true,
                  links: true,
                  shapes: c.shapes ? { timeoutMs: 500, kill: true, killSender: true } : undefined,
                },
                lives,
                busy,
                extra,
              ),
            );
          }
        });
        await Promise.all(faults);
        stopped = true;
        await Promise.all(work);
        healAll(g);
        const members = Array.from({ length: c.n }, (_, i) => i);
        try {
          await settledGroup(g.nodes, members, 60_000);
        } catch (err) {
          v.add("no-settle", String(err));
        }
        // Delayed flush_all of up to 2 s and 2 s TTLs take effect at each member's own second.
        let diff: string[] = [];
        for (let attempt = 0; attempt < 8; attempt++) {
          await sleep(attempt === 0 ? 2500 : 700);
          diff = await differences(g.nodes);
          if (diff.length === 0) break;
        }
        for (const d of diff) v.add("diverged", d);
      } finally {
        healAll(g);
        await g.close();
      }
      await lives.check(v);
      console.log(`seed ${seed} ${label}: faults ${log.join(", ")}; ${v.report()}`);
      equal(v.report(), "0 violations", `seed ${seed}`);
    });
  }
}
