/**
 * pylibmc's own test suite (tests/*.py and tests/doctests.txt of pylibmc
 * 1.6.3, the installed python3-pylibmc) against `memrep serve`: every case
 * must pass, as all do on memcached 1.6.18. Its autoconf cases connect to
 * 127.0.0.1:11211 whatever the configured port: they run on a server there,
 * only when that port is free.
 */

import {
  ignoreUnlessPylibmcSuite,
  requireSuitePassed,
  runPylibmcSuite,
} from "../helpers/client_suites.ts";
import { startMemrep } from "../helpers/process.ts";
import { connect } from "../helpers/conn.ts";

const NAME = "serve passes pylibmc's own test suite";

Deno.test({
  name: NAME,
  ignore: ignoreUnlessPylibmcSuite(NAME),
  async fn() {
    const server = await startMemrep(["serve", "-m", "64"]);
    try {
      requireSuitePassed("pylibmc", await runPylibmcSuite(server.port));
    } finally {
      await server.stop();
    }
  },
});

const AUTOCONF = "serve on 127.0.0.1:11211 passes pylibmc's autoconf tests";

/** True (with a SKIP line) when something listens on 127.0.0.1:11211, the suite's fixed address. */
function defaultPortBusy(testName: string): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port: 11211 }).close();
    return false;
  } catch {
    console.log(`SKIP (127.0.0.1:11211 busy): ${testName}`);
    return true;
  }
}

/** True when the server on 127.0.0.1:11211 is process `pid` (`STAT pid`), not a stranger. */
async function answersAs(pid: number): Promise<boolean> {
  const c = await connect(11211);
  try {
    await c.send("stats\r\n");
    return (await c.readUntilText("END\r\n", 5000)).includes(`STAT pid ${pid}\r\n`);
  } finally {
    await c.close();
  }
}

Deno.test({
  name: AUTOCONF,
  ignore: ignoreUnlessPylibmcSuite(AUTOCONF) || defaultPortBusy(AUTOCONF),
  async fn() {
    const server = await startMemrep(["serve", "-m", "64", "-p", "11211"]).catch((err) => {
      // Taken since the check above by another program on this machine: not ours to test.
      if (/Address already in use/.test(String(err))) return undefined;
      throw err;
    });
    if (server === undefined || !(await answersAs(server.pid))) {
      console.log(`SKIP (127.0.0.1:11211 taken meanwhile): ${AUTOCONF}`);
      await server?.stop();
      return;
    }
    try {
      requireSuitePassed("pylibmc autoconf", await runPylibmcSuite(server.port, true));
    } finally {
      await server.stop();
    }
  },
});
