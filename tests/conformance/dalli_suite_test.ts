/**
 * Dalli 3.0.6's own test suite (250 tests: binary protocol, multi-get,
 * CAS, failover, rack sessions, unix socket, TLS...) spawning `memrep serve`
 * where it spawns memcached. memcached 1.6.18 passes every test of it
 * (`MEMREP_TARGET=memcached` runs it on the reference), so memrep must too.
 * Its live-server files also run through `memrep proxy` in front of memcached.
 */

import { fail, ok } from "../helpers/assert.ts";
import { DALLI_PORT, dalliAvailable, type MinitestRun, runDalli } from "../helpers/dalli.ts";

/**
 * The suite's harness gives a started server 0.1 s before it talks to it; when
 * the first try fails it starts another on the same port (which then cannot
 * listen: the first one answers by then) and forgets the first, so a later
 * kill of that port kills nothing (failover tests then fail). A test that
 * failed in a run where such a retried start happened is run again (up to
 * three times). memrep serve's port answers ~60 ms after spawn on a quiet
 * machine (`deno task bench startup`), later under the full suite's load.
 */
const RETRIED_START =
  /cannot listen on .*already answers|cannot listen on .*in use|failed to listen/;

function report(r: MinitestRun): string {
  // Reword minitest's closing line so a log reader does not take it for the run's total.
  return r.text.replace(/^(\d+) runs, /gm, "minitest: $1 runs, ");
}

const NAME = "serve passes Dalli 3.0.6's own test suite";
Deno.test({
  name: NAME,
  ignore: !dalliAvailable(NAME),
  async fn() {
    const first = await runDalli();
    const c = first.counts;
    if (!c) fail(`Dalli's suite printed no result (exit ${first.code}):\n${report(first)}`);
    ok(c.runs >= 240, `Dalli's suite ran only ${c.runs} tests:\n${report(first)}`);
    if (c.failures + c.errors === 0 && first.code === 0) return;
    // Up to three times: on a loaded machine (the full suite in parallel) a start can miss the
    // 0.1 s again. Only tests of runs with a retried start go again, and each must pass.
    let failed = first.failed, last = first;
    for (let round = 0; round < 3 && failed.length > 0 && RETRIED_START.test(last.text); round++) {
      const again = last = await runDalli({ only: failed });
      const a = again.counts;
      if (a && a.runs === failed.length && a.failures + a.errors === 0) {
        console.log(`dalli: ${first.failed.join(", ")} passed when run again (a retried start)`);
        return;
      }
      first.text += "\n-- run again --\n" + again.text;
      if (!a || a.runs !== failed.length) break;
      failed = again.failed;
    }
    fail(`Dalli's suite failed: ${c.failures} failures, ${c.errors} errors\n${report(first)}`);
  },
});

/** The suite's files whose tests talk to its default server only (none stops one). */
const LIVE_FILES = [
  "test/test_dalli.rb",
  "test/test_cas_client.rb",
  "test/test_encoding.rb",
  "test/test_binary_protocol.rb",
];

/**
 * Left out through the proxy, which speaks text and meta to its backends:
 * Dalli hashes a namespaced key over 250 bytes down to 250 bytes, spaces
 * kept; text cannot carry a space and meta's base64 of 250 bytes is over
 * memcached's 250-byte token limit, so the proxy answers EINVAL (README:
 * proxy, binary protocol). memcached and memrep serve store it.
 */
const PROXY_EXCLUDED = [
  "Dalli::using a live server#test_0026_truncate cache keys that are too long",
];

const PROXY = "proxy passes Dalli 3.0.6's live-server tests in front of memcached";
Deno.test({
  name: PROXY,
  ignore: !dalliAvailable(PROXY),
  async fn() {
    const r = await runDalli({ files: LIVE_FILES, exclude: PROXY_EXCLUDED, proxy: true });
    const c = r.counts;
    if (!c) fail(`Dalli's suite printed no result (exit ${r.code}):\n${report(r)}`);
    ok(c.runs >= 60, `only ${c.runs} tests ran through the proxy on port ${DALLI_PORT}`);
    if (c.failures + c.errors > 0 || r.code !== 0) {
      fail(`through memrep proxy: ${c.failures} failures, ${c.errors} errors\n${report(r)}`);
    }
  },
});
