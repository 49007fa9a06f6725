/**
 * Two hosts, each naming the other (`--replicate <other>:<port>`), here as
 * 127.0.0.1 and 127.0.0.2: whoever starts first listens, the other
 * connects; started at the same moment they still pair exactly once; the
 * survivor of a kill -9 listens on its own address and the restarted node
 * rejoins by itself.
 */

import { equal } from "../helpers/assert.ts";
import { freePort, startMemrep } from "../helpers/mod.ts";
import { client, type Node, replStat, sameContents, settled } from "./pair.ts";

const enc = new TextEncoder();

async function host(which: 1 | 2, replPort: number, port?: number): Promise<Node> {
  const other = `127.0.0.${3 - which}`;
  // The first -l address is where replication listens; 127.0.0.1 keeps the client port reachable.
  const listen = which === 1 ? "127.0.0.1" : "127.0.0.2,127.0.0.1";
  const proc = await startMemrep(
    ["serve", "-v", "-l", listen, "--replicate", `${other}:${replPort}`, "--repl-timeout", "1000"],
    { port },
  );
  return { proc, port: proc.port };
}

Deno.test("two hosts naming each other pair, fail over and rejoin; a simultaneous start pairs once", async () => {
  const replPort = freePort();
  const nodes: Node[] = [];
  try {
    const [a, b] = await Promise.all([host(1, replPort), host(2, replPort)]);
    nodes.push(a, b);
    await Promise.all([
      a.proc.waitForLog(/^replication: start/, 15_000),
      b.proc.waitForLog(/^replication: start/, 15_000),
    ]);
    const ca = await client(a);
    await ca.set("k1", enc.encode("v1"));
    await settled(a, b);
    await sameContents(a, b);
    await new Promise((r) => setTimeout(r, 1500)); // no duplicate link flapping afterwards
    equal(await replStat(a, "repl_link_drops"), await replStat(a, "repl_links") - 1);
    ca.close();

    // kill -9 A; B listens on its own address; A restarts and dials B.
    const mark = b.proc.outputLines().length;
    a.proc.kill("SIGKILL");
    await a.proc.status;
    await b.proc.waitForLog(/^replication: listen$/, 5000, mark);
    const cb = await client(b);
    await cb.set("k2", enc.encode("v2"));
    const a2 = await host(1, replPort, a.port);
    nodes.push(a2);
    await a2.proc.waitForLog(/^replication: start/, 10_000);
    await settled(a2, b);
    equal((await sameContents(a2, b)).size, 2);
    cb.close();
  } finally {
    await Promise.all(nodes.map((n) => n.proc.stop()));
  }
});
