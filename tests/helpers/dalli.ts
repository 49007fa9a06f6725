/**
 * Dalli 3.0.6's own minitest suite (Debian's ruby-dalli is the library; the
 * suite comes from Dalli's v3.0.6 tag: a bare git mirror, or a folder named
 * by `DALLI_SUITE` that holds its test/). The suite spawns `memcached`
 * itself (-p, -s, -S, -Z, -o idle_timeout...) on fixed ports: it runs in a
 * network namespace of its own (`unshare -n`), so those ports meet nothing
 * else on this machine, with a `memcached` first on PATH that starts
 * `memrep serve` (or, with `MEMREP_TARGET=memcached`, /usr/bin/memcached).
 * @module
 */

import { memrepCommand, memrepTarget } from "./process.ts";
import { mirrorRepo } from "./client_suites.ts";

const RUBY = "/usr/bin/ruby";
/** Dalli's repository as a bare git mirror (see mirrorRepo), or a path that is none. */
const MIRROR = mirrorRepo("petergoldstein+dalli") ?? "<no mirror of petergoldstein+dalli>";
const TAG = "v3.0.6";

/** The outcome of one minitest run. */
export interface MinitestRun {
  /** Exit code of ruby. */
  code: number;
  /** stdout and stderr. */
  text: string;
  /** Counts from minitest's closing line; undefined when it printed none. */
  counts?: { runs: number; failures: number; errors: number; skips: number };
  /** `Class#test` names of the failures and errors. */
  failed: string[];
}

