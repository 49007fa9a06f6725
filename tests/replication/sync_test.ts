/**
 * --repl-sync: a write is acknowledged to the client only once the peer
 * applied it, so kill -9 of the acknowledging node loses no acknowledged
 * write. When the peer cannot confirm (down, hung) within
 * --repl-sync-timeout, the write stays stored locally and the client gets
 * `SERVER_ERROR replication peer unavailable`: never a STORED that is only
 * local, unless --repl-sync-degrade asked for that (then it is counted).
 */

import { equal, ok } from "../helpers/assert.ts";
import { connect, waitUntil } from "../helpers/mod.ts";
import {
  client,
  missingKeys,
  type Node,
  replStat,
  replStats,
  startNode,
  startPair,
  startWriters,
} from "./pair.ts";

const enc = new TextEncoder();
const PEER_UNAVAILABLE = "SERVER_ERROR replication peer unavailable";

Deno.test("--repl-sync: kill -9 of the node that acknowledged loses no acknowledged write", async () => {
  const { a, b } = await startPair(["--repl-sync"]);
  try {
    equal(await replStat(a, "repl_sync"), 1);
    const writers = startWriters(a, 4, "w");
    const acked = writers.acked;
    while (acked.length < 2000) await new Promise((r) => setTimeout(r, 10));
    a.proc.kill("SIGKILL");
    await writers.stop();
    const missing = await missingKeys(b, acked);
    equal(missing.length, 0, `acknowledged writes missing on B: ${missing.slice(0, 5).join(", ")}`);
    ok(acked.length >= 2000);
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

/** Send `n` pipelined sets (plus a get of the first) on one connection; the reply lines. */
async function pipelinedSets(node: Node, prefix: string, n: number): Promise<string[]> {
  const c = await connect(node.port);
  try {
    let cmds = "";
    for (let i = 0; i < n; i++) cmds += `set ${prefix}${i} ${i} 0 ${`v${i}`.length}\r\nv${i}\r\n`;
    cmds += `get ${prefix}0\r\n`;
    await c.send(cmds);
    const text = await c.readUntilText(/END\r\n$/, 20_000);
    return text.split("\r\n").filter((l) => l !== "");
  } finally {
    await c.close();
  }
}

/** Kill B and wait until A noticed. */
async function killPeer(a: Node, b: Node): Promise<void> {
  const mark = a.proc.outputLines().length;
  b.proc.kill("SIGKILL");
  await b.proc.status;
  await a.proc.waitForLog(/^replication: close/, 10_000, mark);
}

Deno.test("--repl-sync with the peer down: SERVER_ERROR after the timeout, never a local-only STORED; peer back: STORED", async () => {
  const args = ["--repl-sync", "--repl-timeout", "800"];
  const { a, b, replPort } = await startPair(args);
  let b2: Node | undefined;
  try {
    await killPeer(a, b);
    const mark = a.proc.outputLines().length;
    // 1,000 writes over four connections and one pipelined batch of 200 with a get.
    const cs = await Promise.all([0, 1, 2, 3].map(() => client(a)));
    const value = enc.encode("x".repeat(100));
    const t0 = performance.now();
    const results = await Promise.all(
      cs.flatMap((c, w) =>
        Array.from({ length: 250 }, (_, i) =>
          c.set(`down${w}-${i}`, value).then(
            (stored) => (stored ? "STORED" : "NOT_STORED"),
            (err: Error) => err.message.replace(/^[^ ]+: /, ""),
          ))
      ),
    );
    ok(performance.now() - t0 >= 700, "the writes waited for the peer first");
    const counts = new Map<string, number>();
    for (const r of results) counts.set(r, (counts.get(r) ?? 0) + 1);
    equal(counts.get(PEER_UNAVAILABLE), 1000, JSON.stringify([...counts]));
    for (const c of cs) c.close();
    const lines = await pipelinedSets(a, "batch", 200);
    equal(lines.filter((l) => l === PEER_UNAVAILABLE).length, 200, lines.slice(0, 3).join("|"));
    equal(lines.filter((l) => l === "STORED").length, 0);
    // The items stay stored here (a cache): the get in the batch sees the first.
    equal(lines.slice(200).join("|"), "VALUE batch0 0 2|v0|END");
    // A write's own error stays memcached's (this one also dropped the old item).
    const raw = await connect(a.port);
    // 2 MB to swallow: a loaded machine may take more than the default 2 s.
    const tooLarge = await raw.request(
      `set batch0 0 0 2000000\r\n${"x".repeat(2000000)}`,
      "\r\n",
      15_000,
    );
    equal(tooLarge, "SERVER_ERROR object too large for cache\r\n");
    equal(await raw.request("get batch0", "END\r\n"), "END\r\n");
    await raw.close();
    const stats = await replStats(a);
    equal(stats.get("repl_sync_failed"), "1200");
    equal(stats.get("repl_sync_degraded"), "0");
    const notes = a.proc.outputLines().slice(mark).filter((l) =>
      l.startsWith("replication: --repl-sync: the peer did not confirm")
    );
    equal(notes.length, 1, "logged once per down period");

    // The peer comes back: sync writes are confirmed and acknowledged again.
    b2 = await startNode(replPort, args);
    await a.proc.waitForLog(/^replication: start/, 10_000, mark);
    await b2.proc.waitForLog(/^replication: start/, 10_000);
    const back = await pipelinedSets(a, "back", 200);
    equal(back.filter((l) => l === "STORED").length, 200, back.slice(0, 3).join("|"));
    const keys = Array.from({ length: 200 }, (_, i) => `back${i}`);
    equal((await missingKeys(b2, keys)).length, 0, "STORED means the peer has it");
    equal(await replStat(a, "repl_sync_failed"), 1200);
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop(), b2?.proc.stop()]);
  }
});

Deno.test("--repl-sync with a hung peer (link still up): SERVER_ERROR after --repl-sync-timeout; resumed: STORED", async () => {
  // 1.5 s: a resumed peer on a loaded machine may take longer than a few hundred ms to ack.
  const args = ["--repl-sync", "--repl-sync-timeout", "1500", "--repl-timeout", "20000"];
  const { a, b } = await startPair(args);
  try {
    b.proc.kill("SIGSTOP");
    const t0 = performance.now();
    const lines = await pipelinedSets(a, "hung", 100);
    ok(performance.now() - t0 >= 1400, "waited for the peer first");
    equal(lines.filter((l) => l === PEER_UNAVAILABLE).length, 100, lines.slice(0, 3).join("|"));
    equal((await replStats(a)).get("repl_link"), "up", "the link itself is not dropped");
    b.proc.kill("SIGCONT");
    // The resumed peer first catches up (scheduling it again takes a while on a loaded machine).
    await waitUntil(
      async () => (await pipelinedSets(a, "probe", 1))[0] === "STORED",
      "the resumed peer to acknowledge a write",
      30_000,
    );
    const back = await pipelinedSets(a, "resumed", 100);
    equal(back.filter((l) => l === "STORED").length, 100, back.slice(0, 3).join("|"));
    const keys = Array.from({ length: 100 }, (_, i) => `resumed${i}`);
    equal((await missingKeys(b, keys)).length, 0);
    // The refused writes stayed stored on A and reached B once it resumed.
    const refused = Array.from({ length: 100 }, (_, i) => `hung${i}`);
    equal((await missingKeys(b, refused)).length, 0);
    equal(await replStat(a, "repl_sync_failed"), 100);
  } finally {
    b.proc.kill("SIGCONT");
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("--repl-sync-degrade: alone, writes are STORED locally and counted; the peer back: confirmed again", async () => {
  const args = ["--repl-sync", "--repl-sync-degrade", "--repl-timeout", "800"];
  const { a, b, replPort } = await startPair(args);
  let b2: Node | undefined;
  try {
    equal(await replStat(a, "repl_sync_degrade"), 1);
    await killPeer(a, b);
    const mark = a.proc.outputLines().length;
    const lines = await pipelinedSets(a, "alone", 300);
    equal(lines.filter((l) => l === "STORED").length, 300, lines.slice(0, 3).join("|"));
    const stats = await replStats(a);
    equal(stats.get("repl_sync_degraded"), "300");
    equal(stats.get("repl_sync_failed"), "0");
    const notes = a.proc.outputLines().slice(mark).filter((l) =>
      l.startsWith("replication: --repl-sync-degrade:")
    );
    equal(notes.length, 1, "logged once per down period");

    b2 = await startNode(replPort, args);
    await a.proc.waitForLog(/^replication: start/, 10_000, mark);
    const back = await pipelinedSets(a, "back", 200);
    equal(back.filter((l) => l === "STORED").length, 200);
    const keys = Array.from({ length: 200 }, (_, i) => `back${i}`);
    equal((await missingKeys(b2, keys)).length, 0, "confirmed writes are on the peer");
    equal(await replStat(a, "repl_sync_degraded"), 300, "confirmed writes are not degraded");
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop(), b2?.proc.stop()]);
  }
});
