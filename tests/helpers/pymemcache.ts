/**
 * pymemcache's own integration suite (Debian's python3-pymemcache, run with
 * python3-pytest) against any server on loopback. TLS tests are deselected
 * here (they need a TLS port: tests/server/tls_test.ts runs test_tls).
 * @module
 */

import { fail } from "./assert.ts";

const PYTHON = "/usr/bin/python3";
const SUITE = "/usr/lib/python3/dist-packages/pymemcache/test/test_integration.py";

/** True when the suite can run; otherwise prints a loud SKIP line for `testName`. */
export function pymemcacheAvailable(testName: string): boolean {
  for (const path of [PYTHON, SUITE]) {
    try {
      Deno.statSync(path);
    } catch {
      console.log(`SKIP (${path} not installed): ${testName}`);
      return false;
    }
  }
  return true;
}

/** Run the suite against 127.0.0.1:port; fails the test unless pytest reports only passes. */
export async function runPymemcacheSuite(port: number): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "memrep-pytest-" });
  let out: Deno.CommandOutput;
  try {
    const proc = new Deno.Command(PYTHON, {
      args: [
        ...["-m", "pytest", SUITE, "--server", "127.0.0.1", "--port", String(port), "-q"],
        ...[
          "-k",
          "not tls",
          "-p",
          "no:cacheprovider",
          "-W",
          "ignore::pytest.PytestUnknownMarkWarning",
        ],
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
    await Deno.remove(cwd, { recursive: true });
  }
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (out.code !== 0 || !/(\d+) passed/.test(text) || /\d+ (failed|error)/.test(text)) {
    // Reword pytest's closing line so a log reader does not take it for the run's total.
    fail(
      `pymemcache suite failed (exit ${out.code}):\n${
        text.replace(/^(=+ )?(\d+ (passed|failed))/gm, "pytest: $2")
      }`,
    );
  }
}
