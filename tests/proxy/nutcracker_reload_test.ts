/**
 * SIGHUP re-reads the nutcracker config: while a client runs pipelined
 * traffic, a server is added; no client error, no dropped connection, the
 * new server gets new keys and only the keys whose ketama position changed
 * move. A broken file is refused (logged) and the old config keeps serving.
 */

import { equal, ok } from "../helpers/assert.ts";
import { ignoreUnless, startMemcached, waitUntil } from "../helpers/mod.ts";
import { parseConfig, poolDistribution } from "../../lib/proxy/mod.ts";
import { exchange, fill, locate, readStats, setAll, startConfigProxy } from "./nc_config.ts";

function yaml(ports: number[]): string {
  return [
    "alpha:",
    "  listen: 127.0.0.1:{port}",
    "  distribution: ketama",
    "  timeout: 2000",
    "  servers:",
    ...ports.map((p) => `   - 127.0.0.1:${p}:1`),
    "",
  ].join("\n");
}

/** Pipelined set+get batches on one connection until `stop.done`; counts errors and batches. */
async function traffic(port: number, stop: { done: boolean; batches: number }) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const buf = new Uint8Array(65536);
  let batches = 0, errors = 0, closed = false;
  let seed = 12345;
  try {
    while (!stop.done) {
      let req = "";
      for (let i = 0; i < 50; i++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        const k = `t${seed % 1000}`;
        req += `set ${k} 0 0 4\r\nabcd\r\nget ${k}\r\n`;
      }
      await conn.write(enc.encode(req));
      let text = "";
      let ends = 0;
      while (ends < 50) {
        const n = await conn.read(buf);
        if (n === null) {
          closed = true;
          return { batches, errors, closed };
        }
        const s = dec.decode(buf.subarray(0, n));
        text += s;
        ends = text.split("END\r\n").length - 1;
      }
      if (/ERROR/.test(text) || text.split("STORED\r\n").length - 1 !== 50) errors++;
      batches++;
      stop.batches = batches;
    }
    // Still open: a last request is answered.
    await conn.write(enc.encode("version\r\n"));
    const n = await conn.read(buf);
    if (n === null || !dec.decode(buf.subarray(0, n)).startsWith("VERSION")) closed = true;
  } catch {
    closed = true;
  } finally {
    conn.close();
  }
  return { batches, errors, closed };
}

const NAME =
  "SIGHUP reload: a server added under pipelined traffic, only moved keys move; a bad file keeps the old config";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const mc = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    const ports = mc.map((m) => m.port);
    const mr = await startConfigProxy(yaml(ports.slice(0, 2)));
    const stop = { done: false, batches: 0 };
    try {
      const running = traffic(mr.port, stop);
      const keys = Array.from({ length: 5000 }, (_, i) => `key:${i}:${(i * 7919) % 10007}`);
      await setAll(mr.port, keys, "v1");

      // Reload with a third server, while the traffic runs.
      await waitUntil(() => stop.batches > 3, "traffic before the reload");
      const atReload = stop.batches;
      let from = mr.proc.outputLines().length;
      await Deno.writeTextFile(mr.file, fill(yaml(ports), mr.port));
      mr.proc.kill("SIGHUP");
      await mr.proc.waitForLog(/reloaded/, 10_000, from);
      await waitUntil(() => stop.batches > atReload + 3, "traffic after the reload");

      // Expected owners under both rings (the ring is checked against nutcracker elsewhere).
      const owners = (p: number[]) => {
        const c = parseConfig(fill(yaml(p), 1))[0];
        const d = poolDistribution(c);
        const order = c.servers.map((s) => ports.indexOf(s.port));
        return keys.map((k) => {
          const b = new TextEncoder().encode(k);
          return order[d.pick(b, 0, b.length)];
        });
      };
      const before = owners(ports.slice(0, 2));
      const after = owners(ports);
      let moved = 0;
      for (let i = 0; i < keys.length; i++) {
        if (after[i] === 2) moved++;
        else equal(after[i], before[i], `key ${keys[i]} moved between old servers`);
      }
      ok(moved > keys.length * 0.2 && moved < keys.length * 0.45, `moved ${moved}`);

      // Through the proxy: unmoved keys still hit, moved ones miss (the new server is empty).
      const got = await exchange(
        mr.port,
        keys.map((k) => `mg ${k} v\r\n`).join("") + "mn\r\n",
        (t) => t.endsWith("MN\r\n"),
      );
      const lines = got.split("\r\n");
      let k = 0, wrong = 0;
      for (let i = 0; i < lines.length && k < keys.length; i++) {
        const hit = lines[i].startsWith("VA ");
        if (hit) i++;
        if (hit !== (after[k] !== 2)) wrong++;
        k++;
      }
      equal(k, keys.length);
      equal(wrong, 0, "keys found where the new ring does not put them, or lost");

      // New writes of the moved keys land on the new server.
      const movedKeys = keys.filter((_, i) => after[i] === 2);
      await setAll(mr.port, movedKeys, "v2");
      equal((await locate(ports, movedKeys, "v2")).filter((w) => w !== 2).length, 0);

      // A broken file is refused; the three-server config keeps serving.
      from = mr.proc.outputLines().length;
      await Deno.writeTextFile(
        mr.file,
        fill("alpha:\n  listen: 127.0.0.1:{port}\n  servers:\n   - nonsense\n", mr.port),
      );
      mr.proc.kill("SIGHUP");
      const line = await mr.proc.waitForLog(/reload refused/, 10_000, from);
      ok(/nonsense/.test(line), line);
      await setAll(mr.port, movedKeys, "v3");
      equal((await locate(ports, movedKeys, "v3")).filter((w) => w !== 2).length, 0);

      // Removing a server: its keys go back to the ring's other points.
      from = mr.proc.outputLines().length;
      await Deno.writeTextFile(mr.file, fill(yaml(ports.slice(0, 2)), mr.port));
      mr.proc.kill("SIGHUP");
      await mr.proc.waitForLog(/reloaded/, 10_000, from);
      await setAll(mr.port, movedKeys, "v4");
      const back = await locate(ports, movedKeys, "v4");
      equal(back.filter((w, i) => w !== before[keys.indexOf(movedKeys[i])]).length, 0);

      stop.done = true;
      const t = await running;
      equal(t.errors, 0, "client errors during reloads");
      equal(t.closed, false, "client connection dropped");
      ok(t.batches > 0, "traffic ran");
    } finally {
      stop.done = true;
      await mr.proc.stop();
      await Promise.all(mc.map((m) => m.stop()));
    }
  },
});

