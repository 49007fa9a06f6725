/**
 * Real binary protocol clients drive `memrep serve`: pylibmc (binary=True),
 * ruby Dalli 3 (binary only), libmemcached's memccp/memccat --binary and
 * memjs from npm. Each does get/set/multi-get/cas/incr/append/touch/delete/
 * flush and must see memcached's semantics (memjs 1.3.2, the newest, has no
 * cas and no multi-get: concurrent gets pipeline on its one connection).
 */

import memjs from "npm:memjs@1.3.2";
import { Buffer } from "node:buffer";
import { deepEqual, equal, ok } from "../helpers/assert.ts";
import {
  haveBinary,
  ignoreUnless,
  ignoreUnlessPython,
  type ProcessHandle,
  runCommand,
  startMemcached,
  startMemrep,
} from "../helpers/process.ts";

/**
 * Run a client scenario on real memcached first (when installed: the
 * scenario's expectations are memcached's), then on memrep.
 */
async function onBoth(scenario: (port: number, server: string) => Promise<void>): Promise<void> {
  const starters: Array<() => Promise<ProcessHandle>> = [];
  if (haveBinary("memcached")) starters.push(() => startMemcached());
  starters.push(() => startMemrep(["serve", "-t", "1"]));
  for (const start of starters) {
    const server = await start();
    try {
      await scenario(server.port, server.name);
    } finally {
      await server.stop();
    }
  }
}

const PYLIBMC_SCRIPT = `
import os, sys, time, pylibmc
mc = pylibmc.Client(["127.0.0.1:" + os.environ["PORT"]], binary=True, behaviors={"cas": True})
assert mc.set("py:a", "alpha", time=100)
assert mc.get("py:a") == "alpha"
assert mc.set("py:b", b"\\x00\\x01bytes")
assert mc.get_multi(["py:a", "py:b", "py:none"]) == {"py:a": "alpha", "py:b": b"\\x00\\x01bytes"}
v, cas = mc.gets("py:a")
assert v == "alpha" and cas > 0
assert mc.cas("py:a", "beta", cas)
assert not mc.cas("py:a", "gamma", cas)
assert mc.get("py:a") == "beta"
assert mc.add("py:a", "x") is False
assert mc.replace("py:a", "delta")
mc.set("py:n", 10)
assert mc.incr("py:n", 5) == 15
assert mc.decr("py:n", 20) == 0
try:
    mc.incr("py:none", 1)
    raise SystemExit("incr of a missing key must fail")
except pylibmc.NotFound:
    pass
assert mc.append("py:a", "-tail")
assert mc.prepend("py:a", "head-")
assert mc.get("py:a") == "head-delta-tail"
assert mc.touch("py:a", 1000)
assert mc.delete("py:a")
assert mc.get("py:a") is None
assert not mc.delete("py:a")
big = "z" * 500000
assert mc.set("py:big", big)
assert mc.get("py:big") == big
assert mc.flush_all()
assert mc.get("py:b") is None
print("ok")
`;

const PYLIBMC = "serve works with pylibmc in binary mode";
Deno.test({
  name: PYLIBMC,
  ignore: ignoreUnlessPython(PYLIBMC, "pylibmc"),
  async fn() {
    const server = await startMemrep(["serve", "-t", "1"]);
    try {
      const r = await runCommand("/usr/bin/python3", ["-c", PYLIBMC_SCRIPT], {
        PORT: String(server.port),
      });
      equal(r.stdout.trim(), "ok", r.stderr);
      equal(r.code, 0);
    } finally {
      await server.stop();
    }
  },
});

const DALLI_SCRIPT = `
require "dalli"
dc = Dalli::Client.new("127.0.0.1:#{ENV["PORT"]}", socket_timeout: 3)
raise "set" unless dc.set("rb:a", "alpha", 100, raw: true)
raise "get" unless dc.get("rb:a") == "alpha"
dc.set("rb:b", "beta", 0, raw: true)
m = dc.get_multi("rb:a", "rb:b", "rb:none")
raise "multi #{m}" unless m == { "rb:a" => "alpha", "rb:b" => "beta" }
v, cas = dc.get_cas("rb:a")
raise "gets" unless v == "alpha" && cas > 0
raise "cas" unless dc.set_cas("rb:a", "gamma", cas, 0, raw: true)
raise "stale cas" if dc.set_cas("rb:a", "delta", cas, 0, raw: true)
raise "cas block" unless dc.cas("rb:a", 0, raw: true) { |old| old + "!" }
raise "after cas" unless dc.get("rb:a") == "gamma!"
raise "incr init" unless dc.incr("rb:n", 1, 0, 40) == 40
raise "incr" unless dc.incr("rb:n", 2) == 42
raise "decr" unless dc.decr("rb:n", 50) == 0
raise "incr miss" unless dc.incr("rb:none", 1).nil?
raise "append" unless dc.append("rb:b", "-tail")
raise "prepend" unless dc.prepend("rb:b", "head-")
raise "after append" unless dc.get("rb:b") == "head-beta-tail"
raise "touch" unless dc.touch("rb:b", 1000)
raise "gat" unless dc.gat("rb:b", 1000) == "head-beta-tail"
raise "delete" unless dc.delete("rb:b")
raise "deleted" unless dc.get("rb:b").nil?
raise "add" unless dc.add("rb:c", "c", 0, raw: true)
raise "add twice" if dc.add("rb:c", "c", 0, raw: true)
# Dalli 3.0.6 answers a failed replace with 0 (no CAS), a stored one with the CAS.
raise "replace miss" unless dc.replace("rb:none", "x", 0, raw: true) == 0
raise "version" unless dc.version.values.first == "1.6.18"
raise "stats" unless dc.stats.values.first["curr_items"]
dc.flush
raise "flush" unless dc.get("rb:a").nil?
puts "ok"
`;

