/**
 * memcached's operational flags: `-s <path>` / `-a <mask>` (a unix-domain
 * socket instead of TCP) and `-F` (flush_all refused), compared byte for
 * byte with memcached 1.6.18 where it runs here.
 * @module
 */

import {
  connect,
  connectUnix,
  deepEqual,
  equal,
  equalBytes,
  freePort,
  haveBinary,
  match,
  memrepCommand,
  ok,
  type ProcessHandle,
  REPO_ROOT,
  runMemrep,
  startMemcached,
  startMemrep,
  startProcess,
  waitUntil,
} from "../helpers/mod.ts";
import { OP, packet, u32Extras } from "../helpers/binary.ts";

/** Starts a server whose only listener is the socket at `path` (the helpers wait for TCP ports). */
async function startOnSocket(
  path: string,
  args: string[],
  memcached = false,
): Promise<ProcessHandle> {
  const p = memcached
    ? await startProcess(
      "memcached",
      "memcached",
      ["-u", "root", "-U", "0", "-s", path, ...args],
      0,
    )
    : await (() => {
      const { cmd, args: pre } = memrepCommand();
      return startProcess("memrep serve", cmd, [...pre, "serve", "-s", path, ...args], 0, {
        cwd: REPO_ROOT,
      });
    })();
  await waitUntil(
    async () => {
      try {
        (await Deno.connect({ transport: "unix", path })).close();
        return true;
      } catch {
        return p.exited();
      }
    },
    `${path} answers`,
    15_000,
  );
  ok(!p.exited(), p.outputLines().join("\n"));
  return p;
}

