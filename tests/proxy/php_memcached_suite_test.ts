/**
 * php-memcached's own test suite (php-memcached 3.2.0) through `memrep proxy`
 * over two memcached primaries, without and with a backup: the cases that
 * pass on memcached 1.6.18 alone must pass through the proxy
 * ({@linkcode PHP_MEMCACHED_EXCLUDED}: the ones that do not).
 */

import {
  ignoreUnlessPhpMemcachedSuite,
  PHP_MEMCACHED_EXCLUDED,
  requireSuitePassed,
  runPhpMemcachedSuite,
} from "../helpers/client_suites.ts";
import { ignoreUnless } from "../helpers/process.ts";
import { startCluster } from "./cluster.ts";

for (const backups of [0, 1]) {
  const name = `proxy (${backups} backup) passes php-memcached's own test suite`;
  Deno.test({
    name,
    ignore: ignoreUnless(name, ["memcached"]) || ignoreUnlessPhpMemcachedSuite(name),
    async fn() {
      const cluster = await startCluster({ servers: 2, backups });
      try {
        const run = await runPhpMemcachedSuite(cluster.proxy.port);
        requireSuitePassed("php-memcached", run, PHP_MEMCACHED_EXCLUDED);
      } finally {
        await cluster.stop();
      }
    },
  });
}