const EJECT =
  "auto_eject_hosts: a dead server leaves the ring, its keys go where a ring without it puts them";
Deno.test({
  name: EJECT,
  ignore: ignoreUnless(EJECT, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const mc = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    const ports = mc.map((m) => m.port);
    const conf = (p: number[]) =>
      yaml(p).replace(
        "  servers:",
        "  auto_eject_hosts: true\n  server_failure_limit: 1\n  server_retry_timeout: 60000\n  servers:",
      );
    const mr = await startConfigProxy(conf(ports));
    try {
      const keys = Array.from({ length: 3000 }, (_, i) => `ej:${i}`);
      await setAll(mr.port, keys, "a");
      equal((await locate(ports, keys, "a")).filter((w) => w < 0).length, 0);
      const from = mr.proc.outputLines().length;
      await mc[2].stop();
      // Requests for the dead server fail until it is marked down; then the ring drops it.
      await waitUntil(async () => {
        await exchange(
          mr.port,
          keys.slice(0, 200).map((k) => `get ${k}\r\n`).join(""),
          (_, n) => n >= 1,
        )
          .catch(() => "");
        return mr.proc.outputLines().slice(from).some((l) => /2 of 3 servers/.test(l));
      }, "the dead server leaving the ring");
      await setAll(mr.port, keys, "b");
      const where = await locate(ports.slice(0, 2), keys, "b");
      const c = parseConfig(fill(conf(ports.slice(0, 2)), 1))[0];
      const d = poolDistribution(c);
      const order = c.servers.map((s) => ports.indexOf(s.port));
      let wrong = 0;
      for (let i = 0; i < keys.length; i++) {
        const b = new TextEncoder().encode(keys[i]);
        if (order[d.pick(b, 0, b.length)] !== where[i]) wrong++;
      }
      equal(wrong, 0, "keys not where the two-server ring puts them");
    } finally {
      await mr.proc.stop();
      await Promise.all(mc.map((m) => m.stop()));
    }
  },
});

const POOLS =
  "SIGHUP reload: a pool added starts listening; a pool whose new address is taken is refused";
