/**
 * A meta get that misses echoes its O and k flags (`EN Oabc kfoo`): through
 * the proxy the client gets memcached's reply, and the backends stay up
 * (the reply parser took such a line for a broken backend, answered
 * `SERVER_ERROR no backend available` and marked the primary and the
 * backup down, so any client could eject every server).
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { startCluster } from "./cluster.ts";

const NAME = "proxy relays meta misses with O and k flags, and the backends stay up";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    const c = await connect(cluster.proxy.port);
    try {
      const script = [
        ["mg nokey1 Oabc k v\r\n", "EN Oabc knokey1\r\n"],
        ["mg nokey2 O\r\n", "EN O\r\n"],
        ["mg nokey3 k\r\n", "EN knokey3\r\n"],
        ["mg nokey4 k O77 s t f\r\n", "EN knokey4 O77\r\n"],
        ["mg nokey5 q O1\r\nmn\r\n", "MN\r\n"],
      ];
      for (let round = 0; round < 3; round++) {
        for (const [send, reply] of script) equal(await c.request(send, reply), reply);
      }
      // Still served by their primaries: a write and a hit, and nothing counted as failed.
      equal(await c.request("set mm 0 0 2\r\nok\r\n"), "STORED\r\n");
      equal(await c.request("mg mm k O9 v\r\n", "ok\r\n"), "VA 2 kmm O9\r\nok\r\n");
      const stats = await c.request("stats proxy\r\n", "END\r\n");
      for (const line of stats.split("\r\n")) {
        if (line.endsWith(":state down")) throw new Error(`a backend was marked down: ${line}`);
        if (/^STAT (backend_errors|no_backend) /.test(line)) equal(line.split(" ")[2], "0", line);
      }
    } finally {
      await c.close();
      await cluster.stop();
    }
  },
});
