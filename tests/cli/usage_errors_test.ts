/**
 * Every bad flag of `memrep serve`, `memrep proxy` and `memrep replicate`
 * exits with code 2 and one stderr line that starts `memrep <command>: `
 * (once) and names the flag. The exception: serve's refusals of
 * memcached's own flags print memcached's words as memcached does
 * (tests/cli/startup_flags_test.ts compares them with memcached).
 */

import { equal, match, ok } from "../helpers/assert.ts";
import { runMemrep } from "../helpers/mod.ts";
import { runMain } from "../../lib/cli/mod.ts";

/** Arguments, and what the message must say after the prefix. */
const BAD: Record<"serve" | "proxy" | "replicate", [string[], RegExp][]> = {
  serve: [
    [["--port", "abc"], /^--port: not a number: abc$/],
    [["-p", "70000"], /^--port: 70000 is out of range/],
    [["--bogus"], /bogus/],
    [["stray"], /Unexpected argument 'stray'/],
    [["--metrics", "nohost:"], /^--metrics: expected host:port/],
    [["-s", ""], /^-s: the socket path is empty$/],
    [["-e", ""], /^-e: the memory file name is empty$/],
    [["-Y", ""], /^-Y: the auth file name is empty$/],
    [["--replicate", "127.0.0.1:x"], /^--replicate: expected host:port/],
    [["--replicate", "127.0.0.1:1", "--repl-sync=most"], /^--repl-sync: unknown mode 'most'/],
    [
      ["--replicate", "127.0.0.1:1", "--repl-sync-degrade"],
      /^--repl-sync-degrade needs --repl-sync$/,
    ],
    [["--repl-drain-timeout", "5"], /^--repl-drain-timeout needs --replicate/],
    [["--replicate", "127.0.0.1:1", "--repl-timeout", "x"], /^--repl-timeout: not a number: x$/],
    [["--replicate", "127.0.0.1:1", "-x", "127.0.0.2"], /^use either --replicate or -x\/-X/],
  ],
  proxy: [
    [["-s", "127.0.0.1:1", "--port", "abc"], /^--port: not a number: abc$/],
    [[], /^at least one -s host:port is required/],
    [["-s", "127.0.0.1:1", "--bogus"], /bogus/],
    [["-s", "127.0.0.1:notaport"], /^-s: expected host:port/],
    [["-s", "127.0.0.1:1", "-b", "host:99999"], /^-b: expected host:port/],
    [["-s", "127.0.0.1:1", "--hash", "crc32"], /^--hash: expected ketama or modula/],
    [["-s", "127.0.0.1:1", "-k", "--hash", "modula"], /^-k and --hash modula contradict$/],
    [["-s", "127.0.0.1:1", "--backup-writes", "x"], /^--backup-writes: expected sync or async/],
    [["-s", "127.0.0.1:1", "--timeout", "0"], /^--timeout: 0 is out of range/],
    [["-s", "127.0.0.1:1@"], /^-s: empty zone/],
    [["-s", "127.0.0.1:1", "--zone", ""], /^--zone: empty zone name$/],
    [["-s", "127.0.0.1:1", "--backend-auth", "nocolon"], /^--backend-auth: expected user:password/],
    [
      ["-s", "127.0.0.1:1", "--backend-auth-file", "/nonexistent/x"],
      /^--backend-auth-file: cannot read/,
    ],
  ],
  replicate: [
    [["--from", "127.0.0.1:1"], /^give a target/],
    [["--to", "127.0.0.1:1"], /^give a source/],
    [["--from", "127.0.0.1:x", "--to", "127.0.0.1:1"], /^--from: expected host:port/],
    [["--from", "127.0.0.1:1", "--to", "127.0.0.1:2", "--batch", "abc"], /^--batch: not a number/],
    [["--from", "127.0.0.1:1", "--to", "127.0.0.1:2", "--timeout", "0"], /^--timeout: 0 is out/],
    [["--from", "127.0.0.1:1", "--to", "127.0.0.1:2", "--mode", "cas"], /^--mode must be/],
    [["--from", "127.0.0.1:1", "--to", "127.0.0.1:2", "--match", ""], /^--match needs a pattern$/],
    [["--from", "127.0.0.1:1", "--to", "127.0.0.1:2", "--bogus"], /bogus/],
    [["--from", "127.0.0.1:1", "--json", "--dump", "-"], /^--json and --dump - both want stdout$/],
  ],
};

/**
 * What `memrep <args>` prints on stderr and its exit code, run in this
 * process (a process per row is too slow on a loaded machine; main.ts
 * exits with runMain's code, checked end to end below).
 */
async function refusal(args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...parts: unknown[]) => lines.push(parts.map(String).join(" "));
  try {
    return { code: await runMain(args), text: lines.join("\n").trim() };
  } finally {
    console.error = original;
  }
}

/** The row's problem, or null: exit 2, one line, the prefix once, then `re`. */
function problem(sub: string, args: string[], re: RegExp, code: number, text: string) {
  const prefix = `memrep ${sub}: `;
  const what = `${sub} ${JSON.stringify(args)}: exit ${code}, ${JSON.stringify(text)}`;
  if (code !== 2) return `${what} (exit code)`;
  if (text.includes("\n")) return `${what} (more than one line)`;
  if (!text.startsWith(prefix) || text.startsWith(prefix + prefix)) return `${what} (prefix)`;
  return re.test(text.slice(prefix.length)) ? null : `${what} (want ${re})`;
}

Deno.test("bad flags of serve, proxy and replicate: exit 2, 'memrep <command>: ' and the flag", async () => {
  const problems: string[] = [];
  for (const [sub, rows] of Object.entries(BAD)) {
    for (const [args, re] of rows) {
      const { code, text } = await refusal([sub, ...args]);
      const p = problem(sub, args, re, code, text);
      if (p !== null) problems.push(p);
    }
  }
  equal(problems.join("\n"), "");
});

Deno.test("end to end: the process exits 2 with the prefixed line on stderr", async () => {
  const rows = [
    ["serve", ...BAD.serve[0][0]],
    ["proxy", ...BAD.proxy[0][0]],
    ["replicate", ...BAD.replicate[3][0]],
  ];
  const res = await Promise.all(rows.map((args) => runMemrep(args)));
  const problems = res.map((r, i) => {
    const [sub, ...args] = rows[i];
    const re = BAD[sub as keyof typeof BAD][i === 2 ? 3 : 0][1];
    return problem(sub, args, re, r.code, r.stderr.trim());
  }).filter((p) => p !== null);
  equal(problems.join("\n"), "");
});

Deno.test("serve's refusals of memcached's own flags keep memcached's words, exit 2", async () => {
  for (
    const [args, want] of [
      [["-c", "0"], "Maximum connections must be greater than 0"],
      [["-B", "http"], /^Invalid value for binding protocol: http/],
    ] as [string[], string | RegExp][]
  ) {
    const r = await runMemrep(["serve", ...args]);
    equal(r.code, 2, r.stderr);
    if (typeof want === "string") equal(r.stderr.trim(), want);
    else match(r.stderr.trim(), want);
    ok(!r.stderr.startsWith("memrep"), r.stderr);
  }
});
