/**
 * The full copy is chunked and interleaved with normal work: clients of
 * the sending node are served while it runs, writes on either node during
 * the copy are not lost, and large values (1 MB) travel both in the copy
 * and in the stream.
 */

import { equal, ok } from "../helpers/assert.ts";
import { freePort, startRelay } from "../helpers/mod.ts";
import {
  client,
  fill,
  replStat,
  replStats,
  sameContents,
  settled,
  startNode,
  startPair,
} from "./pair.ts";

const enc = new TextEncoder();

Deno.test("writes on both nodes during a full copy are not lost; the sender keeps serving", async () => {
  const replPort = freePort();
  const a = await startNode(replPort);
  // A slow link (latency per chunk) keeps the copy running long enough to write during it.
  const relay = startRelay(replPort);
  relay.setLatency(10);
  let b: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    const N = 60_000;
    await fill(a, "item:", N);
    b = await startNode(relay.port);
    const ca = await client(a), cb = await client(b);
    await b.proc.waitForLog(/^replication: marugoto copying/);
    // While the copy runs: overwrite, delete and add on both sides, timing A's answers.
    let slowest = 0, during = 0;
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await ca.set(`item:${i * 7}`, enc.encode(`new-a-${i}`));
      await ca.delete(`item:${i * 7 + 1}`);
      await cb.set(`item:${i * 7 + 2}`, enc.encode(`new-b-${i}`));
      await cb.set(`fresh-b:${i}`, enc.encode("b"));
      await ca.set(`fresh-a:${i}`, enc.encode("a"));
      slowest = Math.max(slowest, performance.now() - t0);
      if ((await replStats(b)).get("repl_copy_in_progress") === "1") during++;
    }
    ok(during > 0, "some writes happened while the copy was in progress");
    await b.proc.waitForLog(/^replication: start/, 30_000);
    await settled(a, b, 30_000);
    const all = await sameContents(a, b);
    equal(all.size, N - 200 + 400);
    ok(all.get("item:0")!.endsWith("new-a-0"));
    ok(all.get("item:2")!.endsWith("new-b-0"));
    ok(!all.has("item:1"));
    equal(await replStat(b, "repl_items_copied_received") >= N - 200, true);
    console.log(`slowest round of client writes during the copy: ${slowest.toFixed(1)} ms`);
    ca.close();
    cb.close();
  } finally {
    await relay.close();
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});

Deno.test("1 MB values replicate in the stream and in a full copy", async () => {
  const { a, b, replPort } = await startPair(["-I", "2m"]);
  let c: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    const big = new Uint8Array(1048576);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 255;
    const ca = await client(a);
    for (let i = 0; i < 6; i++) {
      big[0] = i;
      ok(await ca.set(`big${i}`, big, i));
    }
    await settled(a, b);
    const cb = await client(b);
    const got = await cb.getOne("big5");
    cb.close();
    equal(got?.value.length, 1048576);
    equal(got?.value[1000], (1000 * 31) & 255);
    await sameContents(a, b);
    // A restarted B takes them in a full copy.
    await b.proc.stop();
    c = await startNode(replPort, ["-I", "2m"]);
    await c.proc.waitForLog(/^replication: start/);
    await settled(a, c);
    const all = await sameContents(a, c);
    equal(all.size, 6);
    ca.close();
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop(), c?.proc.stop()]);
  }
});
