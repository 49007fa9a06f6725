/**
 * Unix-domain sockets in the proxy: nutcracker's `listen: /path [mode]` and
 * `servers: - /path:weight [name]`, given to real nutcracker and to `memrep
 * proxy -c`: a client over each socket gets the same replies, every key
 * lands on the same server, the socket files get the same permissions, a
 * socket file left at the path is replaced, the stats port names the
 * servers alike. And `memrep proxy --unix PATH [--unix-mode M]`.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import {
  binaryPath,
  connect,
  connectUnix,
  ignoreUnless,
  memrepCommand,
  type ProcessHandle,
  runMemrep,
  startMemcached,
  startNutcracker,
  startProcess,
  type TestConn,
  waitUntil,
} from "../helpers/mod.ts";
import { freePort } from "../helpers/ports.ts";
import { readStats } from "./nc_config.ts";
import { Ketama } from "../../lib/proxy/mod.ts";

/** memcached on a unix socket only (memcached -s turns TCP off). */
async function memcachedUnix(path: string): Promise<ProcessHandle> {
  const root = Deno.uid() === 0 ? ["-u", "root"] : [];
  const proc = await startProcess("memcached -s", binaryPath("memcached")!, [
    ...root,
    "-s",
    path,
    "-U",
    "0",
  ], 0);
  await untilConnects(path, proc);
  return proc;
}

async function untilConnects(path: string, proc: ProcessHandle): Promise<void> {
  await waitUntil(
    async () => {
      if (proc.exited()) throw new Error(`${proc.name} exited:\n${proc.outputLines().join("\n")}`);
      try {
        (await Deno.connect({ transport: "unix", path })).close();
        return true;
      } catch {
        return false;
      }
    },
    `${proc.name} on ${path}`,
    15_000,
  );
}

/** A socket file that nothing listens on any more (a server that is gone). */
function staleSocket(path: string): void {
  // Deno unlinks a listener's path on close: bind elsewhere, move it into place, then close.
  const l = Deno.listen({ transport: "unix", path: `${path}.tmp` });
  Deno.renameSync(`${path}.tmp`, path);
  l.close();
  ok(Deno.lstatSync(path).isSocket, `stale socket ${path} made`);
}

/** Every request line of a text script, pipelined, and the whole reply. */
async function script(c: TestConn, keys: string[]): Promise<string> {
  let out = "";
  for (const [i, k] of keys.entries()) {
    out += `set ${k} ${i} 0 ${k.length}\r\n${k}\r\n`;
  }
  out += `get ${keys.join(" ")}\r\n`;
  out += `incr ${keys[0]} 1\r\nset n 0 0 2\r\n41\r\nincr n 1\r\nappend n 0 0 1\r\nx\r\nget n\r\n`;
  out += `delete ${keys[1]}\r\ndelete ${keys[1]}\r\nget ${keys[1]}\r\nadd ${
    keys[2]
  } 0 0 1\r\nz\r\n`;
  out += "get nosuchkey\r\n";
  await c.send(out);
  const until = "VALUE n 0 3\r\n42x\r\nEND\r\nDELETED\r\nNOT_FOUND\r\nEND\r\nNOT_STORED\r\nEND\r\n";
  return await c.readUntilText(until, 10_000);
}

/** For each key, which of `conns` holds it (mg), then every backend flushed. */
async function placement(conns: TestConn[], keys: string[]): Promise<number[]> {
  const at: number[] = [];
  for (const k of keys) {
    let where = -1;
    for (const [i, c] of conns.entries()) {
      await c.send(`mg ${k}\r\n`);
      if ((await c.readLine()) === "HD") where = where === -1 ? i : -2;
    }
    at.push(where);
  }
  for (const c of conns) {
    await c.send("flush_all\r\n");
    equal(await c.readLine(), "OK");
  }
  return at;
}

function mode(path: string): number {
  return Deno.lstatSync(path).mode! & 0o777;
}

const NC =
  "nutcracker.yml unix sockets: listen /path [mode] and /path:weight servers, as nutcracker";