Deno.test("serve -s: set/get over the socket, -a mask applied, no TCP, a stale socket replaced", async () => {
  const dir = await Deno.makeTempDir({ prefix: "memrep_unix_" });
  const path = `${dir}/mc.sock`;
  const port = freePort();
  let server = await startOnSocket(path, ["-a", "644", "-p", String(port)]);
  try {
    equal(Deno.lstatSync(path).mode! & 0o777, 0o644);
    const c = await connectUnix(path);
    equal(await c.request("set k 5 0 3\r\nabc"), "STORED\r\n");
    equal(await c.request("get k", "END\r\n"), "VALUE k 5 3\r\nabc\r\nEND\r\n");
    const s = await c.stats("settings");
    equal(s.get("domain_socket"), path);
    equal(s.get("umask"), "644");
    equal(s.get("memory_file"), "(null)");
    await c.close();
    // -s replaces TCP, as in memcached.
    let refused = false;
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    } catch {
      refused = true;
    }
    ok(refused, "-s serves no TCP port");
    // Killed hard: the socket file stays; the next start replaces it.
    server.kill("SIGKILL");
    await server.stop();
    ok(Deno.lstatSync(path).isSocket);
    server = await startOnSocket(path, []);
    equal(Deno.lstatSync(path).mode! & 0o777, 0o700, "default mask 700");
    const d = await connectUnix(path);
    match(await d.request("version"), /^VERSION 1\.6\.18/);
    await d.close();
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve -s: a regular file at the path is not replaced, the start fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "memrep_unix_" });
  const path = `${dir}/not-a-socket`;
  await Deno.writeTextFile(path, "keep me\n");
  const { cmd, args } = memrepCommand();
  const out = await new Deno.Command(cmd, {
    args: [...args, "serve", "-s", path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  try {
    ok(out.code !== 0);
    match(new TextDecoder().decode(out.stderr), /cannot listen on .*not-a-socket/);
    equal(await Deno.readTextFile(path), "keep me\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const FLUSH_CASES = [
  "flush_all",
  "flush_all 10",
  "flush_all noreply",
  "flush_all 0 noreply",
  "flush_all abc",
  "flush_all abc noreply",
  "flush_all -1",
  "flush_all 1 2 3",
];

/** Each case then `mn`, so a silent reply shows as just "MN"; then binary flush and flushq. */
async function flushReplies(port: number): Promise<string[]> {
  const c = await connect(port);
  const out: string[] = [];
  for (const cmd of FLUSH_CASES) out.push(await c.request(`${cmd}\r\nmn`, "MN\r\n"));
  // A connection's first byte picks its protocol: binary on a new one.
  const b = await connect(port);
  await b.send(
    new Uint8Array([
      ...packet({ op: OP.FLUSH, opaque: 0xdead }),
      ...packet({ op: OP.FLUSHQ, opaque: 0xbeef, extras: u32Extras(10) }),
      ...packet({ op: OP.NOOP }),
    ]),
  );
  const raw = await b.readUntil((r) => (r.length >= 2 * 37 + 24 ? r.length : -1), 3000);
  await b.close();
  out.push(Array.from(raw, (x) => x.toString(16).padStart(2, "0")).join(""));
  const s = await c.stats();
  out.push(`cmd_flush ${s.get("cmd_flush")}`);
  out.push(`flush_enabled ${(await c.stats("settings")).get("flush_enabled")}`);
  await c.close();
  return out;
}

Deno.test("serve -F refuses flush_all as memcached does, data kept", async () => {
  const server = await startMemrep(["serve", "-F"]);
  const c = await connect(server.port);
  try {
    equal(await c.request("set k 0 0 1\r\nx"), "STORED\r\n");
    const ours = await flushReplies(server.port);
    equal(ours[0], "CLIENT_ERROR flush_all not allowed\r\nMN\r\n");
    equal(ours[2], "MN\r\n");
    equal(await c.request("get k", "END\r\n"), "VALUE k 0 1\r\nx\r\nEND\r\n");
    equal(ours.at(-1), "flush_enabled no");
    if (haveBinary("memcached")) {
      const mc = await startMemcached(["-F"]);
      try {
        const theirs = await flushReplies(mc.port);
        for (let i = 0; i < theirs.length; i++) equalBytes(ours[i], theirs[i], `case ${i}`);
      } finally {
        await mc.stop();
      }
    } else console.log("SKIP (memcached not installed): the comparison with memcached -F");
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test({
  name: "serve -s/-a: stats settings domain_socket and umask as memcached shows them",
  ignore: !haveBinary("memcached"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep_unix_" });
    const servers: ProcessHandle[] = [];
    try {
      const rows: string[][] = [];
      for (const memcached of [false, true]) {
        const path = `${dir}/${memcached ? "mc" : "memrep"}.sock`;
        const p = await startOnSocket(path, ["-a", "0640"], memcached);
        servers.push(p);
        const c = await connectUnix(path);
        const s = await c.stats("settings");
        await c.close();
        rows.push([s.get("domain_socket")!.replace(path, "PATH"), s.get("umask")!]);
        equal(Deno.lstatSync(path).mode! & 0o777, 0o640);
      }
      equal(rows[0].join(" "), rows[1].join(" "));
    } finally {
      for (const s of servers) await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "serve -s: stats conns names the socket path and a mid-value client as memcached does",
  ignore: !haveBinary("memcached"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep_unix_" });
    const servers: ProcessHandle[] = [];
    try {
      const shown: string[] = [];
      for (const memcached of [false, true]) {
        const path = `${dir}/${memcached ? "mc" : "memrep"}.sock`;
        servers.push(await startOnSocket(path, [], memcached));
        const asker = await connectUnix(path);
        const sender = await connectUnix(path);
        await sender.send("set foo 0 0 10\r\nab");
        // The half-sent value must have been read: memcached shows it as conn_nread.
        await waitUntil(
          async () => {
            const text = await asker.request("stats conns", "END\r\n");
            return text.includes("conn_nread");
          },
          "conn_nread shows",
          5000,
        );
        const text = await asker.request("stats conns", "END\r\n");
        await Promise.all([asker.close(), sender.close()]);
        // Ids are fds in memcached, counters in memrep; seconds vary: keep the rest.
        const ids = new Map<string, string>();
        shown.push(
          text.replaceAll(path, "PATH").replace(`unix:${path.slice(0, 26)}\r`, "unix:PATH26\r")
            .replace(/^STAT (\d+):/gm, (_, id) => {
              if (!ids.has(id)) ids.set(id, `<id${ids.size + 1}>`);
              return `STAT ${ids.get(id)}:`;
            })
            .replace(/secs_since_last_cmd \d+/g, "secs_since_last_cmd <n>"),
        );
      }
      // The two clients' accept order may differ between the servers: compare each one's lines.
      const blocks = (text: string) =>
        text.replace(/END\r\n$/, "").split(/(?=^STAT <id\d+>:addr )/m).map((b) =>
          b.replace(/<id\d+>/g, "<id>")
        ).sort();
      deepEqual(blocks(shown[0]), blocks(shown[1]));
    } finally {
      for (const s of servers) await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "serve -s: watch connevents names unix clients as memcached does (rip=unix transport=local)",
  ignore: !haveBinary("memcached"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep_unix_" });
    const servers: ProcessHandle[] = [];
    try {
      const shown: string[] = [];
      for (const memcached of [false, true]) {
        const path = `${dir}/${memcached ? "mc" : "memrep"}.sock`;
        servers.push(await startOnSocket(path, [], memcached));
        const w = await connectUnix(path);
        equal(await w.request("watch connevents"), "OK\r\n");
        const c = await connectUnix(path);
        equal(await c.request("version"), "VERSION 1.6.18\r\n");
        await c.send("quit\r\n");
        // The readiness probe's connection may be accepted late and interleave with c's
        // events: keep the first connection whose conn_new and conn_close were both seen.
        const opened = new Map<string, string>();
        let text = "";
        while (!text) {
          const line = await w.readUntilText((b) => b.indexOf(10) + 1 || -1, 5000);
          const fd = / cfd=(\d+)/.exec(line)?.[1] ?? "";
          if (line.includes("type=conn_new ")) opened.set(fd, line);
          else if (line.includes("type=conn_close ") && opened.has(fd)) {
            text = opened.get(fd) + line;
          }
        }
        await Promise.all([w.close(), c.close()]);
        shown.push(text.replace(/ts=\d+\.\d+ gid=\d+ /g, "").replace(/cfd=\d+/g, "cfd=<id>"));
      }
      equal(shown[0], shown[1]);
      equal(
        shown[1],
        "type=conn_new rip=unix rport=0 transport=local cfd=<id>\n" +
          "type=conn_close rip=unix rport=0 transport=local reason=normal cfd=<id>\n",
      );
    } finally {
      for (const s of servers) await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("serve -d -s: returns once the socket answers; the background server serves it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "memrep_unix_" });
  const path = `${dir}/d.sock`;
  const pidfile = `${dir}/pid`;
  let pid = 0;
  try {
    const r = await runMemrep(["serve", "-d", "-s", path, "-P", pidfile], { timeoutMs: 20_000 });
    equal(r.code, 0, r.stderr);
    pid = Number((await Deno.readTextFile(pidfile)).trim());
    const c = await connectUnix(path);
    equal(await c.request("set k 0 0 1\r\nx"), "STORED\r\n");
    equal(await c.request("get k", "END\r\n"), "VALUE k 0 1\r\nx\r\nEND\r\n");
    await c.close();
  } finally {
    if (pid > 0) {
      Deno.kill(pid, "SIGTERM");
      // The server removes its pid file as it exits.
      await waitUntil(
        () => {
          try {
            Deno.statSync(pidfile);
            return false;
          } catch {
            return true;
          }
        },
        "the background server to exit",
        10_000,
      );
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "serve -s: Dalli talks to memrep over the unix socket",
  ignore: !haveBinary("ruby"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep_unix_" });
    const path = `${dir}/dalli.sock`;
    const server = await startOnSocket(path, []);
    try {
      const script = `require "dalli"
c = Dalli::Client.new(ARGV[0])
c.set("h", {"x" => 1})
p c.get("h")
p c.incr("n", 1, 0, 5)
p c.incr("n", 2)
c.flush
p c.get("h")`;
      const out = await new Deno.Command("ruby", {
        args: ["-e", script, path],
        stdout: "piped",
        stderr: "piped",
      })
        .output();
      equal(
        new TextDecoder().decode(out.stdout),
        '{"x"=>1}\n5\n7\nnil\n',
        new TextDecoder().decode(out.stderr),
      );
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
