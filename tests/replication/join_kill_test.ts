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

/** Until `node` receives a full copy (false after the timeout). */
async function copyInProgress(node: Node): Promise<boolean> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (await replStat(node, "repl_copy_in_progress").catch(() => 0) === 1) return true;
    await sleep(20);
  }
  return false;
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
    ok(await copyInProgress(b), "B receives a full copy");
    const restart = async (n: Node) => {
      n.proc.kill("SIGKILL");
      await n.proc.status;
      const next = await startNode(replPort, ARGS, n.port);
      started.push(next);
      return next;
    };
    if (killSender) a = await restart(a);
    else {
      b = await restart(b);
      ok(await copyInProgress(b), "B receives a full copy again");
      b = await restart(b);
    }
    await sleep(1500);
    await Promise.all([wa.stop(), wb.stop()]);
    await settled(a, b, 60_000);
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