Deno.test({
  name: NC,
  ignore: ignoreUnless(NC, ["memcached", "nutcracker"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-unix-" });
    const m1 = `${dir}/m1.sock`;
    const procs: ProcessHandle[] = [];
    const direct: TestConn[] = [];
    try {
      const a = await memcachedUnix(m1);
      procs.push(a);
      const b = await startMemcached();
      procs.push(b);
      direct.push(await connectUnix(m1), await connect(b.port));
      const yaml = (who: string) =>
        [
          "alpha:",
          `  listen: ${dir}/${who}-alpha.sock 0666`,
          "  hash: fnv1a_64",
          "  distribution: ketama",
          "  servers:",
          `   - ${m1}:1`,
          `   - 127.0.0.1:${b.port}:1 tcp`,
          "beta:",
          `  listen: ${dir}/${who}-beta.sock`,
          "  distribution: modula",
          "  servers:",
          `   - ${m1}:2 one`,
          `   - 127.0.0.1:${b.port}:1`,
        ].join("\n") + "\n";
      const sockets = (who: string) => [`${dir}/${who}-alpha.sock`, `${dir}/${who}-beta.sock`];
      for (const who of ["nc", "mr"]) staleSocket(sockets(who)[0]);

      const nc = await startNutcracker(yaml("nc"), { waitPort: false });
      procs.push(nc);
      const ncStatsPort = Number(nc.argv[nc.argv.indexOf("-s") + 1]);
      const mrStats = freePort();
      const conf = `${dir}/mr.yml`;
      await Deno.writeTextFile(conf, yaml("mr"));
      const { cmd, args } = memrepCommand();
      const mr = await startProcess("memrep proxy -c", cmd, [
        ...args,
        "proxy",
        "-c",
        conf,
        "--stats-port",
        String(mrStats),
        "--stats-addr",
        "127.0.0.1",
        "-v",
      ], 0);
      procs.push(mr);
      for (const s of sockets("nc")) await untilConnects(s, nc);
      for (const s of sockets("mr")) await untilConnects(s, mr);

      const keys = Array.from({ length: 60 }, (_, i) => `key:${i}:${(i * 7919) % 1000}`);
      for (const [pool, socket] of [0, 1].entries()) {
        const ncConn = await connectUnix(sockets("nc")[socket]);
        const mrConn = await connectUnix(sockets("mr")[socket]);
        try {
          const theirs = await script(ncConn, keys);
          const kept = ["n", ...keys.filter((_, i) => i !== 1)]; // keys[1] was deleted
          const ncAt = await placement(direct, kept);
          const mine = await script(mrConn, keys);
          const mrAt = await placement(direct, kept);
          equal(mine, theirs, `pool ${pool}: replies over the socket`);
          ok(!ncAt.includes(-1) && !ncAt.includes(-2), `pool ${pool}: nutcracker placed every key`);
          ok(new Set(ncAt).size === 2, `pool ${pool}: keys on both servers`);
          deepEqual(mrAt, ncAt, `pool ${pool}: every key on nutcracker's server`);
        } finally {
          await ncConn.close();
          await mrConn.close();
        }
      }
      equal(mode(sockets("mr")[0]), 0o666, "listen: /path 0666");
      equal(mode(sockets("mr")[0]), mode(sockets("nc")[0]), "same mode as nutcracker's (0666)");
      equal(mode(sockets("mr")[1]), mode(sockets("nc")[1]), "no mode: the umask's, as nutcracker");

      const names = (doc: Record<string, unknown>, pool: string) =>
        Object.entries(doc[pool] as Record<string, unknown>)
          .filter(([, v]) => typeof v === "object").map(([k]) => k).sort();
      const theirs = await readStats(ncStatsPort);
      const mine = await readStats(mrStats);
      for (const pool of ["alpha", "beta"]) {
        deepEqual(names(mine, pool), names(theirs, pool), `${pool}: stats port server names`);
      }
      ok(names(mine, "alpha").includes(`${m1}:`), "an unnamed socket server is 'path:'");
    } finally {
      for (const c of direct) await c.close();
      for (const p of procs.reverse()) await p.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const BAD =
  "nutcracker.yml unix sockets: a bad mode, a non-socket file at the path, a path with ':'";
Deno.test({
  name: BAD,
  ignore: ignoreUnless(BAD, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-unix-" });
    try {
      const conf = `${dir}/c.yml`;
      const run = async (listen: string, server = "127.0.0.1:11211:1") => {
        await Deno.writeTextFile(conf, `a:\n  listen: ${listen}\n  servers:\n   - ${server}\n`);
        return await runMemrep(["proxy", "-c", conf, "--stats-port", "0"]);
      };
      let r = await run(`${dir}/x.sock 0999`);
      equal(r.code, 2, r.stderr);
      ok(/invalid file permission '0999'/.test(r.stderr), r.stderr);
      r = await run(`${dir}/x.sock`, `${dir}/a:b.sock:1`);
      equal(r.code, 2, r.stderr);
      ok(/invalid format in "\/path\/unix_socket:weight \[name\]"/.test(r.stderr), r.stderr);
      // A regular file at the path is left alone (nutcracker would unlink it).
      const file = `${dir}/file`;
      await Deno.writeTextFile(file, "keep me");
      r = await run(file);
      equal(r.code, 2, r.stderr);
      ok(/exists and is not a socket/.test(r.stderr), r.stderr);
      equal(await Deno.readTextFile(file), "keep me");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const RELOAD =
  "nutcracker.yml unix sockets: SIGHUP moves a pool between TCP and sockets, new modes";
Deno.test({
  name: RELOAD,
  ignore: ignoreUnless(RELOAD, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-unix-" });
    const mc = await startMemcached();
    const a = `${dir}/a.sock`, b = `${dir}/b.sock`;
    const conf = `${dir}/c.yml`;
    const write = (listen: string) =>
      Deno.writeTextFile(
        conf,
        `alpha:\n  listen: ${listen}\n  servers:\n   - 127.0.0.1:${mc.port}:1\n`,
      );
    await write(`${a} 0600`);
    const { cmd, args } = memrepCommand();
    const statsPort = freePort();
    const mr = await startProcess("memrep proxy -c", cmd, [
      ...args,
      "proxy",
      "-c",
      conf,
      "--stats-port",
      String(statsPort),
      "--stats-addr",
      "127.0.0.1",
      "-v",
    ], 0);
    const works = async (path: string, value: string) => {
      const c = await connectUnix(path);
      try {
        equal(await c.request(`set k 0 0 ${value.length}\r\n${value}`), "STORED\r\n");
        equal(
          await c.request("get k", "END\r\n"),
          `VALUE k 0 ${value.length}\r\n${value}\r\nEND\r\n`,
        );
      } finally {
        await c.close();
      }
    };
    const reload = async () => {
      const from = mr.outputLines().length;
      mr.kill("SIGHUP");
      await mr.waitForLog(/reloaded/, 10_000, from);
    };
    try {
      await untilConnects(a, mr);
      equal(mode(a), 0o600);
      await works(a, "one");
      await write(`${a} 0666`); // same path, another mode: bound anew there
      await reload();
      equal(mode(a), 0o666);
      await works(a, "two");
      await write(b); // another path
      await reload();
      await works(b, "three");
      const port = freePort();
      await write(`127.0.0.1:${port}`); // to TCP
      await reload();
      const t = await connect(port);
      equal(await t.request("get k", "END\r\n"), "VALUE k 0 5\r\nthree\r\nEND\r\n");
      await t.close();
      await write(a); // and back to a socket, over the file the first listener left
      await reload();
      await works(a, "four");
    } finally {
      await mr.stop();
      await mc.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const CLI = "memrep proxy --unix PATH --unix-mode M, -s /path: clients over the socket, as " +
  "memcached direct; keys on nutcracker's ring";
Deno.test({
  name: CLI,
  ignore: ignoreUnless(CLI, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-unix-" });
    const sock = `${dir}/proxy.sock`;
    const m1 = `${dir}/m1.sock`;
    const mc = await startMemcached();
    const ref = await startMemcached();
    let proxy: ProcessHandle | undefined;
    let mcUnix: ProcessHandle | undefined;
    try {
      mcUnix = await memcachedUnix(m1);
      staleSocket(sock);
      const refused = await runMemrep(["proxy", "--unix", sock, "-p", "1", "-s", "127.0.0.1:1"]);
      equal(refused.code, 2, refused.stderr);
      const { cmd, args } = memrepCommand();
      proxy = await startProcess("memrep proxy --unix", cmd, [
        ...args,
        "proxy",
        "--unix",
        sock,
        "--unix-mode",
        "0660",
        "-s",
        `127.0.0.1:${mc.port}`,
        "-s",
        m1,
      ], 0);
      await untilConnects(sock, proxy);
      equal(mode(sock), 0o660);
      const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
      const c = await connectUnix(sock);
      const d = await connect(ref.port);
      const direct = [await connect(mc.port), await connectUnix(m1)];
      try {
        equal(await script(c, keys), await script(d, keys));
        // Placed as nutcracker places `- 127.0.0.1:port:1` and `- /path:1` (named `/path:`).
        const ring = new Ketama([`127.0.0.1:${mc.port}`, `${m1}:`].map((name) => ({
          name,
          weight: 1,
        })));
        const kept = ["n", ...keys.filter((_, i) => i !== 1)];
        const at = await placement(direct, kept);
        const want = kept.map((k) => ring.pick(new TextEncoder().encode(k), 0, k.length));
        deepEqual(at, want, "every key on its ring server");
        ok(new Set(at).size === 2, "keys on both servers");
      } finally {
        await c.close();
        await d.close();
        for (const x of direct) await x.close();
      }
    } finally {
      await proxy?.stop();
      await mcUnix?.stop();
      await mc.stop();
      await ref.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
