/**
 * serve's -l against real memcached 1.6.18 (its t/ssl_ports.t found the
 * gap): `host:port` and `[v6]:port` entries with their own ports, the rest
 * on -p's, memcached's dropping of a value already in the list, `stats
 * settings` tcpport/inter, MEMCACHED_PORT_FILENAME, with one thread and
 * with several (SO_REUSEPORT); a bad -l refused with memcached's message
 * (memcached exits 71, memrep 2); and a replicated pair listening on
 * `-l host:port`; without -l, IPv4 and IPv6 as memcached (stats conns too).
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
  type ProcessHandle,
  runMemrep,
  startProcess,
  waitUntil,
} from "../helpers/mod.ts";
import { memrepCommand } from "../helpers/process.ts";

/** memcached's argv for `args` (as root it wants -u). */
function memcachedArgs(args: string[]): string[] {
  return [...(Deno.uid() === 0 ? ["-u", "root"] : []), "-U", "0", ...args];
}

/** memcached or `memrep serve` with `args`, once 127.0.0.1:`port` answers. */
function start(
  which: "memcached" | "memrep",
  args: string[],
  port: number,
  env?: Record<string, string>,
): Promise<ProcessHandle> {
  if (which === "memcached") {
    return startProcess("memcached", binaryPath("memcached")!, memcachedArgs(args), port, { env });
  }
  const { cmd, args: pre } = memrepCommand();
  return startProcess("memrep serve", cmd, [...pre, "serve", ...args], port, { env });
}

/** The `version` reply at host:port, or `refused`. */
async function probe(hostname: string, port: number): Promise<string> {
  let c;
  try {
    c = await connect(port, hostname);
  } catch {
    return "refused";
  }
  try {
    return (await c.request("version")).startsWith("VERSION ") ? "answers" : "other";
  } catch {
    return "refused";
  } finally {
    await c.close();
  }
}

const WHERE = "serve -l host:port, [v6]:port and -p listen where memcached does (-t 1, -t 2)";
Deno.test({
  name: WHERE,
  ignore: ignoreUnless(WHERE, ["memcached"]),
  async fn() {
    const [p1, p2, p3] = [freePort(), freePort(), freePort()];
    // "-l 127.0.0.1" is part of the list already given: memcached drops it (no 127.0.0.1:p3).
    const args = [
      "-p",
      String(p3),
      "-l",
      `127.0.0.1:${p1}`,
      "-l",
      `[::1]:${p2}`,
      "-l",
      "127.0.0.1",
      "-l",
      "127.0.0.2",
    ];
    const probes: [string, number][] = [
      ["127.0.0.1", p1],
      ["::1", p2],
      ["127.0.0.1", p3],
      ["127.0.0.2", p3],
      ["127.0.0.2", p1],
      ["127.0.0.1", p2],
    ];
    const observe = async (which: "memcached" | "memrep", extra: string[]) => {
      const proc = await start(which, [...extra, ...args], p1);
      try {
        const seen: Record<string, string> = {};
        for (const [h, p] of probes) seen[`${h} ${p}`] = await probe(h, p);
        const c = await connect(p1);
        const settings = await c.stats("settings");
        equal(await c.request("set k 0 0 1\r\nv"), "STORED\r\n");
        await c.close();
        // Every listener serves the one cache (with -t 2, whichever thread accepts).
        const hits: string[] = [];
        for (const [h, p] of probes) {
          if (seen[`${h} ${p}`] !== "answers") continue;
          const d = await connect(p, h);
          hits.push(await d.request("get k", "END\r\n"));
          await d.close();
        }
        return {
          seen,
          tcpport: settings.get("tcpport"),
          inter: settings.get("inter"),
          hits: [...new Set(hits)],
        };
      } finally {
        await proc.stop();
      }
    };
    const expected = await observe("memcached", []);
    ok(Object.values(expected.seen).filter((s) => s === "answers").length >= 3, "harness");
    for (const threads of ["1", "2"]) {
      const got = await observe("memrep", ["-t", threads]);
      equal(
        JSON.stringify(got),
        JSON.stringify(expected),
        `-t ${threads}: ${JSON.stringify(got)} vs ${JSON.stringify(expected)}`,
      );
    }
  },
});

