/**
 * memcached 1.6.18's own Perl suite (t/*.t, from a mirror of memcached's
 * git repository) against `memrep serve`, through tools/memcached_suite.sh
 * (a memcached-debug wrapper that starts memrep with compile.sh's
 * permissions). Every file must pass but those listed in
 * {@linkcode DIFFERS}, each with why (README Limits) and how many of its
 * tests fail at most. A file that fails unexpectedly is run once more alone
 * (several run at once, and some time their sleeps to the tenth of a second).
 */

import { fail } from "../helpers/assert.ts";
import { mirrorRepo } from "../helpers/client_suites.ts";
import { REPO_ROOT } from "../helpers/process.ts";

const TAG = "1.6.18";

/** Files that fail by design: the most failed tests (the exit code) and why. */
const DIFFERS: Record<string, [number, string]> = {
  "64bit": [2, "T_MEMD_INITIAL_MALLOC (a debug-build hook) is not honoured"],
  "conn-limits": [4, "no response objects, so no response_obj_oom"],
  "dyn-maxbytes": [3, "small-item pages do not go back when cache_memlimit is lowered"],
  expirations: [5, "no debugtime (a debug-build clock hook)"],
  issue_22: [2, "memrep's item headers: an item sits in another slab class"],
  issue_42: [1, "memrep's item headers: mem_requested is smaller"],
  issue_67: [1, "-p 0 listens on a port the system picks (memcached: no TCP port)"],
  "lru-maintainer": [6, "no LRU maintainer thread"],
  restart: [1, "an empty .meta file does not stop start-up (memrep keeps one image file)"],
  slabs_reassign: [5, "no slab mover"],
  "slabs-reassign-chunked": [6, "no slab mover"],
  "slabs-reassign2": [8, "no slab mover"],
};

function skipReason(): string | undefined {
  const perl = new Deno.Command("perl", { args: ["-e", "use Test::More; 1"], stderr: "null" });
  try {
    if (perl.outputSync().code !== 0) return "perl's Test::More not installed";
  } catch {
    return "perl not installed";
  }
  const git = mirrorRepo("memcached+memcached");
  if (git === undefined) return "no mirror of memcached+memcached";
  const tag = new Deno.Command("git", {
    args: ["--git-dir", git, "rev-parse", "-q", "--verify", `${TAG}^{commit}`],
    stdout: "null",
  });
  return tag.outputSync().code === 0 ? undefined : `the memcached mirror lacks tag ${TAG}`;
}

interface SuiteRun {
  codes: Map<string, number>;
  logs: string;
}

async function runSuite(files: string[], jobs: number): Promise<SuiteRun> {
  const out = await new Deno.Command("bash", {
    args: [
      `${REPO_ROOT}/tools/memcached_suite.sh`,
      mirrorRepo("memcached+memcached")!,
      TAG,
      ...files.map((f) => `t/${f}.t`),
    ],
    env: { MEMREP_SUITE_JOBS: String(jobs) },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) {
    fail(`memcached_suite.sh exited ${out.code}:\n${text}${new TextDecoder().decode(out.stderr)}`);
  }
  const codes = new Map<string, number>();
  let logs = "";
  for (const line of text.split("\n")) {
    const m = /^(\S+) (\d+)$/.exec(line);
    if (m) codes.set(m[1], Number(m[2]));
    else if (line.startsWith("logs: ")) logs = line.slice(6);
  }
  return { codes, logs };
}

/** The files whose failures are beyond what DIFFERS allows them. */
function unexpected(run: SuiteRun): string[] {
  return [...run.codes].filter(([f, code]) => code > (DIFFERS[f]?.[0] ?? 0)).map(([f]) => f);
}

async function tail(path: string): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => /^(not ok|#)/.test(l))
      .slice(0, 40).join("\n");
  } catch {
    return "(no log)";
  }
}

const reason = skipReason();
const NAME =
  `serve passes memcached ${TAG}'s own Perl suite (t/*.t) but for its documented design differences`;
if (reason) console.log(`SKIP (${reason}): ${NAME}`);

Deno.test({
  name: NAME,
  ignore: reason !== undefined,
  async fn() {
    const first = await runSuite([], 3);
    if (first.codes.size < 80) fail(`only ${first.codes.size} files ran (logs: ${first.logs})`);
    let bad = unexpected(first);
    const again = bad.length > 0 ? await runSuite(bad, 1) : undefined;
    if (again) bad = unexpected(again);
    const passing = [...first.codes].filter(([f, c]) => c === 0 || again?.codes.get(f) === 0);
    const better = Object.keys(DIFFERS).filter((f) => first.codes.get(f) === 0);
    if (better.length > 0) console.log(`memcached suite: now passing: ${better.join(", ")}`);
    if (bad.length > 0) {
      const logs = again?.logs ?? first.logs;
      const why = await Promise.all(
        bad.map(async (f) => `--- ${f}.t\n${await tail(`${logs}/${f}.log`)}`),
      );
      fail(`memcached suite: ${bad.join(", ")} failed (logs: ${logs})\n${why.join("\n")}`);
    }
    console.log(
      `memcached suite: ${passing.length} of ${first.codes.size} files pass, ${
        first.codes.size - passing.length
      } differ by design`,
    );
    for (const run of [first, again]) {
      if (run?.logs) await Deno.remove(run.logs.replace(/\/out$/, ""), { recursive: true });
    }
  },
});
