/**
 * --repl-sync in a replica group: `all` acknowledges a write once every
 * linked member applied it, `quorum` once a majority of the group (the
 * writer counted) did. Either way kill -9 of the writer loses no
 * acknowledged write: the members that confirmed it pass it on to the
 * others (a group forwards what it learns). Without the needed members,
 * the write stays stored and its reply is SERVER_ERROR, as for the pair.
 */

import { equal, ok } from "../helpers/assert.ts";
import { connect, waitUntil } from "../helpers/mod.ts";
import { missingKeys, type Node, replStats, startWriters } from "./pair.ts";
import { startGroup } from "./group.ts";

const PEER_UNAVAILABLE = "SERVER_ERROR replication peer unavailable";

/** `n` pipelined sets on one connection; the reply lines. */
async function pipelinedSets(node: Node, prefix: string, n: number): Promise<string[]> {
  const c = await connect(node.port);
  try {
    let cmds = "";
    for (let i = 0; i < n; i++) cmds += `set ${prefix}${i} ${i} 0 ${`v${i}`.length}\r\nv${i}\r\n`;
    cmds += `get ${prefix}0\r\n`;
    await c.send(cmds);
    const text = await c.readUntilText(/END\r\n$/, 20_000);
    return text.split("\r\n").filter((l) => l !== "" && !l.startsWith("VALUE") && l !== "v0");
  } finally {
    await c.close();
  }
}

Deno.test("3 members, --repl-sync: kill -9 of the writer loses no acknowledged write on either other member", async () => {
  const g = await startGroup(3, ["--repl-sync"]);
  try {
    const [a, b, c] = g.nodes;
    equal((await replStats(a)).get("repl_sync_mode"), "all");
    const writers = startWriters(a, 4, "w");
    while (writers.acked.length < 1500) await new Promise((r) => setTimeout(r, 10));
    a.proc.kill("SIGKILL");
    await writers.stop();
    const acked = writers.acked;
    // "all": both had applied every acknowledged write before its STORED.
    equal((await missingKeys(b, acked)).length, 0, "acknowledged writes missing on B");
    equal((await missingKeys(c, acked)).length, 0, "acknowledged writes missing on C");
  } finally {
    await g.close();
  }
});

Deno.test("3 members, --repl-sync=quorum: one member hung, writes are acknowledged by the other; kill -9 of the writer, the hung one resumes and gets them all", async () => {
  const g = await startGroup(3, ["--repl-sync=quorum", "--repl-timeout", "20000"]);
  try {
    const [a, b, c] = g.nodes;
    equal((await replStats(a)).get("repl_sync_mode"), "quorum");
    c.proc.kill("SIGSTOP");
    const lines = await pipelinedSets(a, "q", 300);
    equal(lines.filter((l) => l === "STORED").length, 300, lines.slice(0, 3).join("|"));
    const writers = startWriters(a, 4, "w");
    while (writers.acked.length < 1000) await new Promise((r) => setTimeout(r, 10));
    a.proc.kill("SIGKILL");
    await writers.stop();
    const acked = [...writers.acked, ...Array.from({ length: 300 }, (_, i) => `q${i}`)];
    equal((await missingKeys(b, acked)).length, 0, "acknowledged writes missing on B");
    c.proc.kill("SIGCONT");
    // C never heard them from A: B, which confirmed them, passes them on.
    await waitUntil(
      async () => (await missingKeys(c, acked)).length === 0,
      "C to get every acknowledged write through B",
      20_000,
    );
  } finally {
    g.nodes[2].proc.kill("SIGCONT");
    await g.close();
  }
});

Deno.test("3 members, --repl-sync=quorum with both others hung: SERVER_ERROR after the timeout, never a local-only STORED; one back: STORED", async () => {
  const g = await startGroup(3, [
    "--repl-sync=quorum",
    "--repl-sync-timeout",
    "1000",
    "--repl-timeout",
    "20000",
  ]);
  try {
    const [a, b, c] = g.nodes;
    b.proc.kill("SIGSTOP");
    c.proc.kill("SIGSTOP");
    const t0 = performance.now();
    const lines = await pipelinedSets(a, "h", 50);
    ok(performance.now() - t0 >= 900, "waited for the peers first");
    equal(lines.filter((l) => l === PEER_UNAVAILABLE).length, 50, lines.slice(0, 3).join("|"));
    b.proc.kill("SIGCONT");
    // One member back: a majority (A and B) confirms.
    await waitUntil(
      async () => (await pipelinedSets(a, "probe", 1))[0] === "STORED",
      "B to confirm again",
      20_000,
    );
    const back = await pipelinedSets(a, "back", 100);
    equal(back.filter((l) => l === "STORED").length, 100, back.slice(0, 3).join("|"));
    equal((await missingKeys(b, Array.from({ length: 100 }, (_, i) => `back${i}`))).length, 0);
    c.proc.kill("SIGCONT");
    ok(Number((await replStats(a)).get("repl_sync_failed")) >= 50);
  } finally {
    for (const n of g.nodes) n.proc.kill("SIGCONT");
    await g.close();
  }
});

Deno.test("3 members, --repl-sync (all) with one member hung: writes wait until its link times out, then the live member's confirmation acknowledges them", async () => {
  const g = await startGroup(3, [
    "--repl-sync",
    "--repl-sync-timeout",
    "10000",
    "--repl-timeout",
    "1500",
  ]);
  try {
    const [a, b, c] = g.nodes;
    c.proc.kill("SIGSTOP");
    const t0 = performance.now();
    const lines = await pipelinedSets(a, "x", 100);
    ok(performance.now() - t0 >= 1000, "waited for the hung member's link to time out");
    equal(lines.filter((l) => l === "STORED").length, 100, lines.slice(0, 3).join("|"));
    const state = (await replStats(a)).get("repl_peer_2_link") ?? "";
    ok(["down", "connecting"].includes(state), `the hung member's link is gone (${state})`);
    equal((await missingKeys(b, Array.from({ length: 100 }, (_, i) => `x${i}`))).length, 0);
  } finally {
    g.nodes[2].proc.kill("SIGCONT");
    await g.close();
  }
});
