/**
 * `memrep proxy` command line: magent's flags are accepted, mistakes exit 2
 * with a message, --help exits 0.
 */

import { deepEqual, equal, match, ok } from "../helpers/assert.ts";
import {
  connect,
  connectAdmitted,
  ignoreUnless,
  runMemrep,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";

Deno.test("proxy --help prints the options and exits 0", async () => {
  const r = await runMemrep(["proxy", "--help"]);
  equal(r.code, 0, r.stderr);
  for (const flag of ["-s,", "-b,", "-p,", "-l,", "-n,", "--hash", "--timeout", "--retry"]) {
    ok(r.stdout.includes(flag), `help mentions ${flag}`);
  }
});

Deno.test("proxy rejects bad command lines with exit code 2", async () => {
  const cases: [string[], RegExp][] = [
    [["proxy"], /-s host:port is required/],
    [["proxy", "-p", "12000"], /-s host:port is required/],
    [["proxy", "-s", "127.0.0.1:11211", "--bogus"], /bogus/],
    [["proxy", "-s", "127.0.0.1:notaport"], /-s: expected host:port/],
    [["proxy", "-s", "127.0.0.1:11211", "-b", "host:99999"], /-b: expected host:port/],
    [["proxy", "-s", "127.0.0.1:11211", "--hash", "crc32"], /--hash: expected ketama or modula/],
    [["proxy", "-s", "127.0.0.1:11211", "-p", "x"], /--port: not a number/],
    [["proxy", "-s", "127.0.0.1:11211", "--timeout", "-5"], /timeout/],
    [["proxy", "-s", "127.0.0.1:11211", "stray"], /stray|positional|Unexpected argument/i],
  ];
  for (const [args, re] of cases) {
    const r = await runMemrep(args);
    equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stdout}${r.stderr}`);
    match(r.stderr, re, args.join(" "));
  }
});

Deno.test({
  name: "magent's short flags, glued values and long forms all work",
  ignore: ignoreUnless("proxy flags", ["memcached"]),
  async fn() {
    const m = await startMemcached();
    const p = await startMemrep([
      "proxy",
      "-u",
      "root",
      "-n",
      "2",
      "-k",
      `-s127.0.0.1:${m.port}`,
      "--backup",
      `127.0.0.1:${m.port}`,
      "--timeout=800",
      "--retry",
      "300",
      "--no-miss-fallback",
      "-vv",
    ]);
    try {
      // Admission is retried: the helper's readiness probe may still hold a slot.
      const a = await connectAdmitted(p.port);
      const b = await connectAdmitted(p.port);
      // -n 2: a third client is turned away.
      const c = await connect(p.port);
      equal(await c.readLine(), "ERROR Too many open connections");
      ok(await c.waitClosed());
      await Promise.all([a.close(), b.close(), c.close()]);
    } finally {
      await p.stop();
      await m.stop();
    }
  },
});

Deno.test({
  name: "-d runs the proxy in the background",
  ignore: ignoreUnless("proxy -d", ["memcached"]),
  async fn() {
    const m = await startMemcached();
    const { freePort } = await import("../helpers/ports.ts");
    const port = freePort();
    const args = [
      "proxy",
      "-d",
      "-l",
      "127.0.0.1",
      "-p",
      String(port),
      "-s",
      `127.0.0.1:${m.port}`,
    ];
    const r = await runMemrep(args);
    try {
      equal(r.code, 0, r.stderr);
      const c = await connect(port);
      const stats = await c.request("stats proxy", "END\r\n");
      const pid = Number(/STAT pid (\d+)/.exec(stats)?.[1]);
      ok(pid > 0, stats);
      await c.close();
      // The background process keeps the command line, -d included (pkill -f finds it).
      const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").slice(0, -1);
      deepEqual(cmdline.slice(-args.length), args);
      Deno.kill(pid, "SIGTERM");
    } finally {
      await m.stop();
    }
  },
});
