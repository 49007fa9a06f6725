/**
 * kill -9 in the middle of a full copy, the killed node restarted on the
 * same ports at once (empty), while clients write on both nodes all along:
 * the sender killed (the joiner keeps what it got and becomes the source),
 * or the joiner killed twice, each time during the copy it restarted into.
 * Both nodes end identical, and no write acknowledged by a node that was
 * never killed is missing on either.
 */

import { equal, ok } from "../helpers/assert.ts";
import { freePort } from "../helpers/mod.ts";
import {
  client,
  fill,
  missingKeys,
  type Node,
  replStat,
  sameDump,
  settled,
  startNode,
} from "./pair.ts";

const ITEMS = 200_000; // enough that the copy is still going when the test looks (a quiet machine copies fast)
const ARGS = ["--repl-timeout", "800", "-m", "128"];
const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Until `node`'s process logs the start of the full copy it receives. A log
 * line stays once written, where `repl_copy_in_progress` is 1 only while the
 * copy runs: a restarted joiner can take all of it between two polls.
 */
async function copyStarted(node: Node): Promise<boolean> {
  return await node.proc.waitForLog(
    /^replication: marugoto copying \(receiving \d+ items\)/,
    15_000,
  )
    .then(() => true, () => false);
}

/** Full copies `node` has sent to completion (its peer applied them all). */
function copiesSent(node: Node): Promise<number> {
  return replStat(node, "repl_full_copies_sent");
}

/** Sets on `current()` (whichever process serves the node now) until stopped; acked keys kept. */
function writers(current: () => Node, prefix: string, acked: Map<string, string>) {
  let stopped = false;
  const run = async (w: number) => {
    for (let i = 0; !stopped;) {
      const c = await client(current()).catch(() => undefined);
      if (c === undefined) {
        await sleep(100);
        continue;
      }
      try {
        for (; !stopped; i++) {
          const k = `${prefix}${w}-${i % 300}`, v = `${prefix}-${i}`;
          if (await c.set(k, enc.encode(v))) acked.set(k, v);
          if (i % 50 === 0) await sleep(5);
        }
      } catch {
        await sleep(100); // the node died: reconnect to its successor
      } finally {
        c.close();
      }
    }
  };
  const tasks = [run(0), run(1)];
  return {
    async stop() {
      stopped = true;
      await Promise.all(tasks);
    },
  };
}

async function scenario(killSender: boolean) {
  const replPort = freePort();
  let a = await startNode(replPort, ARGS);
  const started = [a];
  let b: Node | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen/, 10_000);
    await fill(a, "seed", ITEMS, 200);
    b = await startNode(replPort, ARGS);
    started.push(b);
    const ackedA = new Map<string, string>(), ackedB = new Map<string, string>();
    const wa = writers(() => a, "a", ackedA), wb = writers(() => b as Node, "b", ackedB);
    ok(await copyStarted(b), "B receives a full copy");
    const restart = async (n: Node, whenDead?: () => Promise<void>) => {
      n.proc.kill("SIGKILL");
      await n.proc.status;
      await whenDead?.();
      const next = await startNode(replPort, ARGS, n.port);
      started.push(next);
      return next;
    };
    if (killSender) a = await restart(a);
    else {
      // A counts a copy sent only once B confirmed it whole: still 0 with B dead (and not yet
      // restarted), B died mid copy.
      const midCopy = (nth: string) => async () =>
        equal(await copiesSent(a), 0, `B was killed before its ${nth} copy completed`);
      b = await restart(b, midCopy("first"));
      ok(await copyStarted(b), "B receives a full copy again");
      b = await restart(b, midCopy("second"));
    }
    await sleep(1500);
    await Promise.all([wa.stop(), wb.stop()]);
    await settled(a, b, 60_000);
    if (!killSender) {
      // At least: a backlog overrun by the writers may take another one.
      ok(await copiesSent(a) >= 1, "A completed a full copy: to the last B");
      ok(await replStat(b, "repl_full_copies_received") >= 1, "the last B received it whole");
    }
    const both = await sameDump(a, b);
    const [survivor, acked] = killSender ? [b, ackedB] : [a, ackedA];
    ok(acked.size > 0, "the surviving node acknowledged writes");
    for (const n of [a, b]) {
      equal((await missingKeys(n, [...acked.keys()])).length, 0, `${n.port} has every write`);
    }
    const c = await client(killSender ? a : b);
    try {
      const keys = [...acked.keys()];
      const got = await c.get(keys);
      const wrong = keys.filter((k) =>
        new TextDecoder().decode(got.get(k)?.value) !== acked.get(k)
      );
      equal(wrong.length, 0, `the peer holds the survivor's last values (${wrong.slice(0, 3)})`);
    } finally {
      c.close();
    }
    if (!killSender) {
      const seeds = [...both.keys()].filter((k) => k.startsWith("seed")).length;
      equal(seeds, ITEMS, "the copied items are all there");
    }
    ok(!survivor.proc.exited(), "the survivor runs");
  } finally {
    await Promise.all(started.map((n) => n.proc.stop()));
  }
}

Deno.test("kill -9 of the sender mid full copy, restarted empty at once: the pair converges, the joiner's acknowledged writes survive", async () => {
  await scenario(true);
});

Deno.test("kill -9 of the joiner mid full copy, twice, restarted at once: the pair converges with every item and write of the sender", async () => {
  await scenario(false);
});
