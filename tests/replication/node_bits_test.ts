/**
 * The two nodes of a pair issue versions that differ in their node bits, so
 * a version (the CAS clients see) names one write: with equal bits, writes
 * made on both nodes in the same millisecond got the same version, the
 * merge kept one of them on both nodes under that version, and a client
 * holding the other's CAS could overwrite a value it never read. A pair
 * drew its bits at random (1 in 16 pairings alike); this restarts one node
 * until that chance has come up many times over.
 */

import { equal, ok } from "../helpers/assert.ts";
import { Op } from "../../lib/protocol/mod.ts";
import { client, type Node, startNode } from "./pair.ts";
import { freePort } from "../helpers/mod.ts";

const enc = new TextEncoder();
const ROUNDS = 48; // (15/16)^48: below 5% that random bits never collide

async function nodeBits(node: Node, key: string): Promise<number> {
  const c = await client(node);
  try {
    const r = await c.request(enc.encode(`ms ${key} 1 c\r\nx\r\n`), Op.MS);
    return Number((r.cas ?? -1n) & 15n);
  } finally {
    c.close();
  }
}

Deno.test(`a pair's two nodes issue versions with different node bits (${ROUNDS} pairings)`, async () => {
  const replPort = freePort();
  const a = await startNode(replPort);
  let b: Node | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    const same: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      b = await startNode(replPort, [], b?.port);
      await b.proc.waitForLog(/^replication: start/, 10_000);
      const [x, y] = [await nodeBits(a, `a${round}`), await nodeBits(b, `b${round}`)];
      ok(x >= 0 && y >= 0, "writes answered with their CAS");
      if (x === y) same.push(round);
      b.proc.kill("SIGKILL");
      await b.proc.status;
    }
    equal(same.join(","), "", "pairings whose nodes shared node bits");
  } finally {
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});