function run(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** The suite's source, as a way to lay it out in a folder; undefined when there is none. */
function suiteSource(): ((into: string) => Promise<void>) | undefined {
  const dir = Deno.env.get("DALLI_SUITE");
  if (dir) {
    try {
      Deno.statSync(`${dir}/test/helper.rb`);
    } catch {
      return undefined;
    }
    return async (into) => {
      const cp = await new Deno.Command("cp", { args: ["-r", `${dir}/test`, into] }).output();
      if (!cp.success) throw new Error(`cannot copy ${dir}/test`);
    };
  }
  if (!run("git", ["--git-dir", MIRROR, "rev-parse", "--verify", "-q", `${TAG}^{commit}`])) {
    return undefined;
  }
  return async (into) => {
    const sh = `git --git-dir='${MIRROR}' archive ${TAG} test | tar -x -C '${into}'`;
    const out = await new Deno.Command("sh", { args: ["-c", sh], stderr: "piped" }).output();
    if (!out.success) {
      throw new Error(`git archive failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
}

/**
 * True when the suite can run here (ruby with ruby-dalli 3.0.6, the suite's
 * source, `unshare -n` and `ip`); otherwise prints a loud SKIP line.
 */
export function dalliAvailable(testName: string): boolean {
  const missing: string[] = [];
  // The suite's rack session and connection pool tests need ruby-rack and ruby-connection-pool.
  const libs = 'require "dalli"; require "minitest"; require "rack"; require "connection_pool"';
  if (!run(RUBY, ["-e", `${libs}; exit(Dalli::VERSION == "3.0.6")`])) {
    missing.push("ruby with ruby-dalli 3.0.6, minitest, ruby-rack and ruby-connection-pool");
  }
  if (suiteSource() === undefined) missing.push(`Dalli's ${TAG} suite (${MIRROR} or DALLI_SUITE)`);
  if (
    !run("unshare", ["-n", "-p", "-f", "--kill-child", "true"]) ||
    !run("sh", ["-c", "command -v ip"])
  ) {
    missing.push("unshare -n and ip (a private network namespace)");
  }
  if (missing.length === 0) return true;
  console.log(`SKIP (${missing.join("; ")} not available): ${testName}`);
  return false;
}

function quote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

const ROOT = Deno.uid() === 0 ? " -u root" : ""; // memcached refuses root without -u

/** The port of the suite's default server (`memcached_persistent`), the proxy's in proxy mode. */
export const DALLI_PORT = 21345;

/**
 * The `memcached` the suite spawns: memrep serve, or the reference. In proxy
 * mode its default port is the proxy's: a spawn there stands in (a process
 * the harness can stop) and every other one is memcached.
 */
function wrapper(proxy: boolean): string {
  if (proxy) {
    return `#!/bin/sh\ncase " $* " in *" -p ${DALLI_PORT} "*) exec sleep 100000;; esac\n` +
      `exec /usr/bin/memcached${ROOT} "$@"\n`;
  }
  if (memrepTarget() === "memcached") return `#!/bin/sh\nexec /usr/bin/memcached${ROOT} "$@"\n`;
  const { cmd, args } = memrepCommand();
  return `#!/bin/sh\nexec ${[cmd, ...args, "serve"].map(quote).join(" ")} "$@"\n`;
}

/** What part of the suite {@linkcode runDalli} runs, and against what. */
export interface DalliRun {
  /** Only the tests of these `Class#test` names. */
  only?: string[];
  /** Only these files (test/...rb); default every test/**\/test_*.rb. */
  files?: string[];
  /** Leave out the tests of these `Class#test` names. */
  exclude?: string[];
  /**
   * Serve the suite's default port with `memrep proxy` in front of one
   * memcached (started before the suite, in its namespace).
   */
  proxy?: boolean;
}

/** Shell lines that start memcached and `memrep proxy` on {@linkcode DALLI_PORT}, and wait for it. */
function proxyStart(): string {
  const { cmd, args } = memrepCommand();
  const proxy = [cmd, ...args, "proxy", "-l", "127.0.0.1", "-p", String(DALLI_PORT)];
  const wait = `require "socket"; 200.times { begin; TCPSocket.new("127.0.0.1", ` +
    `${DALLI_PORT}).close; exit 0; rescue SystemCallError; sleep 0.05; end }; exit 1`;
  return `/usr/bin/memcached${ROOT} -l 127.0.0.1 -p 11311 -U 0 & ` +
    `${proxy.map(quote).join(" ")} -s 127.0.0.1:11311 & ` +
    `${RUBY} -e ${quote(wait)} || { echo "memrep proxy did not answer"; exit 1; }; `;
}

/** Names of the failures and errors in minitest's report. */
function failedNames(text: string): string[] {
  const names = [...text.matchAll(/^\s+\d+\) (?:Failure|Error):\n(.+?)(?: \[[^\]]*\])?:$/gm)]
    .map((m) => m[1]);
  return [...new Set(names)];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * Runs the suite (or, with `only`, the tests of those `Class#test` names)
 * in a fresh folder inside a private network namespace.
 */
export async function runDalli(run: DalliRun = {}): Promise<MinitestRun> {
  const { only, files, exclude, proxy = false } = run;
  const dir = await Deno.makeTempDir({ prefix: "memrep-dalli-" });
  try {
    await suiteSource()!(dir);
    // helper.rb requires bundler/setup, whose evaluation of dalli.gemspec loaded
    // dalli/version: Debian's packages stand in for the Gemfile here.
    await Deno.mkdir(`${dir}/stub/bundler`, { recursive: true });
    await Deno.writeTextFile(`${dir}/stub/bundler/setup.rb`, "require 'dalli/version'\n");
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/memcached`, wrapper(proxy), { mode: 0o755 });
    const args = ["-v", "--seed", "1"];
    const names = (list: string[]) => `/^(${list.map(escapeRegExp).join("|")})$/`;
    if (only) args.push("-n", names(only));
    if (exclude) args.push("-e", names(exclude));
    // error_highlight (Ruby 3.1) appends code snippets to NameError messages that two
    // ValueSerializer tests compare whole: off, they pass on memcached as upstream.
    const list = files ? `%w[${files.join(" ")}]` : `Dir["test/**/test_*.rb"].sort`;
    const load = `${list}.each { |f| require "./" + f }`;
    const script = `ip link set lo up && ${proxy ? proxyStart() : ""}` +
      `exec ${RUBY} --disable=error_highlight -Istub -Itest -e ${quote(load)} -- "$@"`;
    const proc = new Deno.Command("unshare", {
      // A PID namespace too: when ruby ends, the servers it left running (its retried starts
      // orphan the first one) end with it.
      args: ["-n", "-p", "-f", "--kill-child", "sh", "-c", script, "sh", ...args],
      cwd: dir,
      env: { PATH: `${dir}/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`, LANG: "C.UTF-8" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const killer = setTimeout(() => proc.kill("SIGKILL"), 240_000);
    let out: Deno.CommandOutput;
    try {
      out = await proc.output();
    } finally {
      clearTimeout(killer);
    }
    const dec = new TextDecoder();
    const text = dec.decode(out.stdout) + dec.decode(out.stderr);
    const m = /^(\d+) runs, \d+ assertions, (\d+) failures, (\d+) errors, (\d+) skips$/m.exec(text);
    const counts = m ? { runs: +m[1], failures: +m[2], errors: +m[3], skips: +m[4] } : undefined;
    return { code: out.code, text, counts, failed: failedNames(text) };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
