/**
 * A peer that sends versions out of range (2**53 and beyond, or far ahead
 * of the wall clock) in its STATE line, full-copy epoch, frames and
 * heartbeats: the node keeps the link, refuses those changes, keeps its
 * clock on wall time, and survives garbage after them; a real peer then
 * pairs as usual (issue 9).
 */

import { equal, ok } from "../helpers/assert.ts";
import { connect, freePort, waitUntil } from "../helpers/mod.ts";
import { versionAt } from "../../lib/replication/mod.ts";
import {
  client,
  type Node,
  replStat,
  replStats,
  sameContents,
  settled,
  startNode,
} from "./pair.ts";

const enc = new TextEncoder();
const HUGE = "99999999999999999999";

Deno.test("a peer sending out-of-range versions is refused change by change; the link stays, the clock keeps time", async () => {
  const replPort = freePort();
  const a = await startNode(replPort);
  let b: Node | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    const ca = await client(a);
    ok(await ca.set("pre", enc.encode("kept")));
    const peer = await connect(replPort);
    ok(/^MEMREP-REPL 4 \S+ \S+$/.test(await peer.readLine(5000)), "greeting");
    // Our clock is "beyond 2**53": once refused the pairing, keeping the pair split for good.
    await peer.send(
      `MEMREP-REPL 4 fakepeer00000000 ${
        "ab".repeat(16)
      }\r\nSTATE fs1 0 - 0 0 ${HUGE}\r\nAUTH -\r\n`,
    );
    ok((await peer.readLine(5000)).startsWith("STATE "), "the node pairs");
    equal(await peer.readLine(5000), "AUTH -", "no secret, no proof");
    const now = versionAt(Date.now());
    const ahead = versionAt(Date.now() + 10 * 86_400_000); // ten days ahead
    await peer.send(
      `COPY fs1 0 0 ${HUGE} 0 1\r\nCOPIED 0\r\n` +
        `S bad1 0 0 9007199254740993 0 0 1\r\nx\r\n` +
        `S bad2 0 0 ${ahead} 0 0 1\r\nx\r\n` +
        `S bad3 0 0 ${now} 0 ${HUGE} 1\r\nx\r\n` +
        `D pre ${ahead} 0\r\n` +
        `F ${ahead} 0\r\n` +
        `F ${now} 99999999999\r\n` + // a flush time no flush_all can name
        `PING ${HUGE}\r\n` +
        `S good 0 0 ${now} 0 0 2\r\nok\r\n`,
    );
    await waitUntil(async () => (await ca.getOne("good")) !== undefined, "the sane change");
    ok(!a.proc.exited(), "the node runs");
    const stats = await replStats(a);
    // Up, or still "copying": this fake peer never confirms the copy it was sent (CDONE).
    ok(["up", "copying"].includes(stats.get("repl_link") ?? ""), "the link stays");
    equal(Number(stats.get("repl_versions_rejected")), 9, "STATE, COPY, 3 items, D, 2 F, PING");
    const got = await ca.get(["bad1", "bad2", "bad3", "pre"]);
    equal([...got.keys()].join(), "pre", "refused changes did not land, the far delete neither");
    ok(await ca.set("after", enc.encode("y")));
    const raw = await connect(a.port);
    const cas = Number(/^HD c(\d+)/.exec(await raw.request("mg after c"))?.[1]);
    const limit = versionAt(Date.now() + 60_000);
    ok(cas > now && cas < limit, `the clock did not follow (${cas} < ${limit})`);
    await raw.close();
    ok(a.proc.outputLines().some((l) => l.startsWith("replication: refused a version")));

    // Garbage closes the link, never the process.
    const mark = a.proc.outputLines().length;
    await peer.send(new Uint8Array([0, 255, 32, 83, 32, 10, 13, 10]));
    ok(await peer.waitClosed(5000), "the link closes");
    await a.proc.waitForLog(/^replication: close \(protocol error/, 5000, mark);
    await peer.close();
    ok(!a.proc.exited(), "the node runs");

    // A real peer pairs and gets everything.
    b = await startNode(replPort);
    await b.proc.waitForLog(/^replication: start/, 10_000);
    await settled(a, b);
    const all = await sameContents(a, b);
    ok(all.has("good") && all.has("pre") && all.has("after"), [...all.keys()].join());
    equal(await replStat(b, "repl_versions_rejected"), 0);
    ca.close();
  } finally {
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});
