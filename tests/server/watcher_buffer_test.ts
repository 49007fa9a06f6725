/**
 * A watcher's queue holds at most -o watcher_logbuf_size bytes (memcached's
 * per-watcher buffer, 256 KB by default): lines past it are dropped and
 * counted, and the next drain starts with `skipped=N`, as memcached's does.
 * (memcached's t/watcher.t checks the same through a server; here the
 * queue itself, so the byte limit is exact.)
 */

import { equal } from "../helpers/assert.ts";
import { Writer } from "../../lib/protocol/mod.ts";
import { Watcher, WatchFlag } from "../../lib/server/watch.ts";

function drained(w: Watcher): string {
  const out = new Writer();
  w.drain(out);
  return new TextDecoder().decode(out.buf.subarray(0, out.length));
}

Deno.test("a watcher keeps watcher_logbuf_size bytes of lines and counts the rest as skipped", () => {
  const line = "x".repeat(99) + "\n"; // 100 bytes
  const small = new Watcher(WatchFlag.FETCHERS, 8 * 1024);
  for (let i = 0; i < 100; i++) small.push(line);
  equal(drained(small), "skipped=19\n" + line.repeat(81));
  // The default holds all of them.
  const dflt = new Watcher(WatchFlag.FETCHERS);
  for (let i = 0; i < 100; i++) dflt.push(line);
  equal(drained(dflt), line.repeat(100));
});
