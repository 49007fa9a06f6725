/**
 * Real client libraries' own test suites, run against any server on
 * loopback: pylibmc's (pytest, Debian's python3-pylibmc 1.6.3) and
 * php-memcached's (phpt files run by PHP's run-tests.php, Debian's
 * php-memcached 3.2.0). Debian ships neither suite, so the tests come from
 * the library's source: a folder named by `MEMREP_PYLIBMC_SRC` /
 * `MEMREP_PHP_MEMCACHED_SRC` (an unpacked source holding `tests/`), or else
 * the tag of the installed version in a bare git mirror under
 * `MEMREP_MIRROR_DIR` (default /work/.mirror). Without either, the tests
 * print a loud SKIP line.
 * @module
 */

import { fail } from "./assert.ts";
import { havePythonModule, REPO_ROOT } from "./process.ts";

const PYTHON = "/usr/bin/python3";
const PHP = "/usr/bin/php";

/** Where a suite's sources come from. */
interface SuiteSource {
  /** Env variable naming an unpacked source folder. */
  env: string;
  /** Mirror folder name (owner+repo) under MEMREP_MIRROR_DIR. */
  mirror: string;
  /** Tag of the installed version. */
  tag: string;
}

const PYLIBMC: SuiteSource = {
  env: "MEMREP_PYLIBMC_SRC",
  mirror: "lericson+pylibmc",
  tag: "1.6.3",
};
const PHP_MEMCACHED: SuiteSource = {
  env: "MEMREP_PHP_MEMCACHED_SRC",
  mirror: "php-memcached-dev+php-memcached",
  tag: "v3.2.0",
};

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The bare git folder of the mirror of `mirror` (owner+repo), when there
 * is one: under `MEMREP_MIRROR_DIR`, else `.mirror` beside the checkout,
 * else /work/.mirror.
 */
export function mirrorRepo(mirror: string): string | undefined {
  const env = Deno.env.get("MEMREP_MIRROR_DIR");
  const roots = env !== undefined ? [env] : [`${REPO_ROOT}/../.mirror`, "/work/.mirror"];
  for (const root of roots) {
    const dir = `${root}/${mirror}/repo`;
    if (exists(`${dir}/HEAD`)) return dir;
  }
  return undefined;
}

/** The bare git folder of `src`'s mirror, when there is one. */
function mirrorGitDir(src: SuiteSource): string | undefined {
  return mirrorRepo(src.mirror);
}

/** Why `src`'s tests cannot be had, or undefined when they can. */
function sourceMissing(src: SuiteSource): string | undefined {
  const dir = Deno.env.get(src.env);
  if (dir !== undefined) {
    return exists(`${dir}/tests`) ? undefined : `${src.env}=${dir} has no tests/`;
  }
  if (mirrorGitDir(src) === undefined) return `no ${src.env} and no mirror of ${src.mirror}`;
  const tag = new Deno.Command("git", {
    args: ["--git-dir", mirrorGitDir(src)!, "rev-parse", "-q", "--verify", `${src.tag}^{commit}`],
    stdout: "null",
    stderr: "null",
  });
  try {
    return tag.outputSync().code === 0 ? undefined : `mirror of ${src.mirror} lacks tag ${src.tag}`;
  } catch {
    return "git not installed";
  }
}

/** A fresh temporary copy of `src`'s tests/ folder (the runners write beside the tests). */
async function checkout(src: SuiteSource): Promise<string> {
  const into = await Deno.makeTempDir({ prefix: "memrep-suite-" });
  const dir = Deno.env.get(src.env);
  const cmd = dir !== undefined
    ? new Deno.Command("cp", { args: ["-r", `${dir}/tests`, into] })
    : new Deno.Command("sh", {
      args: [
        "-c",
        'git --git-dir="$1" archive "$2" tests | tar -x -C "$3"',
        "sh",
        mirrorGitDir(src)!,
        src.tag,
        into,
      ],
    });
  const out = await cmd.output();
  if (out.code !== 0) {
    await Deno.remove(into, { recursive: true });
    throw new Error(`copying ${src.mirror} tests: ${new TextDecoder().decode(out.stderr)}`);
  }
  return into;
}

