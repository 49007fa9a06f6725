/**
 * The server clock of a cache's threads: one second for all of them, as
 * memcached's threads share current_time. Each thread refreshes the cached
 * second from its own timer; with a second of its own, refreshed at its own
 * timer's phase, one thread found an item flushed or expired that another
 * then still served, for up to a tick after the second began.
 */

import { equal, ok } from "../helpers/assert.ts";
import { ServerClock } from "../../lib/server/mod.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("clocks made from one origin (the serve threads') read the same second at every moment, across second boundaries", async () => {
  const a = new ServerClock();
  await sleep(25); // the second clock's timer ticks half a tick after the first's
  const b = new ServerClock(a.origin);
  const start = a.now();
  let reads = 0;
  // Past two second boundaries: a clock of its own lags or leads the other there for ~25 ms.
  while (a.now() < start + 2) {
    const [x, y] = [a.now(), b.now()];
    equal(y, x, `read ${reads}: the clocks disagree`);
    reads++;
    await sleep(1);
  }
  ok(reads > 0);
  equal(b.uptime(), a.uptime());
  equal(b.processStartUnix, a.processStartUnix);
});
