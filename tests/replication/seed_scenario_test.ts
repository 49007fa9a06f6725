/**
 * The repcached walkthrough, end to end: start A, fill it, start B (full
 * copy), write on both, kill -9 A, B keeps serving and takes the port,
 * restart A, A gets everything back, replication goes on both ways.
 */

import { equal, ok, waitUntil } from "../helpers/assert.ts";
import { freePort } from "../helpers/mod.ts";
import { client, contents, fill, sameContents, settled, startNode } from "./pair.ts";

const enc = new TextEncoder();

Deno.test("seed scenario: copy, two-way writes, kill -9, takeover, rejoin", async () => {
  const replPort = freePort();
  const a = await startNode(replPort);
  let a2: Awaited<ReturnType<typeof startNode>> | undefined;
  let b: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    await fill(a, "seed:", 500);
    b = await startNode(replPort);
    await b.proc.waitForLog(/^replication: start/);
    await a.proc.waitForLog(/^replication: start/);
    // repcached's wording, in repcached's order.
    const aLog = a.proc.stderrLines().filter((l) => l.startsWith("replication:"));
    const bLog = b.proc.stderrLines().filter((l) => l.startsWith("replication:"));
    equal(aLog[0], `replication: connect (peer=127.0.0.1:${replPort})`);
    equal(aLog[1], "replication: listen");
    equal(aLog[2], "replication: accept");
    ok(aLog[3].startsWith("replication: marugoto copying"), aLog.join("\n"));
    ok(aLog[4].startsWith("replication: start"), aLog.join("\n"));
    equal(bLog[0], `replication: connect (peer=127.0.0.1:${replPort})`);
    ok(bLog[1].startsWith("replication: marugoto copying"), bLog.join("\n"));
    ok(bLog[2].startsWith("replication: start"), bLog.join("\n"));

    const ca = await client(a), cb = await client(b);
    equal((await cb.getOne("seed:7"))?.flags, 7, "B got the full copy");
    await ca.set("from-a", enc.encode("1"));
    await cb.set("from-b", enc.encode("2"));
    await cb.set("seed:1", enc.encode("changed on B"));
    await cb.delete("seed:2");
    await settled(a, b);
    await sameContents(a, b);
    ca.close();

    // kill -9 A: B notices at once, keeps serving reads and writes, and takes the port.
    const bMark = b.proc.outputLines().length;
    a.proc.kill("SIGKILL");
    await a.proc.status;
    await b.proc.waitForLog(/^replication: close/, 5000, bMark);
    await b.proc.waitForLog(/^replication: listen$/, 5000, bMark);
    await cb.set("while-a-down", enc.encode("3"));
    equal((await cb.getOne("from-a"))?.value.length, 1);

    // A comes back on the same ports and receives everything it missed.
    a2 = await startNode(replPort, [], a.port);
    await a2.proc.waitForLog(/^replication: start/);
    await b.proc.waitForLog(/^replication: start/, 5000, bMark);
    await waitUntil(
      async () => (await contents(a2!)).size === (await contents(b!)).size,
      "A to catch up",
    );
    const all = await sameContents(a2, b);
    ok(all.has("while-a-down") && all.has("from-a") && all.has("from-b") && !all.has("seed:2"));
    equal(all.size, 500 + 2 + 1 - 1);

    // Replication continues both ways.
    const ca2 = await client(a2);
    await ca2.set("after-rejoin-a", enc.encode("4"));
    await cb.set("after-rejoin-b", enc.encode("5"));
    await settled(a2, b);
    await sameContents(a2, b);
    ca2.close();
    cb.close();
  } finally {
    await Promise.all([a.proc.stop(), a2?.proc.stop(), b?.proc.stop()]);
  }
});
