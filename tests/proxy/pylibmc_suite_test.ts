/**
 * pylibmc's own test suite (pylibmc 1.6.3) through `memrep proxy` over two
 * memcached primaries, without and with a backup: every case must pass, as
 * all do on memcached 1.6.18 alone. (Its autoconf cases need 127.0.0.1:11211:
 * tests/conformance/pylibmc_suite_test.ts runs them on serve.)
 */

import {
  ignoreUnlessPylibmcSuite,
  requireSuitePassed,
  runPylibmcSuite,
} from "../helpers/client_suites.ts";
import { ignoreUnless } from "../helpers/process.ts";
import { startCluster } from "./cluster.ts";

for (const backups of [0, 1]) {
  const name = `proxy (${backups} backup) passes pylibmc's own test suite`;
  Deno.test({
    name,
    ignore: ignoreUnless(name, ["memcached"]) || ignoreUnlessPylibmcSuite(name),
    async fn() {
      const cluster = await startCluster({ servers: 2, backups });
      try {
        requireSuitePassed("pylibmc", await runPylibmcSuite(cluster.proxy.port));
      } finally {
        await cluster.stop();
      }
    },
  });
}