function skip(testName: string, why: string): boolean {
  console.log(`SKIP (${why}): ${testName}`);
  return true;
}

/** For `ignore:`: true (with a SKIP line) when pylibmc's suite cannot run here. */
export function ignoreUnlessPylibmcSuite(testName: string): boolean {
  if (!exists(PYTHON)) return skip(testName, `${PYTHON} not installed`);
  for (const m of ["pylibmc", "pytest"]) {
    if (!havePythonModule(m)) return skip(testName, `python3-${m} not installed`);
  }
  const why = sourceMissing(PYLIBMC);
  return why === undefined ? false : skip(testName, `pylibmc tests: ${why}`);
}

/** The verdict of each case of one suite run. */
export interface SuiteRun {
  /** Case name -> PASS, FAIL, SKIP... as the runner said. */
  verdicts: Map<string, string>;
  /** The runner's whole output, for failure messages. */
  text: string;
}

/**
 * Runs `cmd args` in `cwd` with a hard time limit; its exit code and output.
 * The suites' own sleeps (expiry cases) make up most of their time.
 */
async function runBounded(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
  limitMs: number,
): Promise<{ code: number; text: string }> {
  const proc = new Deno.Command(cmd, {
    args,
    cwd,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => proc.kill("SIGKILL"), limitMs);
  try {
    const out = await proc.output();
    const dec = new TextDecoder();
    return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
  } finally {
    clearTimeout(killer);
  }
}

/**
 * pylibmc's tests (tests/*.py and tests/doctests.txt, as its setup.cfg
 * runs them) against 127.0.0.1:port. `autoconf` adds tests/test_autoconf.py,
 * whose cases connect to 127.0.0.1:11211 whatever the port: only for a
 * server on 11211.
 */
export async function runPylibmcSuite(port: number, autoconf = false): Promise<SuiteRun> {
  const dir = await checkout(PYLIBMC);
  try {
    const { code, text } = await runBounded(
      PYTHON,
      [
        ...["-m", "pytest", "--doctest-glob=*.txt", "-rA", "-q", "-p", "no:cacheprovider"],
        ...(autoconf
          ? ["tests/test_autoconf.py"]
          : ["tests", "--deselect", "tests/test_autoconf.py"]),
      ],
      dir,
      { PYTHONDONTWRITEBYTECODE: "1", MEMCACHED_PORT: String(port), MEMCACHED_HOST: "127.0.0.1" },
      120_000,
    );
    const verdicts = new Map<string, string>();
    for (const m of text.matchAll(/^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)/gm)) {
      verdicts.set(m[2], m[1] === "PASSED" ? "PASS" : m[1]);
    }
    return { verdicts, text: `exit ${code}\n${text}` };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** PHP's run-tests.php from php8.x-dev, when installed. */
function runTestsPhp(): string | undefined {
  try {
    for (const e of Deno.readDirSync("/usr/lib/php")) {
      const p = `/usr/lib/php/${e.name}/build/run-tests.php`;
      if (exists(p)) return p;
    }
  } catch {
    // no PHP
  }
  return undefined;
}

/** For `ignore:`: true (with a SKIP line) when php-memcached's suite cannot run here. */
export function ignoreUnlessPhpMemcachedSuite(testName: string): boolean {
  if (!exists(PHP)) return skip(testName, "php-cli not installed");
  try {
    const mods = new Deno.Command(PHP, { args: ["-m"], stderr: "null" }).outputSync();
    if (!/^memcached$/m.test(new TextDecoder().decode(mods.stdout))) {
      return skip(testName, "php-memcached not installed");
    }
  } catch {
    return skip(testName, "php-cli does not run");
  }
  if (runTestsPhp() === undefined) return skip(testName, "run-tests.php (php-dev) not installed");
  const why = sourceMissing(PHP_MEMCACHED);
  return why === undefined ? false : skip(testName, `php-memcached tests: ${why}`);
}

/** php-memcached cases failing on memcached 1.6.18 too, and why. */
export const PHP_MEMCACHED_EXCLUDED: Record<string, string> = {
  "tests/session_lock-php71.phpt":
    "its expected output names 127.0.0.1:11211; the server runs on a free port",
};

/** A SASL server for php-memcached's sasl_basic.phpt (memcached -S, binary protocol). */
export interface SaslTarget {
  port: number;
  user: string;
  pass: string;
}

/**
 * php-memcached's tests/*.phpt (the ones its package.xml ships; not
 * tests/experimental) against 127.0.0.1:port, with sasl_basic.phpt against
 * `sasl` when given (it skips itself otherwise). The suite reads its server
 * from tests/config.inc.local when that file exists: written here. Deprecation
 * notices are off: PHP 8.2 prints them for the suite's own `${var}` strings
 * (touch_binary.phpt), which would fail it on any server.
 */
export async function runPhpMemcachedSuite(port: number, sasl?: SaslTarget): Promise<SuiteRun> {
  const dir = await checkout(PHP_MEMCACHED);
  try {
    const lines = [
      "<?php",
      `define("MEMC_SERVER_HOST", "127.0.0.1");`,
      `define("MEMC_SERVER_PORT", ${port});`,
    ];
    if (sasl) {
      lines.push(
        `define("MEMC_SASL_SERVER_HOST", "127.0.0.1");`,
        `define("MEMC_SASL_SERVER_PORT", ${sasl.port});`,
        `define("MEMC_SASL_USER", ${JSON.stringify(sasl.user)});`,
        `define("MEMC_SASL_PASS", ${JSON.stringify(sasl.pass)});`,
      );
    }
    await Deno.writeTextFile(`${dir}/tests/config.inc.local`, lines.join("\n") + "\n");
    const phpts = [...Deno.readDirSync(`${dir}/tests`)]
      .filter((e) => e.isFile && e.name.endsWith(".phpt"))
      .map((e) => `tests/${e.name}`)
      .sort();
    const { code, text } = await runBounded(
      PHP,
      [runTestsPhp()!, "-q", "--no-color", "-p", PHP, "-d", "error_reporting=24575", ...phpts],
      dir,
      { NO_INTERACTION: "1", TEST_PHP_EXECUTABLE: PHP },
      150_000,
    );
    const verdicts = new Map<string, string>();
    for (const line of text.split(/[\r\n]+/)) {
      const m = /(PASS|FAIL|SKIP|BORK|WARN|LEAK|XFAIL)\s.*\[(tests\/[^\]]+\.phpt)\]/.exec(line);
      // run-tests.php retries a failed case that sleeps (its own "flaky" rule) and calls one
      // that then passes a pass with a warning: e.g. expire.phpt's touch, 1 s into a 2 s expiry,
      // lands past it when the server's clock second ticks early in that second, memcached's too.
      const retried = m?.[1] === "WARN" && line.includes("(warn: Test passed on retry attempt)");
      if (m && !verdicts.has(m[2])) verdicts.set(m[2], retried ? "PASS" : m[1]);
    }
    return { verdicts, text: `exit ${code}\n${text}` };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Fails unless every case of `run` passed or skipped, except the ones in
 * `excluded` (name -> why it fails on memcached 1.6.18 as well), and at
 * least one passed.
 */
export function requireSuitePassed(
  suite: string,
  run: SuiteRun,
  excluded: Record<string, string> = {},
): void {
  const bad = [...run.verdicts].filter(([name, v]) =>
    v !== "PASS" && v !== "SKIP" && v !== "SKIPPED" && !(name in excluded)
  );
  const passed = [...run.verdicts.values()].filter((v) => v === "PASS").length;
  if (bad.length === 0 && passed > 0) {
    const skipped = [...run.verdicts.values()].filter((v) => v.startsWith("SKIP")).length;
    console.log(
      `${suite}: ${passed} cases passed, ${skipped} skipped, ${
        run.verdicts.size - passed - skipped
      } excluded`,
    );
    return;
  }
  // Reword runner totals so a log reader does not take them for the run's.
  fail(
    `${suite}: ${passed} passed; not passed: ${bad.map(([n, v]) => `${n} (${v})`).join(", ")}\n${
      run.text.replace(/^(=+ )?(\d+ (passed|failed))/gm, "runner: $2")
    }`,
  );
}