Deno.test({
  name: POOLS,
  ignore: ignoreUnless(POOLS, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const mc = await Promise.all([startMemcached(), startMemcached()]);
    const [a, b] = mc.map((m) => m.port);
    const alpha = `alpha:\n  listen: 127.0.0.1:{port}\n  servers:\n   - 127.0.0.1:${a}:1\n`;
    const beta = (listen: string) =>
      `beta:\n  listen: ${listen}\n  servers:\n   - 127.0.0.1:${b}:1\n`;
    const mr = await startConfigProxy(alpha);
    try {
      let from = mr.proc.outputLines().length;
      await Deno.writeTextFile(mr.file, fill(alpha + beta("127.0.0.1:{port2}"), mr.port, mr.port2));
      mr.proc.kill("SIGHUP");
      await mr.proc.waitForLog(/reloaded.*added beta/, 10_000, from);
      const keys = Array.from({ length: 300 }, (_, i) => `p${i}`);
      await setAll(mr.port2, keys, "b1");
      equal((await locate([a, b], keys, "b1")).filter((w) => w !== 1).length, 0);

      // beta moving onto a taken port (memcached a's): refused, beta keeps its address.
      from = mr.proc.outputLines().length;
      await Deno.writeTextFile(mr.file, fill(alpha + beta(`127.0.0.1:${a}`), mr.port));
      mr.proc.kill("SIGHUP");
      await mr.proc.waitForLog(/reload refused/, 10_000, from);
      await setAll(mr.port2, keys, "b2");
      await setAll(mr.port, keys, "a2");
      equal((await locate([a, b], keys, "b2")).filter((w) => w !== 1).length, 0);
      equal((await locate([a, b], keys, "a2")).filter((w) => w !== 0).length, 0);

      // beta renamed gamma on the same address: the listener and its clients stay.
      const client = await Deno.connect({ hostname: "127.0.0.1", port: mr.port2 });
      from = mr.proc.outputLines().length;
      await Deno.writeTextFile(
        mr.file,
        fill(alpha + beta("127.0.0.1:{port2}").replace("beta:", "gamma:"), mr.port, mr.port2),
      );
      mr.proc.kill("SIGHUP");
      await mr.proc.waitForLog(/reloaded/, 10_000, from);
      await client.write(new TextEncoder().encode("set r 0 0 1\r\nx\r\n"));
      const buf = new Uint8Array(64);
      const n = await client.read(buf);
      client.close();
      equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "STORED\r\n");
      const stats = await readStats(mr.statsPort);
      ok("gamma" in stats && !("beta" in stats), Object.keys(stats).join(","));
    } finally {
      await mr.proc.stop();
      await Promise.all(mc.map((m) => m.stop()));
    }
  },
});

const BACK =
  "without auto_eject_hosts a restarted server serves again at once, not after server_retry_timeout";
Deno.test({
  name: BACK,
  ignore: ignoreUnless(BACK, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let m = await startMemcached();
    const port = m.port;
    // server_retry_timeout left at nutcracker's default (30 s).
    const mr = await startConfigProxy(
      `alpha:\n  listen: 127.0.0.1:{port}\n  timeout: 500\n  servers:\n   - 127.0.0.1:${port}:1\n`,
    );
    try {
      await setAll(mr.port, ["k"], "1");
      await m.stop();
      // Failures mark it down.
      for (let i = 0; i < 3; i++) {
        await exchange(mr.port, "get k\r\n", (_, n) => n >= 1).catch(() => "");
      }
      m = await startMemcached([], { port });
      const started = Date.now();
      await waitUntil(
        async () => {
          const r = await exchange(mr.port, "set k 0 0 1\r\n2\r\n", (_, n) => n >= 1);
          return r === "STORED\r\n";
        },
        "the restarted server taking writes",
        10_000,
      );
      ok(Date.now() - started < 10_000);
    } finally {
      await mr.proc.stop();
      await m.stop();
    }
  },
});

const ADD_BACKUP =
  "SIGHUP reload: a backup added gets copies of new writes and serves reads when the primary is gone";
Deno.test({
  name: ADD_BACKUP,
  ignore: ignoreUnless(ADD_BACKUP, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const [a, b] = await Promise.all([startMemcached(), startMemcached()]);
    const base = `alpha:\n  listen: 127.0.0.1:{port}\n  server_failure_limit: 1\n  servers:\n` +
      `   - 127.0.0.1:${a.port}:1\n`;
    const mr = await startConfigProxy(base);
    try {
      const from = mr.proc.outputLines().length;
      await Deno.writeTextFile(
        mr.file,
        fill(base + `  backups:\n   - 127.0.0.1:${b.port}:1\n`, mr.port),
      );
      mr.proc.kill("SIGHUP");
      await mr.proc.waitForLog(/reloaded/, 10_000, from);
      const keys = Array.from({ length: 500 }, (_, i) => `bk${i}`);
      await setAll(mr.port, keys, "c");
      await waitUntil(
        async () => (await locate([b.port], keys, "c")).every((w) => w === 0),
        "copies on the added backup",
      );
      await a.stop();
      const got = await exchange(
        mr.port,
        keys.map((k) => `mg ${k} v\r\n`).join("") + "mn\r\n",
        (t) => t.endsWith("MN\r\n"),
      );
      equal(got.split("VA 1").length - 1, keys.length, "every key read from the backup");
    } finally {
      await mr.proc.stop();
      await Promise.all([a.stop(), b.stop()]);
    }
  },
});
