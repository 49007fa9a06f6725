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

/**
 * Cases that store with a 1 s expiry and expect the item a moment later: a
 * clock second that turns in between expires it, on memcached as on memrep
 * (both count whole seconds). A failure of these alone is run again, once.
 */
const CLOCK_RACES = ["test_touch"];

/**
 * Run the suite against 127.0.0.1:port; fails the test unless pytest reports
 * only passes (a {@linkcode CLOCK_RACES} case that failed must pass when run again).
 */
export async function runPymemcacheSuite(port: number): Promise<void> {
  const first = await pytest(port, "not tls");
  if (passed(first)) return;
  const failed = [...first.text.matchAll(/^FAILED \S+::(\w+)/gm)].map((m) => m[1]);
  if (failed.length > 0 && failed.every((name) => CLOCK_RACES.includes(name))) {
    const again = await pytest(port, [...new Set(failed)].join(" or "));
    if (passed(again)) {
      console.log(`pymemcache: ${failed.join(", ")} passed when run again (a clock second turned)`);
      return;
    }
    first.text += "\n-- run again --\n" + again.text;
  }
  // Reword pytest's closing line so a log reader does not take it for the run's total.
  fail(
    `pymemcache suite failed (exit ${first.code}):\n${
      first.text.replace(/^(=+ )?(\d+ (passed|failed))/gm, "pytest: $2")
    }`,
  );
}

function passed(r: { code: number; text: string }): boolean {
  return r.code === 0 && /(\d+) passed/.test(r.text) && !/\d+ (failed|error)/.test(r.text);
}

/** One pytest run of the suite's cases selected by `-k select`. */
async function pytest(port: number, select: string): Promise<{ code: number; text: string }> {
  const cwd = await Deno.makeTempDir({ prefix: "memrep-pytest-" });
  let out: Deno.CommandOutput;
  try {
    const proc = new Deno.Command(PYTHON, {
      args: [
        ...["-m", "pytest", SUITE, "--server", "127.0.0.1", "--port", String(port), "-q"],
        ...[
          "-k",
          select,
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
  return { code: out.code, text };
}
