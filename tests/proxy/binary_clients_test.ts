/**
 * Real binary protocol clients through `memrep proxy` (two memcached
 * primaries and a backup): pylibmc (binary=True), ruby Dalli 3 and memjs
 * from npm run get/set/multi-get/cas/incr/append/touch/delete/flush and
 * must see memcached's semantics; afterwards the backup holds what they
 * wrote.
 */

import memjs from "npm:memjs@1.3.2";
import { Buffer } from "node:buffer";
import { deepEqual, equal, eventually, ok } from "../helpers/assert.ts";
import { ignoreUnless, ignoreUnlessPython, runCommand } from "../helpers/process.ts";
import { type Cluster, directGet, startCluster } from "./cluster.ts";

async function withCluster(fn: (c: Cluster) => Promise<void>): Promise<void> {
  const cluster = await startCluster({ servers: 2, backups: 1 });
  try {
    await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

const PYLIBMC_SCRIPT = `
import os, pylibmc
mc = pylibmc.Client(["127.0.0.1:" + os.environ["PORT"]], binary=True, behaviors={"cas": True})
keys = ["py:%d" % i for i in range(50)]
for i, k in enumerate(keys):
    assert mc.set(k, "v%d" % i, time=100)
got = mc.get_multi(keys + ["py:none1", "py:none2"])
assert got == {k: "v%d" % i for i, k in enumerate(keys)}, got
assert mc.set("py:b", b"\\x00\\x01bytes")
assert mc.get("py:b") == b"\\x00\\x01bytes"
v, cas = mc.gets("py:0")
assert v == "v0" and cas > 0
assert mc.cas("py:0", "beta", cas)
assert not mc.cas("py:0", "gamma", cas)
assert mc.get("py:0") == "beta"
assert mc.add("py:0", "x") is False
assert mc.replace("py:0", "delta")
mc.set("py:n", 10)
assert mc.incr("py:n", 5) == 15
assert mc.decr("py:n", 20) == 0
try:
    mc.incr("py:none", 1)
    raise SystemExit("incr of a missing key must fail")
except pylibmc.NotFound:
    pass
assert mc.append("py:0", "-tail")
assert mc.prepend("py:0", "head-")
assert mc.get("py:0") == "head-delta-tail"
assert mc.touch("py:0", 1000)
assert mc.delete("py:1")
assert mc.get("py:1") is None
assert not mc.delete("py:1")
big = "z" * 500000
assert mc.set("py:big", big)
assert mc.get("py:big") == big
mc.set("py:kept", "kept")
print("ok")
`;

const PYLIBMC = "proxy works with pylibmc in binary mode";
Deno.test({
  name: PYLIBMC,
  ignore: ignoreUnless(PYLIBMC, ["memcached"]) ||
    ignoreUnlessPython(PYLIBMC, "pylibmc"),
  async fn() {
    await withCluster(async (cluster) => {
      const r = await runCommand("/usr/bin/python3", ["-c", PYLIBMC_SCRIPT], {
        PORT: String(cluster.proxy.port),
      });
      equal(r.stdout.trim(), "ok", r.stderr);
      equal(r.code, 0);
      await eventually(() => directGet(cluster.backups[0].port, "py:0"), "head-delta-tail");
      await eventually(() => directGet(cluster.backups[0].port, "py:1"), undefined);
      await eventually(() => directGet(cluster.backups[0].port, "py:n"), "0 ");
    });
  },
});

const DALLI_SCRIPT = `
require "dalli"
dc = Dalli::Client.new("127.0.0.1:#{ENV["PORT"]}", socket_timeout: 3)
keys = (0...50).map { |i| "rb:#{i}" }
keys.each_with_index { |k, i| raise "set" unless dc.set(k, "v#{i}", 100, raw: true) }
m = dc.get_multi(*keys, "rb:none")
raise "multi #{m}" unless m == keys.each_with_index.to_h { |k, i| [k, "v#{i}"] }
raise "get" unless dc.get("rb:0") == "v0"
v, cas = dc.get_cas("rb:0")
raise "gets" unless v == "v0" && cas > 0
raise "cas" unless dc.set_cas("rb:0", "gamma", cas, 0, raw: true)
raise "stale cas" if dc.set_cas("rb:0", "delta", cas, 0, raw: true)
raise "cas block" unless dc.cas("rb:0", 0, raw: true) { |old| old + "!" }
raise "after cas" unless dc.get("rb:0") == "gamma!"
raise "incr init" unless dc.incr("rb:n", 1, 0, 40) == 40
raise "incr" unless dc.incr("rb:n", 2) == 42
raise "decr" unless dc.decr("rb:n", 50) == 0
raise "incr miss" unless dc.incr("rb:none", 1).nil?
raise "append" unless dc.append("rb:1", "-tail")
raise "prepend" unless dc.prepend("rb:1", "head-")
raise "after append" unless dc.get("rb:1") == "head-v1-tail"
raise "touch" unless dc.touch("rb:1", 1000)
raise "gat" unless dc.gat("rb:1", 1000) == "head-v1-tail"
raise "delete" unless dc.delete("rb:2")
raise "deleted" unless dc.get("rb:2").nil?
raise "add" unless dc.add("rb:c", "c", 0, raw: true)
raise "add twice" if dc.add("rb:c", "c", 0, raw: true)
raise "version" unless dc.version.values.first == "1.6.18"
raise "stats" unless dc.stats.values.first["curr_items"]
dc.flush
raise "flush" unless dc.get("rb:0").nil?
puts "ok"
`;

const DALLI = "proxy works with ruby Dalli 3 (binary protocol)";
Deno.test({
  name: DALLI,
  ignore: ignoreUnless(DALLI, ["memcached", "ruby"]),
  async fn() {
    await withCluster(async (cluster) => {
      const r = await runCommand("ruby", ["-e", DALLI_SCRIPT], {
        PORT: String(cluster.proxy.port),
      });
      equal(r.stdout.trim(), "ok", r.stderr);
      await eventually(() => directGet(cluster.backups[0].port, "rb:1"), undefined, "flushed");
    });
  },
});

const MEMJS = "proxy works with the npm memjs client (binary protocol)";
Deno.test({
  name: MEMJS,
  ignore: ignoreUnless(MEMJS, ["memcached"]),
  // memjs closes its sockets asynchronously.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withCluster(async (cluster) => {
      const client = memjs.Client.create(`127.0.0.1:${cluster.proxy.port}`, {
        timeout: 3,
        retries: 0,
      });
      try {
        ok(await client.set("js:a", "alpha", { expires: 100 }));
        equal((await client.get("js:a")).value?.toString(), "alpha");
        equal((await client.get("js:none")).value, null);
        // memjs' multi-get: concurrent gets pipelined on its one connection.
        const keys = Array.from({ length: 40 }, (_, i) => `js:${i}`);
        await Promise.all(keys.map((k, i) => client.set(k, Buffer.from([i, 0, 255]), {})));
        const got = await Promise.all([...keys, "js:none"].map((k) => client.get(k)));
        keys.forEach((_, i) => deepEqual([...got[i].value], [i, 0, 255]));
        equal(got[keys.length].value, null);
        equal(await client.add("js:a", "x", {}), false);
        ok(await client.replace("js:a", "gamma", {}));
        deepEqual(await client.increment("js:n", 1, { initial: 40 }), { success: true, value: 40 });
        deepEqual(await client.increment("js:n", 2, {}), { success: true, value: 42 });
        deepEqual(await client.decrement("js:n", 50, {}), { success: true, value: 0 });
        ok(await client.append("js:a", "-tail"));
        equal((await client.get("js:a")).value?.toString(), "gamma-tail");
        ok(await client.touch("js:a", 1000));
        equal(await client.touch("js:none", 1000), false);
        await eventually(() => directGet(cluster.backups[0].port, "js:a"), "gamma-tail");
        ok(await client.delete("js:a"));
        equal(await client.delete("js:a"), false);
        await eventually(() => directGet(cluster.backups[0].port, "js:a"), undefined);
        const stats = await new Promise<Record<string, string>>((resolve, reject) => {
          client.stats((err: Error | null, _server: string, s: Record<string, string> | null) =>
            err ? reject(err) : s && resolve(s)
          );
        });
        ok(Number(stats.curr_items) >= 1, `curr_items ${stats.curr_items}`);
        await client.flush();
        equal((await client.get("js:1")).value, null);
      } finally {
        client.close();
      }
    });
  },
});
