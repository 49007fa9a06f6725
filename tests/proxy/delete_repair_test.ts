/**
 * A read repair must not land on the primary after a delete of the key that
 * is still on its way there. The primary (restarted empty: the item is on
 * the backup only) answers a pipelined `get k` + `delete k` with a miss for
 * the get, and its delete reply is held back (a relay in front of it) while
 * the get falls back to the backup: the backup still has the item (the delete
 * reaches it only once the primary answered) and the repair of the hit went
 * to the primary behind the delete. Once the delete is answered, nothing is
 * left anywhere: a read through the proxy misses, and so do both servers.
 * (The proxy repaired the item after the delete, so the primary kept it and
 * served it: the deleted value read back that chaos runs with primaries
 * killed and restarted empty found.)
 */

import { equal } from "../helpers/assert.ts";
import { connect, fakeServer, ignoreUnless, startMemcached, startMemrep } from "../helpers/mod.ts";
import { writeAll } from "../../lib/transport/mod.ts";

const NAME =
  "a get's repair from the backup does not land on the primary after a pipelined delete still on its way";

/**
 * A relay to `port` that, once `hold` is called, passes the next reply line
 * from the server and keeps every later byte until `release`.
 */
function holdingRelay(port: number) {
  let armed = false;
  let released: (() => void) | undefined;
  let gate = Promise.resolve();
  const server = fakeServer(async (conn) => {
    const up = await Deno.connect({ hostname: "127.0.0.1", port });
    const toServer = conn.readable.pipeTo(up.writable).catch(() => {});
    const buf = new Uint8Array(65536);
    try {
      while (true) {
        const n = await up.read(buf);
        if (n === null) break;
        let chunk = buf.slice(0, n);
        if (armed) {
          const eol = chunk.indexOf(10) + 1;
          if (eol > 0) {
            armed = false;
            await writeAll(conn, chunk.subarray(0, eol));
            chunk = chunk.subarray(eol);
            gate = new Promise((r) => released = r);
          }
        }
        await gate;
        await writeAll(conn, chunk);
      }
    } catch {
      // either side went away
    }
    try {
      up.close();
    } catch { /* closed */ }
    await toServer;
  });
  return {
    port: server.port,
    hold() {
      armed = true;
    },
    release() {
      released?.();
    },
    close: () => server.close(),
  };
}

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const primary = await startMemcached();
    const backup = await startMemcached();
    const relay = holdingRelay(primary.port);
    const proxy = await startMemrep([
      "proxy",
      "--timeout",
      "5000",
      "-s",
      `127.0.0.1:${relay.port}`,
      "-b",
      `127.0.0.1:${backup.port}`,
    ]);
    const c = await connect(proxy.port);
    const onBackup = await connect(backup.port);
    const onPrimary = await connect(primary.port);
    try {
      // The proxy's connection to the primary is open; the item is on the backup only.
      equal(await c.request("get warm\r\n", "END\r\n"), "END\r\n");
      equal(await onBackup.request("set k 0 0 3\r\nold\r\n", "\r\n"), "STORED\r\n");
      relay.hold();
      await c.send("get k\r\ndelete k\r\n");
      // The read was answered before the delete (from the backup, which had the item then).
      equal(await c.readUntilText("END\r\n", 10_000), "VALUE k 0 3\r\nold\r\nEND\r\n");
      relay.release();
      equal(await c.readLine(10_000), "DELETED");
      // On the proxy's connection to the primary, behind anything it sent before.
      equal(await c.request("get k\r\n", "END\r\n"), "END\r\n");
      equal(await onPrimary.request("get k\r\n", "END\r\n"), "END\r\n");
      equal(await onBackup.request("get k\r\n", "END\r\n"), "END\r\n");
    } finally {
      relay.release();
      await c.close();
      await onBackup.close();
      await onPrimary.close();
      await proxy.stop();
      await relay.close();
      await primary.stop();
      await backup.stop();
    }
  },
});
