/**
 * Startup flags against real memcached 1.6.18 (its t/00-startup.t and
 * t/item_size_max.t, plus the checks memcached.c makes of -c -t -R -f -n -I
 * -m -B and -o): a refused combination is refused by both with the same
 * message (memcached exits 1 or 64, memrep always 2), an accepted one
 * starts on both with the same `stats settings` values.
 * @module
 */

import { equal, ok } from "../helpers/assert.ts";
import { serveMain } from "../../lib/cli/serve.ts";
import { UsageError } from "../../lib/errors.ts";
import {
  binaryPath,
  connect,
  freePort,
  ignoreUnless,
  runCommand,
  runMemrep,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";

/** Combinations memcached refuses (at startup, before it listens). */
const REFUSED: string[][] = [
  ["-I", "1000"],
  ["-I", "256m"],
  ["-I", "abc"],
  ["-I", "1g"],
  ["-I", "1000000"],
  ["-I", "1024"],
  ["-m", "8", "-I", "5m"],
  ["-m", "0"],
  ["-c", "0"],
  ["-c", "-1"],
  ["-t", "0"],
  ["-t", "-1"],
  ["-B", "http"],
  ["-f", "1"],
  ["-f", "abc"],
  ["-n", "0"],
  ["-R", "0"],
  ["-o", "read_buf_mem_limit=abc"],
  ["-o", "read_buf_mem_limit"],
  ["-o", "idle_timeout"],
  ["-o", "bogus"],
  ["-o", "modern,bogus=1"],
  ["-o", "slab_chunk_max=3000"],
  ["-o", "slab_chunk_max=2048", "-I", "1000000"],
  ["-o", "hot_lru_pct=50,warm_lru_pct=40"],
  ["-o", "no_modern,temporary_ttl=5"],
  ["-o", "no_lru_maintainer,temporary_ttl=5"],
  ["-o", "hashpower=5"],
  ["-o", "slab_automove=5"],
  ["-o", "slab_automove_ratio=2"],
  ["-o", "lru_crawler_sleep=2000000"],
  ["-o", "lru_crawler_tocrawl=x"],
  ["-o", "hash_algorithm=foo"],
  ["-o", "tail_repair_time=5"],
];

/** Accepted combinations, and the settings both must then report. */
const ACCEPTED: { args: string[]; settings: string[] }[] = [
  { args: ["-I", "1024", "-o", "slab_chunk_max=1024"], settings: ["item_size_max"] },
  { args: ["-I", "512k", "-o", "slab_chunk_max=16384"], settings: ["item_size_max"] },
  { args: ["-m", "256", "-I", "32m"], settings: ["item_size_max", "maxbytes"] },
  { args: ["-c", "100x", "-R", "5", "-o", "idle_timeout=abc,modern"], settings: ["maxconns"] },
  { args: ["-n", "5", "-f", "1.5x", "-m", "64x"], settings: ["growth_factor", "maxbytes"] },
];

/** memcached with `args`: its exit code and stderr, or null when it is still running after 2 s. */
async function memcachedRefusal(args: string[]): Promise<{ code: number; stderr: string } | null> {
  const argv = ["-l", "127.0.0.1", "-p", String(freePort()), "-U", "0", ...args];
  if (Deno.uid() === 0) argv.unshift("-u", "root");
  const child = new Deno.Command(binaryPath("memcached")!, {
    args: argv,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited meanwhile */ }
  }, 2000);
  const out = await child.output();
  clearTimeout(timer);
  if (out.signal === "SIGKILL") return null;
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr).trim() };
}

/** Runs `fn` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, fn: (t: T) => Promise<void>) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) await fn(t);
    }),
  );
}

const REFUSED_NAME = "serve refuses the startup flags memcached refuses, with its messages";

/**
 * memrep's refusal of `args`, run in this process (a process per case is too
 * slow on a loaded machine): serveMain throws the UsageError main.ts prints.
 * The trailing --repl-drain-timeout makes accepted flags throw too (after
 * the memcached checks), so nothing here starts a server.
 */
async function memrepRefusal(args: string[]): Promise<string> {
  try {
    await serveMain(["-l", "127.0.0.1", "-p", "0", ...args, "--repl-drain-timeout", "5"]);
    return "<returned>";
  } catch (err) {
    return err instanceof UsageError ? err.message : `<${err}>`;
  }
}

Deno.test({
  name: REFUSED_NAME,
  ignore: ignoreUnless(REFUSED_NAME, ["memcached"]),
  async fn() {
    const problems: string[] = [];
    await inParallel(REFUSED, 6, async (args) => {
      const ref = await memcachedRefusal(args);
      const flags = args.join(" ");
      if (ref === null || ref.code === 0) {
        problems.push(`${flags}: memcached did not refuse (harness)`);
        return;
      }
      const sut = await memrepRefusal(args);
      if (sut !== ref.stderr) {
        problems.push(
          `${flags}: memcached ${JSON.stringify(ref.stderr)} memrep ${JSON.stringify(sut)}`,
        );
      }
    });
    equal(problems.join("\n"), "");
    // End to end: the message on stderr alone, exit code 2.
    for (const args of [["-c", "-1"], ["-o", "modern,bogus=1"]]) {
      const ref = await memcachedRefusal(args);
      const sut = await runMemrep(["serve", "-p", String(freePort()), ...args]);
      equal(sut.code, 2);
      equal(sut.stderr.trim(), ref?.stderr);
    }
  },
});

const ACCEPTED_NAME = "serve starts with the flags memcached accepts and reads them alike";

Deno.test({
  name: ACCEPTED_NAME,
  ignore: ignoreUnless(ACCEPTED_NAME, ["memcached"]),
  async fn() {
    for (const { args, settings } of ACCEPTED) {
      const ref = await startMemcached(args);
      const sut = await startMemrep(["serve", "-t", "1", ...args]);
      try {
        const [a, b] = await Promise.all([ref.port, sut.port].map(async (port) => {
          const c = await connect(port);
          try {
            return await c.stats("settings", 20_000);
          } finally {
            await c.close();
          }
        }));
        for (const k of settings) {
          ok(a.has(k), `memcached has ${k}`);
          equal(b.get(k), a.get(k), `${args.join(" ")}: ${k}`);
        }
      } finally {
        await Promise.all([ref.stop(), sut.stop()]);
      }
    }
  },
});

const VERSION_NAME = "serve -V prints memcached -V's line and exits 0";
Deno.test({
  name: VERSION_NAME,
  ignore: ignoreUnless(VERSION_NAME, ["memcached"]),
  async fn() {
    const ref = await runCommand(binaryPath("memcached")!, ["-V"]);
    const sut = await runMemrep(["serve", "-V"]);
    equal(sut.code, ref.code);
    equal(sut.stdout, ref.stdout);
    equal(ref.stdout, "memcached 1.6.18\n");
  },
});

const HELP_LINE = "serve -h opens with memcached -h's version line";
Deno.test({
  name: HELP_LINE,
  ignore: ignoreUnless(HELP_LINE, ["memcached"]),
  async fn() {
    // Client test kits find their server this way (Dalli's: `memcached -h | head -1`).
    const theirs = await runCommand(binaryPath("memcached")!, ["-h"]);
    const ours = await runMemrep(["serve", "-h"]);
    equal(ours.code, theirs.code);
    equal(ours.stdout.split("\n")[0], theirs.stdout.split("\n")[0]);
    ok(ours.stdout.includes("Usage: memrep serve"), "followed by memrep's own help");
  },
});
