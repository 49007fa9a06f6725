/**
 * twemproxy's own memcache integration tests (tests/test_memcache of
 * nutcracker 0.5.0, Debian's version, run by nose) against `memrep proxy`,
 * started exactly as that suite starts nutcracker: its harness copies
 * `tests/_binaries/nutcracker` and runs `bin/nutcracker -d -c conf -o log
 * -p pid -s stats_port -v 4 -m 512 -i 1`, waits for the stats port's JSON,
 * and stops it with `pkill -9 -f` on that command line. Our
 * `_binaries/nutcracker` is a launcher that only puts `proxy` before the
 * arguments (a deno script, so that its command line stays `…
 * bin/nutcracker -d -c …` in the background process as nutcracker's does).
 * The suite's sources: `MEMREP_TWEMPROXY_SRC` (a folder holding `tests/`)
 * or tag 0.5.0 of the twitter/twemproxy mirror (see helpers/client_suites.ts);
 * without them, or without python3-memcache / python3-nose /
 * python3-redis (its utils import redis) / socat, it prints a loud SKIP.
 * The harness has fixed ports (memcached 2200, 2201, proxy 4100, stats
 * 5100) and folders (/tmp/r): outside the tests' port range.
 */

import { deepEqual, fail } from "../helpers/assert.ts";
import { mirrorRepo } from "../helpers/client_suites.ts";
import { binaryPath, havePythonModule, ignoreUnless, REPO_ROOT } from "../helpers/process.ts";
import { v8FlagsArg } from "../../lib/v8_flags.ts";

const PYTHON = "/usr/bin/python3";
const ENV = "MEMREP_TWEMPROXY_SRC";
const MIRROR = "twitter+twemproxy";
const TAG = "0.5.0";
const PORTS = [2200, 2201, 4100, 5100];

/**
 * Every case of test_memcache and its verdict on memrep, as on nutcracker
 * 0.5.0 (all pass there). No expected differences.
 */
const EXPECTED: Readonly<Record<string, string>> = {
  "test_memcache.test_gets.test_basic": "ok",
  "test_memcache.test_gets.test_mget_mset": "ok",
  "test_memcache.test_gets.test_mget_mset_large": "ok",
  "test_memcache.test_gets.test_mget_mset_key_not_exists": "ok",
};

function skip(testName: string, why: string): boolean {
  console.log(`SKIP (${why}): ${testName}`);
  return true;
}

/** For `ignore:`: true (with a SKIP line) when the suite cannot run here. */
function ignoreUnlessSuite(testName: string): boolean {
  if (ignoreUnless(testName, ["memcached", "socat"])) return true;
  if (Deno.build.os !== "linux") return skip(testName, "the harness needs Linux (pkill, /tmp/r)");
  try {
    Deno.statSync(PYTHON);
  } catch {
    return skip(testName, `${PYTHON} not installed`);
  }
  for (const [m, pkg] of [["memcache", "memcache"], ["nose", "nose"], ["redis", "redis"]]) {
    if (!havePythonModule(m)) return skip(testName, `python3-${pkg} not installed`);
  }
  // Python 3.13 removed telnetlib, which the harness reads the stats port with.
  if (!havePythonModule("telnetlib")) return skip(testName, "python3 without telnetlib (< 3.13)");
  if (Deno.env.get(ENV) !== undefined) return false;
  const git = mirrorRepo(MIRROR);
  if (git === undefined) {
    return skip(testName, `twemproxy tests: no ${ENV} and no mirror of ${MIRROR}`);
  }
  const tag = new Deno.Command("git", {
    args: ["--git-dir", git, "rev-parse", "-q", "--verify", `${TAG}^{commit}`],
    stdout: "null",
    stderr: "null",
  }).outputSync();
  return tag.code === 0 ? false : skip(testName, `mirror of ${MIRROR} lacks tag ${TAG}`);
}

/** A fresh copy of the suite's tests/ in a temporary folder. */
async function checkout(): Promise<string> {
  const into = await Deno.makeTempDir({ prefix: "memrep-twemproxy-" });
  const src = Deno.env.get(ENV);
  const out =
    await (src !== undefined
      ? new Deno.Command("cp", { args: ["-r", `${src}/tests`, into] })
      : new Deno.Command("sh", {
        args: [
          "-c",
          'git --git-dir="$1" archive "$2" tests | tar -x -C "$3"',
          "sh",
          mirrorRepo(MIRROR)!,
          TAG,
          into,
        ],
      })).output();
  if (out.code !== 0) {
    await Deno.remove(into, { recursive: true });
    fail(`copying twemproxy's tests: ${new TextDecoder().decode(out.stderr)}`);
  }
  return `${into}/tests`;
}