const DALLI = "serve works with ruby Dalli 3 (binary protocol)";
Deno.test({
  name: DALLI,
  ignore: ignoreUnless(DALLI, ["ruby"]),
  async fn() {
    await onBoth(async (port, server) => {
      const r = await runCommand("ruby", ["-e", DALLI_SCRIPT], { PORT: String(port) });
      equal(r.stdout.trim(), "ok", `${server}: ${r.stderr}`);
    });
  },
});

const MEMCP = "serve works with memccp/memccat --binary (libmemcached)";
Deno.test({
  name: MEMCP,
  ignore: ignoreUnless(MEMCP, ["memccp", "memccat"]),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-memcp-" });
    try {
      const contents = [0, 1, 2].map((i) => `contents of file ${i}\n`.repeat(100 * (i + 1)));
      const files = contents.map((_, i) => `${dir}/file${i}.txt`);
      for (let i = 0; i < 3; i++) await Deno.writeTextFile(files[i], contents[i]);
      await onBoth(async (port, server) => {
        const servers = `--servers=127.0.0.1:${port}`;
        const cp = await runCommand("memccp", ["--binary", servers, ...files]);
        equal(cp.code, 0, `${server}: ${cp.stderr}`);
        const names = ["file0.txt", "file1.txt", "file2.txt"];
        const cat = await runCommand("memccat", ["--binary", servers, ...names]);
        equal(cat.code, 0, `${server}: ${cat.stderr}`);
        // memccat ends each value with a newline of its own.
        ok(cat.stdout === contents.map((c) => c + "\n").join(""), `${server}: memccat output`);
        const miss = await runCommand("memccat", ["--binary", servers, "nothere"]);
        ok(miss.code !== 0, `${server}: memccat of a missing key fails`);
        if (haveBinary("memcflush")) {
          equal((await runCommand("memcflush", ["--binary", servers])).code, 0);
          ok(
            (await runCommand("memccat", ["--binary", servers, "file0.txt"])).code !== 0,
            "flushed",
          );
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "serve works with the npm memjs client (binary protocol)",
  // memjs closes its sockets asynchronously.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await onBoth(async (port, server) => {
      const client = memjs.Client.create(`127.0.0.1:${port}`, { timeout: 3, retries: 0 });
      try {
        await t.step(`${server}: set, get, get of a missing key`, async () => {
          ok(await client.set("js:a", "alpha", { expires: 100 }));
          equal((await client.get("js:a")).value?.toString(), "alpha");
          equal((await client.get("js:none")).value, null);
        });
        await t.step(`${server}: pipelined gets (memjs' multi-get)`, async () => {
          await client.set("js:b", Buffer.from([0, 1, 2, 255]), {});
          const [ga, gb, gn] = await Promise.all(
            ["js:a", "js:b", "js:none"].map((k) => client.get(k)),
          );
          equal(ga.value?.toString(), "alpha");
          deepEqual([...gb.value], [0, 1, 2, 255]);
          equal(gn.value, null);
        });
        await t.step(`${server}: add and replace`, async () => {
          equal(await client.add("js:a", "x", {}), false);
          ok(await client.add("js:c", "x", {}));
          ok(await client.replace("js:a", "gamma", {}));
        });
        await t.step(`${server}: increment with initial value, decrement`, async () => {
          deepEqual(await client.increment("js:n", 1, { initial: 40 }), {
            success: true,
            value: 40,
          });
          deepEqual(await client.increment("js:n", 2, {}), { success: true, value: 42 });
          deepEqual(await client.decrement("js:n", 50, {}), { success: true, value: 0 });
        });
        await t.step(`${server}: append, prepend, touch, delete`, async () => {
          ok(await client.append("js:a", "-tail"));
          ok(await client.prepend("js:a", "head-"));
          // memjs 1.3.2 sends prepend as an append (opcode 0x0e), and memcached appends.
          equal((await client.get("js:a")).value?.toString(), "gamma-tailhead-");
          ok(await client.touch("js:a", 1000));
          equal(await client.touch("js:none", 1000), false);
          ok(await client.delete("js:a"));
          equal(await client.delete("js:a"), false);
        });
        await t.step(`${server}: stats, flush`, async () => {
          const stats = await new Promise<Record<string, string>>((resolve, reject) => {
            client.stats((err: Error | null, _server: string, s: Record<string, string> | null) =>
              err ? reject(err) : s && resolve(s)
            );
          });
          ok(Number(stats.curr_items) >= 1);
          await client.flush();
          equal((await client.get("js:b")).value, null);
        });
      } finally {
        client.close();
      }
    });
  },
});
