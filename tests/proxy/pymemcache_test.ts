/**
 * pymemcache's own integration suite through memrep proxy over two
 * primaries and a backup. Excluded: the TLS tests (the proxy speaks plain
 * TCP only).
 */

import { pymemcacheAvailable, runPymemcacheSuite } from "../helpers/pymemcache.ts";
import { ignoreUnless } from "../helpers/process.ts";
import { startCluster } from "./cluster.ts";

const NAME = "proxy passes pymemcache's integration tests";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]) || !pymemcacheAvailable(NAME),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      await runPymemcacheSuite(cluster.proxy.port);
    } finally {
      await cluster.stop();
    }
  },
});