/** The binaries the harness copies: memrep proxy as nutcracker, memcached (with -u root as root). */
function writeBinaries(tests: string): void {
  const bin = `${tests}/_binaries`;
  Deno.mkdirSync(bin, { recursive: true });
  Deno.mkdirSync(`${tests}/log`, { recursive: true });
  // `env -S` splits the line; deno is found on PATH (its folder is put first).
  const shebang =
    `#!/usr/bin/env -S deno run -q -P=memrep ${v8FlagsArg()} --config=${REPO_ROOT}/deno.json`;
  // Linux reads 255 bytes of it: a longer checkout path would cut the config's.
  if (shebang.length > 255) fail(`checkout path too long for the launcher's #! line: ${shebang}`);
  Deno.writeTextFileSync(
    `${bin}/nutcracker`,
    `${shebang}
// nutcracker's command line to memrep proxy: the same arguments after "proxy".
const { runMain } = await import(${JSON.stringify(`file://${REPO_ROOT}/lib/cli/mod.ts`)});
Deno.exit(await runMain(["proxy", ...Deno.args]));
`,
    { mode: 0o755 },
  );
  // After the harness's own flags, so that its `pkill -f 'bin/memcached -d -p 2200'` matches.
  const root = Deno.uid() === 0 ? " -u root" : "";
  Deno.writeTextFileSync(
    `${bin}/memcached`,
    `#!/bin/sh\nexec ${binaryPath("memcached")} "$@"${root}\n`,
    { mode: 0o755 },
  );
}

/** Processes whose command line holds `needle` (the harness's, left by a run cut short). */
function pidsOf(needle: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(needle)) pids.push(Number(e.name));
    } catch { /* gone */ }
  }
  return pids;
}

function busy(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return false;
  } catch {
    return true;
  }
}

const NAME = "proxy passes twemproxy's own memcache tests (nutcracker's harness, unmodified)";
Deno.test({
  name: NAME,
  ignore: ignoreUnlessSuite(NAME),
  async fn() {
    const taken = PORTS.filter(busy);
    if (taken.length > 0) fail(`the harness's fixed ports are in use: ${taken.join(" ")}`);
    const tests = await checkout();
    writeBinaries(tests);
    const proc = new Deno.Command(PYTHON, {
      args: ["-m", "nose", "-v", "--nologcapture", "test_memcache"],
      cwd: tests,
      env: {
        PATH: `${Deno.execPath().replace(/\/[^/]*$/, "")}:${
          Deno.env.get("PATH") ?? "/usr/bin:/bin"
        }`,
        PYTHONDONTWRITEBYTECODE: "1",
        T_LOGFILE: `${tests}/log/t.log`,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // The harness waits for a proxy that never answers forever: bounded.
    const killer = setTimeout(() => proc.kill("SIGKILL"), 90_000);
    try {
      const out = await proc.output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      const verdicts: Record<string, string> = {};
      for (const m of text.matchAll(/^(test_memcache\.\S+) \.\.\. (\w+)/gm)) verdicts[m[1]] = m[2];
      let log = "";
      try {
        const lines = Deno.readTextFileSync(`${tests}/log/t.log`).split("\n");
        // What starting the proxy printed (a refused flag shows there), then the end.
        const start = lines.findIndex((l) => l.includes("nutcracker_control start"));
        log = [...lines.slice(start, start + 3), "...", ...lines.slice(-30)].join("\n");
      } catch { /* none */ }
      deepEqual(verdicts, EXPECTED, `exit ${out.code}\n${text}\n--- harness log (end)\n${log}`);
    } finally {
      clearTimeout(killer);
      // What a run cut short leaves: the harness's own memcached and proxy, found by command line.
      const left = [
        ...pidsOf("/tmp/r/nutcracker-4100/conf/nutcracker.conf"),
        ...PORTS.slice(0, 2).flatMap((p) => pidsOf(`bin/memcached -d -p ${p} `)),
      ];
      for (const pid of left) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await Deno.remove(tests.replace(/\/tests$/, ""), { recursive: true });
    }
  },
});
