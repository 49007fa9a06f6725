/**
 * flush_all replicates as "drop what is older than this version", not as a
 * time: a receiver whose clock's second lags the writer's (clocks tick
 * whole seconds from each process's start) must not take an immediate
 * flush_all for a delayed one and, a second later, drop the newer items it
 * stored meanwhile (which the writer keeps).
 */

import { equal, ok } from "../helpers/assert.ts";
import { connect, waitUntil } from "../helpers/mod.ts";
import { client, missingKeys, type Node, sameContents, settled, startPair } from "./pair.ts";

/** Both nodes' `time` stat, polled together until `x` shows a later second than `y`. */
async function whenAhead(x: Node, y: Node, ms: number): Promise<boolean> {
  const cx = await connect(x.port), cy = await connect(y.port);
  try {
    const time = async (c: typeof cx) => {
      const text = await c.request("stats\r\n", /END\r\n$/);
      return Number(/STAT time (\d+)/.exec(text)?.[1]);
    };
    const deadline = performance.now() + ms;
    while (performance.now() < deadline) {
      const [tx, ty] = await Promise.all([time(cx), time(cy)]);
      if (tx > ty) return true;
    }
    return false;
  } finally {
    await Promise.all([cx.close(), cy.close()]);
  }
}

Deno.test("an immediate flush_all does not drop, a second later, the receiver's newer writes (its clock a second behind)", async () => {
  const { a, b } = await startPair();
  try {
    let rounds = 0;
    for (const [x, y] of [[a, b], [b, a], [a, b], [b, a]]) {
      const cx = await client(x), cy = await client(y);
      try {
        ok(await cx.set("pre", new TextEncoder().encode("old")));
        await settled(a, b);
        // The flush goes out while y's clock still shows the previous second.
        if (!(await whenAhead(x, y, 3000))) continue;
        rounds++;
        await cx.flushAll();
        await waitUntil(async () => !(await cy.getOne("pre")), "the flush to reach y", 5000);
        const key = `post${rounds}`;
        ok(await cy.set(key, new TextEncoder().encode("new")));
        await new Promise((r) => setTimeout(r, 1300)); // y's clock passes the flush's second
        await settled(a, b);
        equal((await missingKeys(y, [key])).length, 0, `${key}, newer than the flush, dropped`);
        await sameContents(a, b);
      } finally {
        cx.close();
        cy.close();
      }
    }
    console.log(`${rounds} rounds with the receiver's clock behind`);
    ok(rounds > 0, "the two clocks' seconds never differed (started in the same ms?)");
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});