/** The port file's text with `picked` and `port` replaced by names. */
function portFile(text: string, port: number): string {
  return text.replaceAll(`: ${port}\n`, ": <port>\n").replace(/: (?!<)\d+\n/, ": <picked>\n");
}

const PICK = "-l host:-1 is a port the system picks, beside -p's (MEMCACHED_PORT_FILENAME)";
Deno.test({
  name: PICK,
  ignore: ignoreUnless(PICK, ["memcached"]),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const port = freePort();
      const args = ["-p", String(port), "-l", "127.0.0.1:-1,127.0.0.1"];
      const texts: string[] = [];
      for (const [which, extra] of [["memcached", []], ["memrep", ["-t", "2"]]] as const) {
        const file = `${dir}/${which}`;
        const proc = await start(which, [...extra, ...args], port, {
          MEMCACHED_PORT_FILENAME: file,
        });
        try {
          await waitUntil(() => Deno.stat(file).then(() => true, () => false), file);
          const text = await Deno.readTextFile(file);
          const picked = Number(/TCP INET: (\d+)/.exec(text.replace(`: ${port}\n`, ""))?.[1]);
          ok(picked > 0 && picked !== port, `${which}: ${text}`);
          equal(await probe("127.0.0.1", picked), "answers", `${which} on the picked port`);
          texts.push(portFile(text, port));
        } finally {
          await proc.stop();
        }
      }
      equal(texts[1], texts[0]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** -l values memcached refuses (the port of the first entry of each is a free one). */
function badListens(port: number): string[] {
  return [
    "127.0.0.1:abc",
    "127.0.0.1:",
    `127.0.0.1:${port}x`,
    "127.0.0.1:-5",
    `notls:127.0.0.1:${port}`,
    "notls:127.0.0.1",
    `:${port}`,
    "[::1",
    "[::1]:1:2",
    `127.0.0.1:${port},127.0.0.1:${port}`,
    `127.0.0.1:${port};127.0.0.1:${port}`,
    `tag[toolongtag]:127.0.0.1:${port}`,
    "tag[x",
    "proto[ascii:1",
    `127.0.0.1:-5,:${port},127.0.0.1:x,127.0.0.1:y`,
  ];
}

/** memcached with `args`: its exit code and stderr, or null when it still runs after 2 s. */
async function memcachedRefusal(args: string[]): Promise<{ code: number; stderr: string } | null> {
  const child = new Deno.Command(binaryPath("memcached")!, {
    args: memcachedArgs(args),
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

/**
 * memrep's refusal, in this process; the trailing --repl-drain-timeout makes
 * an accepted -l throw too, so nothing listens.
 */
async function memrepRefusal(args: string[]): Promise<string> {
  try {
    await serveMain([...args, "--repl-drain-timeout", "5"]);
    return "<returned>";
  } catch (err) {
    return err instanceof UsageError ? err.message : `<${err}>`;
  }
}

const REFUSED = "serve refuses a bad -l with memcached's message (exit code 2)";
Deno.test({
  name: REFUSED,
  ignore: ignoreUnless(REFUSED, ["memcached"]),
  async fn() {
    const port = freePort();
    const problems: string[] = [];
    for (const l of badListens(port)) {
      const args = ["-p", String(port), "-l", l];
      const ref = await memcachedRefusal(args);
      if (ref === null || ref.code === 0) {
        problems.push(`-l ${l}: memcached did not refuse (harness)`);
        continue;
      }
      const sut = await memrepRefusal(args);
      if (sut !== ref.stderr) {
        problems.push(
          `-l ${l}: memcached ${JSON.stringify(ref.stderr)} memrep ${JSON.stringify(sut)}`,
        );
      }
    }
    equal(problems.join("\n"), "");
    // With -s (no TCP) memcached does not read -l: it starts.
    const sock = `${await Deno.makeTempDir()}/sock`;
    const unix = ["-s", sock, "-l", "127.0.0.1:abc"];
    equal(await memcachedRefusal(unix), null, "memcached -s with a bad -l runs");
    equal(await memrepRefusal(unix), "--repl-drain-timeout needs --replicate (or -x/-X)");
    await Deno.remove(sock.slice(0, -"/sock".length), { recursive: true });
    // End to end: that message alone on stderr, exit code 2 (memcached: 71).
    const args = ["-p", String(port), "-l", "127.0.0.1:abc", "-l", `127.0.0.1:${port}`];
    const ref = await memcachedRefusal(args);
    const sut = await runMemrep(["serve", ...args]);
    equal(ref?.code, 71);
    equal(sut.code, 2);
    equal(sut.stderr.trim(), ref?.stderr);
  },
});

Deno.test("a pair replicates with -l host:port (replication listens on that host)", async () => {
  const repl = String(freePort());
  const nodes: ProcessHandle[] = [];
  try {
    for (const port of [freePort(), freePort()]) {
      const args = ["-v", "-l", `127.0.0.1:${port}`, "--replicate", `127.0.0.1:${repl}`];
      nodes.push(await start("memrep", args, port));
    }
    await Promise.all(nodes.map((n) => n.waitForLog(/^replication: start/, 10_000)));
    const [a, b] = await Promise.all(nodes.map((n) => connect(n.port)));
    try {
      equal(await a.request("set k 0 0 1\r\nv"), "STORED\r\n");
      await waitUntil(
        async () => (await b.request("get k", "END\r\n")).includes("VALUE k"),
        "k on the peer",
      );
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

/** `stats conns` with ids and ports replaced by their order of appearance. */
function connsShape(text: string): string {
  const ids = new Map<string, number>();
  const ports = new Map<string, number>();
  return text.replace(/STAT (\d+):/g, (_, id) => {
    if (!ids.has(id)) ids.set(id, ids.size);
    return `STAT #${ids.get(id)}:`;
  }).replace(/:(\d+)\r\n/g, (_, p) => {
    if (!ports.has(p)) ports.set(p, ports.size);
    return `:P${ports.get(p)}\r\n`;
  }).replace(/secs_since_last_cmd \d+/g, "secs_since_last_cmd S");
}

const DUAL =
  "serve without -l answers on 127.0.0.1 and ::1, and stats conns names both as memcached";
Deno.test({
  name: DUAL,
  ignore: ignoreUnless(DUAL, ["memcached"]),
  async fn() {
    const observe = async (which: "memcached" | "memrep", extra: string[]) => {
      const port = freePort();
      const proc = await start(which, ["-p", String(port), ...extra], port);
      try {
        const v4 = await probe("127.0.0.1", port);
        const v6 = await probe("::1", port);
        // One client of each family open while a third asks (-t 2: any thread may hold them).
        const a = await connect(port, "127.0.0.1");
        // Without IPv6 on the host both sides must still agree on IPv4 alone.
        const six = v6 === "answers" ? "::1" : "127.0.0.1";
        const b = await connect(port, six);
        const asker = await connect(port, six);
        // memcached registers an accepted socket on a worker a little later, and a closed
        // probe may linger: ask until exactly the three clients are listed.
        let conns = "";
        await waitUntil(async () => {
          conns = await asker.request("stats conns", "END\r\n");
          return (conns.match(/:state conn_(?!listening)/g) ?? []).length === 3;
        }, `${which}: stats conns lists the three clients`);
        await Promise.all([a.close(), b.close(), asker.close()]);
        const rows = connsShape(conns).split("\r\n");
        // Client rows in id order differ by thread; compare them as a set.
        return { v4, v6, rows: rows.sort() };
      } finally {
        await proc.stop();
      }
    };
    const expected = await observe("memcached", []);
    equal(expected.v4, "answers", "harness: memcached on 127.0.0.1");
    for (const threads of ["1", "2"]) {
      const got = await observe("memrep", ["-t", threads]);
      equal(
        JSON.stringify(got),
        JSON.stringify(expected),
        `-t ${threads}: ${JSON.stringify(got)} vs ${JSON.stringify(expected)}`,
      );
    }
  },
});
