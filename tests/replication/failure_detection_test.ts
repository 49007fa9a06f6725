/**
 * A peer that hangs (SIGSTOP) or is cut off (packets dropped by a relay)
 * is declared dead within --repl-timeout by heartbeats; the survivor keeps
 * serving and takes the port; once the peer is back the pair resumes from
 * the backlog and ends with the same data.
 */

import { equal, ok } from "../helpers/assert.ts";
import { freePort, startRelay, waitUntil } from "../helpers/mod.ts";
import {
  client,
  replStat,
  replStats,
  sameContents,
  settled,
  startNode,
  startPair,
} from "./pair.ts";

const enc = new TextEncoder();
const TIMEOUT = 800;

Deno.test("a hung peer (SIGSTOP) is dropped within the timeout, then resyncs partially", async () => {
  const { a, b } = await startPair(["--repl-timeout", String(TIMEOUT)]);
  try {
    const ca = await client(a);
    await ca.set("before", enc.encode("x"));
    await settled(a, b);
    const mark = a.proc.outputLines().length;
    const copies = await replStat(a, "repl_full_copies_sent");
    b.proc.kill("SIGSTOP");
    const stoppedAt = Date.now();
    await a.proc.waitForLog(/^replication: close \(timeout/, TIMEOUT + 10_000, mark);
    const detected = Date.now() - stoppedAt;
    await a.proc.waitForLog(/^replication: listen$/, 10_000, mark);
    // The last heartbeat may have arrived up to a quarter timeout before the stop.
    ok(detected >= TIMEOUT / 2, `a live link is not dropped early (${detected} ms)`);
    // Survivor serves reads and writes meanwhile.
    await ca.set("during-hang", enc.encode("y"));
    equal((await ca.getOne("before"))?.value[0], 120);
    b.proc.kill("SIGCONT");
    await b.proc.waitForLog(/^replication: start/, 10_000, b.proc.outputLines().length - 1);
    await a.proc.waitForLog(/^replication: start/, 10_000, mark);
    await settled(a, b);
    const all = await sameContents(a, b);
    ok(all.has("during-hang"));
    equal(await replStat(a, "repl_full_copies_sent"), copies, "no full copy after a hang");
    ok(await replStat(a, "repl_partial_resyncs") >= 1);
    ca.close();
  } finally {
    b.proc.kill("SIGCONT");
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("a partition (relay drops packets) is detected by heartbeats; both sides converge after", async () => {
  const replA = freePort();
  const args = ["--repl-timeout", String(TIMEOUT)];
  const a = await startNode(replA, args);
  const relay = startRelay(replA);
  let b: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    b = await startNode(relay.port, args);
    await Promise.all([
      a.proc.waitForLog(/^replication: start/),
      b.proc.waitForLog(/^replication: start/),
    ]);
    const ca = await client(a), cb = await client(b);
    await ca.set("conflict", enc.encode("before"));
    await settled(a, b);
    const markA = a.proc.outputLines().length, markB = b.proc.outputLines().length;
    relay.blackhole(true);
    // The first side to time out closes its socket; the relay passes that close on to the other.
    const closed = await Promise.all([
      a.proc.waitForLog(/^replication: close/, TIMEOUT + 10_000, markA),
      b.proc.waitForLog(/^replication: close/, TIMEOUT + 10_000, markB),
    ]);
    ok(closed.some((l) => l.startsWith("replication: close (timeout")), closed.join("\n"));
    // Both keep taking writes; the later write of the same key wins on both.
    await ca.set("only-a", enc.encode("a"));
    await cb.set("only-b", enc.encode("b"));
    await ca.set("conflict", enc.encode("from A"));
    await new Promise((r) => setTimeout(r, 5));
    await cb.set("conflict", enc.encode("from B, later"));
    await cb.delete("before-missing");
    relay.blackhole(false);
    await b.proc.waitForLog(/^replication: start/, 15_000, markB);
    await settled(a, b);
    const all = await sameContents(a, b);
    ok(all.has("only-a") && all.has("only-b"));
    ok(all.get("conflict")!.endsWith("from B, later"), all.get("conflict"));
    equal(await replStat(a, "repl_full_copies_sent"), 1, "partial resync, no second copy");
    equal(await replStat(b, "repl_full_copies_sent"), 1);
    ca.close();
    cb.close();
  } finally {
    await relay.close();
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});

Deno.test("a short link drop resumes from the backlog; an overflowed backlog brings a full copy", async () => {
  const replA = freePort();
  const a = await startNode(replA, ["--repl-backlog", "64k"]);
  const relay = startRelay(replA);
  const b = await startNode(relay.port, ["--repl-backlog", "64k"]);
  try {
    await Promise.all([
      a.proc.waitForLog(/^replication: start/),
      b.proc.waitForLog(/^replication: start/),
    ]);
    const ca = await client(a), cb = await client(b);
    const copiesA = await replStat(a, "repl_full_copies_sent");
    const copiesB = await replStat(b, "repl_full_copies_sent");
    // Short drop: a few writes each side, then the link comes back.
    relay.refuse(true);
    relay.drop();
    await waitUntil(async () => (await replStats(a)).get("repl_link") !== "up", "A to notice");
    for (let i = 0; i < 20; i++) {
      await ca.set(`gap-a${i}`, enc.encode(`a${i}`));
      await cb.set(`gap-b${i}`, enc.encode(`b${i}`));
    }
    relay.refuse(false);
    await settled(a, b);
    await sameContents(a, b);
    equal(await replStat(a, "repl_full_copies_sent"), copiesA, "A resumed, no copy");
    equal(await replStat(b, "repl_full_copies_sent"), copiesB, "B resumed, no copy");
    ok(await replStat(a, "repl_partial_resyncs") >= 1);
    ok(await replStat(b, "repl_partial_resyncs") >= 1);

    // Long drop: more changes than the backlog holds → a full copy, and still no loss.
    relay.refuse(true);
    relay.drop();
    await waitUntil(async () => (await replStats(a)).get("repl_link") !== "up", "A to notice");
    const big = new Uint8Array(4096).fill(65);
    const sets: Promise<boolean>[] = [];
    for (let i = 0; i < 1500; i++) sets.push(ca.set(`flood${i}`, big));
    await Promise.all(sets);
    relay.refuse(false);
    await settled(a, b, 30_000);
    const all = await sameContents(a, b);
    ok(all.has("flood0") && all.has("flood1499") && all.has("gap-b19"));
    equal(await replStat(a, "repl_full_copies_sent"), copiesA + 1, "backlog overflowed: full copy");
    ca.close();
    cb.close();
  } finally {
    await relay.close();
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});
