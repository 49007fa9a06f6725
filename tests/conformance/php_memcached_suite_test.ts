/**
 * php-memcached's own test suite (tests/*.phpt of php-memcached 3.2.0, the
 * installed php-memcached, run by PHP's run-tests.php) against `memrep
 * serve`, sasl_basic.phpt against a second `memrep serve -S`. The cases that
 * pass on memcached 1.6.18 must pass here too; see {@linkcode PHP_MEMCACHED_EXCLUDED}.
 */

import {
  ignoreUnlessPhpMemcachedSuite,
  PHP_MEMCACHED_EXCLUDED,
  requireSuitePassed,
  runPhpMemcachedSuite,
  type SaslTarget,
} from "../helpers/client_suites.ts";
import {
  memrepTarget,
  type ProcessHandle,
  startMemrep,
  writeTempFile,
} from "../helpers/process.ts";

const NAME = "serve passes php-memcached's own test suite";

Deno.test({
  name: NAME,
  ignore: ignoreUnlessPhpMemcachedSuite(NAME),
  async fn() {
    const server = await startMemrep(["serve", "-m", "64"]);
    let saslServer: ProcessHandle | undefined;
    let sasl: SaslTarget | undefined;
    const pwdb = await writeTempFile("other:x\nphp:s3cret\n", "memrep-pwdb-");
    try {
      // memcached -S needs a Cyrus sasldb (tests/conformance/sasl_differential_test.ts):
      // against the reference, sasl_basic.phpt skips itself.
      if (memrepTarget() === "memrep") {
        saslServer = await startMemrep(["serve", "-S"], { env: { MEMCACHED_SASL_PWDB: pwdb } });
        sasl = { port: saslServer.port, user: "php", pass: "s3cret" };
      }
      const run = await runPhpMemcachedSuite(server.port, sasl);
      requireSuitePassed("php-memcached", run, PHP_MEMCACHED_EXCLUDED);
      if (sasl && run.verdicts.get("tests/sasl_basic.phpt") !== "PASS") {
        throw new Error(`sasl_basic.phpt: ${run.verdicts.get("tests/sasl_basic.phpt")}`);
      }
    } finally {
      await saslServer?.stop();
      await server.stop();
      await Deno.remove(pwdb);
    }
  },
});
