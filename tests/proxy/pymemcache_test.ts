/**
 * pymemcache's own integration suite (Debian's python3-pymemcache, run with
 * python3-pytest) through memrep proxy over two primaries and a backup.
 * Excluded: the TLS tests (`-k "not tls"`): the proxy speaks plain TCP only.
 */

import { fail } from "../helpers/assert.ts";
import { ignoreUnless } from "../helpers/process.ts";
import { startCluster } from "./cluster.ts";

const NAME = "proxy passes pymemcache's integration tests";
const PYTHON = "/usr/bin/python3";
const SUITE = "/usr/lib/python3/dist-packages/pymemcache/test/test_integration.py";

function suiteInstalled(): boolean {
  try {
    Deno.statSync(SUITE);
    return true;
  } catch {
    console.log(`SKIP (${SUITE} not installed): ${NAME}`);
    return false;
  }
}

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, [PYTHON, "memcached"]) || !suiteInstalled(),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    const cwd = await Deno.makeTempDir({ prefix: "memrep-pytest-" });
    let out;
    try {
      const proc = new Deno.Command(PYTHON, {
        args: [
          "-m",
          "pytest",
          SUITE,
          "--server",
          "127.0.0.1",
          "--port",
          String(cluster.proxy.port),
          "-q",
          "-k",
          "not tls",
          "-p",
          "no:cacheprovider",
          "-W",
          "ignore::pytest.PytestUnknownMarkWarning",
        ],
        cwd,
        env: { PYTHONDONTWRITEBYTECODE: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const killer = setTimeout(() => proc.kill("SIGKILL"), 180_000);
      try {
        out = await proc.output();
      } finally {
        clearTimeout(killer);
      }
    } finally {
      await cluster.stop();
      await Deno.remove(cwd, { recursive: true });
    }
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    const summary = /(\d+) passed/.exec(text);
    if (out.code !== 0 || !summary || /\d+ (failed|error)/.test(text)) {
      fail(
        `pymemcache suite failed (exit ${out.code}):\n${
          text.replace(/^(=+ )?(\d+ (passed|failed))/gm, "pytest: $2")
        }`,
      );
    }
  },
});
