/**
 * A peer that keeps talking on the replication link (heartbeats, acks) but
 * never reads what the writer sends: the writer's memory stays bounded by
 * its store and backlog, not by what it wrote (600 MB here), it keeps
 * answering its clients, and once the peer reads again both converge.
 */

import { ok } from "../helpers/assert.ts";
import { client, replStats, sameDump, settled, withRelayedPair } from "./pair.ts";

/** Resident memory of a process in MB (Linux). */
async function rssMb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024;
}

const KEYS = 500;
const VALUE = new Uint8Array(100_000).fill(97);

Deno.test({
  name:
    "a peer that never reads: the writer's RSS stays bounded over 600 MB of writes, it keeps serving, then both converge",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await withRelayedPair(["-m", "256", "--repl-backlog", "8m"], async (a, b, relay) => {
      const c = await client(a);
      try {
        const writeRound = async (round: number) => {
          const sets: Promise<boolean>[] = [];
          for (let i = 0; i < 100; i++) sets.push(c.set(`deaf:${(round % 5) * 100 + i}`, VALUE));
          ok((await Promise.all(sets)).every(Boolean), `round ${round} stored`);
        };
        for (let round = 0; round < 5; round++) await writeRound(round); // every key once
        await settled(a, b);
        const before = await rssMb(a.proc.pid);
        relay.stall(false); // B (the dialer) stops reading what A sends; B -> A still flows
        let most = before;
        for (let round = 5; round < 65; round++) {
          await writeRound(round);
          ok((await c.get("deaf:1")).size === 1, "A answers its clients");
          most = Math.max(most, await rssMb(a.proc.pid));
        }
        const link = (await replStats(a)).get("repl_link");
        ok(
          most - before < 300,
          `A's RSS grew ${(most - before).toFixed(0)} MB (from ${before.toFixed(0)} MB) ` +
            `while 600 MB went to a peer that did not read (link ${link})`,
        );
        relay.resume();
        await settled(a, b, 60_000);
        const d = await sameDump(a, b);
        ok(d.size === KEYS, `both hold the ${KEYS} keys (${d.size})`);
      } finally {
        c.close();
      }
    });
  },
});
