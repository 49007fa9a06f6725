/**
 * Zones: servers in several zones, each zone a full copy of the keys on
 * its own ring. Reads go to the proxy's zone, fall back to the other zones
 * when its server is down or restarted empty (repairing it); writes reach
 * the key's server in every zone; a restarted server of another zone is
 * refilled with its own keys only.
 */

import { equal, ok } from "../helpers/assert.ts";
import {
  connect,
  freePort,
  ignoreUnless,
  metaEnd,
  type ProcessHandle,
  retrievalEnd,
  startMemcached,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";
import { concatBytes } from "../helpers/bytes.ts";
import { OP, packet, roundTrip, text } from "../helpers/binary.ts";
import { getMany, proxyStats, seeded, setMany, sleep, waitForState } from "./cluster.ts";
import { fill, startConfigProxy } from "./nc_config.ts";
import { ConfigError, parseConfig } from "../../lib/proxy/mod.ts";
import { UsageError } from "../../lib/cli/flags.ts";
import { proxyMain } from "../../lib/cli/proxy.ts";

const KEYS = 600;

/** Every key each server holds (direct multi-gets). */
async function contents(
  ports: readonly number[],
  keys: readonly string[],
): Promise<Map<string, string>[]> {
  return await Promise.all(ports.map(async (port) => {
    const c = await connect(port);
    try {
      return await getMany(c, keys);
    } finally {
      await c.close();
    }
  }));
}

/** get_hits of a memcached. */
async function getHits(port: number): Promise<number> {
  const c = await connect(port);
  try {
    return Number((await c.stats()).get("get_hits"));
  } finally {
    await c.close();
  }
}

async function sumHits(ports: readonly number[]): Promise<number> {
  let n = 0;
  for (const p of ports) n += await getHits(p);
  return n;
}

/**
 * Reads every key through the proxy: all right, and answered by the local
 * zone (the backends' own get_hits). The other zone may answer only the
 * reads the proxy counts as fallbacks (a local server that stalled past the
 * timeout on a loaded machine), and those must stay rare.
 */
async function readsStayLocal(
  proxyPort: number,
  model: Map<string, string | undefined>,
  local: readonly number[],
  remote: readonly number[],
): Promise<void> {
  const fallbacks = async () => Number((await proxyStats(proxyPort)).get("fallbacks"));
  const before = [await sumHits(local), await sumHits(remote), await fallbacks()];
  equal(describe(await wrongReads(proxyPort, model)), "", "reads through the proxy");
  const remoteHits = await sumHits(remote) - before[1];
  const fell = await fallbacks() - before[2];
  equal(remoteHits, fell, "the other zone answered only fallbacks");
  ok(fell <= model.size / 20, `${fell} of ${model.size} reads fell back`);
  equal(await sumHits(local) - before[0] + remoteHits, model.size, "every read answered once");
}

/**
 * How the servers of one zone disagree with the model: keys on no server
 * or more than one (`layout`), and values that differ (`stale`: another
 * value, `lost`: missing, `resurrected`: deleted yet present).
 */
function zoneErrors(
  held: Map<string, string>[],
  model: Map<string, string | undefined>,
): { stale: string[]; lost: string[]; resurrected: string[]; layout: string[] } {
  const stale: string[] = [],
    lost: string[] = [],
    resurrected: string[] = [],
    layout: string[] = [];
  for (const [k, want] of model) {
    const on = held.filter((m) => m.has(k));
    if (on.length > 1) layout.push(k);
    const got = on[0]?.get(k);
    if (want === undefined) {
      if (got !== undefined) resurrected.push(k);
    } else if (got === undefined) lost.push(k);
    else if (got !== want) stale.push(k);
  }
  return { stale, lost, resurrected, layout };
}

/** Reads every key of the model through a proxy; the keys whose answer is not the model's. */
async function wrongReads(
  port: number,
  model: Map<string, string | undefined>,
): Promise<{ stale: string[]; lost: string[]; resurrected: string[] }> {
  const c = await connect(port);
  try {
    const got = await getMany(c, [...model.keys()]);
    const e = zoneErrors([got], model);
    return { stale: e.stale, lost: e.lost, resurrected: e.resurrected };
  } finally {
    await c.close();
  }
}

async function eventually(what: string, check: () => Promise<string>, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    last = await check();
    if (last === "") return;
    await sleep(100);
  }
  throw new Error(`${what}: ${last}`);
}

/**
 * mg, gets + cas and incr through the proxy on random keys of the model
 * (which they update): each must see the model's value.
 */
async function otherCommands(
  c: TestConn,
  port: number,
  model: Map<string, string | undefined>,
  rand: () => number,
  when: string,
): Promise<void> {
  const keys = [...model.keys()];
  const pick = () => keys[Math.floor(rand() * keys.length)];
  // The binary protocol takes the same routes: a pipeline of getkq, answered in order at the noop.
  const sample = Array.from({ length: 40 }, pick);
  const bin = await connect(port);
  try {
    const got = await roundTrip(
      bin,
      concatBytes(...sample.map((key) => packet({ op: OP.GETKQ, key }))),
      10_000,
    );
    const found = new Map(got.map((r) => [text(r.key), text(r.value)]));
    for (const k of new Set(sample)) equal(found.get(k), model.get(k), `binary getkq ${k} ${when}`);
  } finally {
    await bin.close();
  }
  for (let i = 0; i < 40; i++) {
    const k = pick();
    const want = model.get(k);
    const r = await c.request(`mg ${k} v`, metaEnd);
    const expected = want === undefined ? "EN\r\n" : `VA ${want.length}\r\n${want}\r\n`;
    equal(r, expected, `mg ${k} ${when}`);
  }
  for (let i = 0; i < 20; i++) {
    const k = pick();
    const want = model.get(k);
    const r = await c.request(`gets ${k}`, retrievalEnd);
    if (want === undefined) {
      equal(r, "END\r\n", `gets ${k} ${when}`);
      continue;
    }
    const m = /^VALUE \S+ 0 \d+ (\d+)\r\n([\s\S]*)\r\nEND\r\n$/.exec(r);
    ok(m !== null && m[2] === want, `gets ${k} ${when}: ${JSON.stringify(r)}`);
    const v = `cas-${i}-${Math.floor(rand() * 1e6)}`;
    const stored = await c.request(`cas ${k} 0 0 ${v.length} ${m![1]}\r\n${v}`);
    equal(stored, "STORED\r\n", `cas ${k} ${when}`);
    model.set(k, v);
  }
  for (let i = 0; i < 10; i++) {
    const k = `cnt:${Math.floor(rand() * 1e9)}`;
    equal(await c.request(`set ${k} 0 0 2\r\n10`), "STORED\r\n");
    equal(await c.request(`incr ${k} 5`), "15\r\n", `incr ${k} ${when}`);
    model.set(k, "15");
  }
}

function describe(e: Record<string, string[]>): string {
  return Object.entries(e).filter(([, v]) => v.length > 0).map(([k, v]) =>
    `${k} ${v.length} (${v.slice(0, 3).join(" ")})`
  ).join(", ");
}

for (const seed of [7, 8]) {
  Deno.test({
    name:
      `zones: reads hit the local zone; its server killed, the other zone answers; restarted empty, no stale value and keys come back (seed ${seed})`,
    ignore: ignoreUnless("zones failover", ["memcached"]),
    async fn() {
      const rand = seeded(seed);
      const procs: ProcessHandle[] = [];
      const zoneA = [await startMemcached(), await startMemcached()];
      const zoneB = [await startMemcached(), await startMemcached()];
      procs.push(...zoneA, ...zoneB);
      const aPorts = zoneA.map((p) => p.port), bPorts = zoneB.map((p) => p.port);
      const serverArgs = [
        ...aPorts.flatMap((p) => ["-s", `127.0.0.1:${p}@a`]),
        ...bPorts.flatMap((p) => ["-s", `127.0.0.1:${p}@b`]),
      ];
      // A generous timeout: a slow machine must not turn local reads into fallbacks.
      const fast = ["--timeout", "3000", "--retry", "200"];
      const proxyA = await startMemrep(["proxy", "-v", "--zone", "a", ...serverArgs, ...fast]);
      procs.push(proxyA);
      // The same servers seen from zone b: its reads stay in zone b.
      const proxyB = await startMemrep(["proxy", "--zone", "b", ...serverArgs, ...fast]);
      procs.push(proxyB);
      try {
        const model = new Map<string, string | undefined>();
        const value = () => `v${Math.floor(rand() * 1e9)}-${"x".repeat(Math.floor(rand() * 50))}`;
        for (let i = 0; i < KEYS; i++) {
          model.set(`z${seed}:${Math.floor(rand() * 1e9)}:${i}`, value());
        }
        const keys = [...model.keys()];
        const c = await connect(proxyA.port);
        const stored = await setMany(c, [...model] as [string, string][]);
        equal(stored.size, model.size, "every set through the proxy stored");

        // Writes reach every zone: each zone holds every key exactly once, with its value.
        for (const [name, ports] of [["a", aPorts], ["b", bPorts]] as const) {
          await eventually(
            `zone ${name} copy`,
            async () => describe(zoneErrors(await contents(ports, keys), model)),
          );
        }
        const layoutA = await contents(aPorts, keys);
        ok(layoutA[0].size > 0 && layoutA[1].size > 0, "keys are spread over zone a's ring");

        // Reads hit the local zone only (the backends' own get_hits).
        const views: [ProcessHandle, number[], number[]][] = [
          [proxyA, aPorts, bPorts],
          [proxyB, bPorts, aPorts],
        ];
        for (const [proxy, local, remote] of views) {
          await readsStayLocal(proxy.port, model, local, remote);
        }

        // kill -9 the local zone's first server: reads are answered by zone b.
        zoneA[0].kill("SIGKILL");
        await zoneA[0].stop();
        const e1 = await wrongReads(proxyA.port, model);
        equal(describe(e1), "", "reads with zone a's server dead");
        // Writes while it is down: overwrite, delete, add.
        const changed: [string, string][] = [];
        for (const k of keys) {
          const r = rand();
          if (r < 0.3) {
            const v = value();
            model.set(k, v);
            changed.push([k, v]);
          } else if (r < 0.45) {
            model.set(k, undefined);
            equal(await c.request(`delete ${k}`), "DELETED\r\n", `delete ${k}`);
          }
        }
        for (let i = 0; i < 100; i++) {
          const k = `z${seed}:new:${i}`;
          const v = value();
          model.set(k, v);
          changed.push([k, v]);
        }
        equal((await setMany(c, changed)).size, changed.length, "writes with a server down");
        await waitForState(proxyA.port, "server", aPorts[0], "down");
        await otherCommands(c, proxyA.port, model, rand, "zone a's server down");
        for (const proxy of [proxyA, proxyB]) {
          const e = await wrongReads(proxy.port, model);
          equal(describe(e), "", `reads after writes, zone a's server down (${proxy.port})`);
        }

        // Restart it empty on its port: no stale value, and its keys come back (repair).
        const back = await startMemcached([], { port: aPorts[0] });
        procs.push(back);
        await waitForState(proxyA.port, "server", aPorts[0], "up");
        for (let round = 0; round < 2; round++) {
          const e = await wrongReads(proxyA.port, model);
          equal(describe(e), "", `reads after the restart (round ${round})`);
        }
        await otherCommands(c, proxyA.port, model, rand, "after the restart");
        const allKeys = [...model.keys()];
        await eventually(
          "zone a after the restart",
          async () => describe(zoneErrors(await contents(aPorts, allKeys), model)),
        );
        await eventually(
          "zone b after the restart",
          async () => describe(zoneErrors(await contents(bPorts, allKeys), model)),
        );
        const s = await proxyStats(proxyA.port);
        equal(s.get("zone"), "a");
        equal(s.get("zones"), "2");
        equal(s.get(`server:127.0.0.1:${aPorts[0]}:zone`), "a");
        equal(s.get(`backup:127.0.0.1:${bPorts[0]}:zone`), "b");
        // Its keys came back (checked above) by read repairs or by the refill, whichever ran first.
        ok(
          Number(s.get("fallbacks")) > 0 &&
            Number(s.get("repairs")) + Number(s.get("refill_items")) > 0,
          `fell back, repaired or refilled (repairs ${s.get("repairs")}, refill_items ${
            s.get("refill_items")
          })`,
        );
        await c.close();
      } finally {
        await Promise.all(procs.map((p) => p.stop()));
      }
    },
  });
}

Deno.test({
  name:
    "zones from nutcracker.yml: a restarted server of another zone is refilled with its own keys only; then the local zone can die",
  ignore: ignoreUnless("zones refill", ["memcached"]),
  async fn() {
    const rand = seeded(11);
    const procs: ProcessHandle[] = [];
    const zoneA = [await startMemcached(), await startMemcached()];
    const zoneB = [await startMemcached(), await startMemcached()];
    procs.push(...zoneA, ...zoneB);
    const aPorts = zoneA.map((p) => p.port), bPorts = zoneB.map((p) => p.port);
    const metricsPort = freePort();
    const yaml = `alpha:
  listen: 127.0.0.1:{port}
  timeout: 3000
  server_retry_timeout: 200
  zone: a
  servers:
    - server: 127.0.0.1:${aPorts[0]}:1 a0
      zone: a
    - server: 127.0.0.1:${bPorts[0]}:1 b0
      zone: b
    - server: 127.0.0.1:${aPorts[1]}:1 a1
      zone: a
    - server: 127.0.0.1:${bPorts[1]}:1 b1
      zone: b
`;
    const proxy = await startConfigProxy(yaml, ["--metrics", `127.0.0.1:${metricsPort}`]);
    procs.push(proxy.proc);
    try {
      const model = new Map<string, string | undefined>();
      for (let i = 0; i < KEYS; i++) {
        model.set(`r:${Math.floor(rand() * 1e9)}:${i}`, `v${i}-${rand()}`);
      }
      const keys = [...model.keys()];
      const c = await connect(proxy.port);
      equal((await setMany(c, [...model] as [string, string][])).size, KEYS, "sets stored");
      await eventually(
        "zone b copy",
        async () => describe(zoneErrors(await contents(bPorts, keys), model)),
      );
      const b0Keys = (await contents([bPorts[0]], keys))[0];
      ok(b0Keys.size > 0 && b0Keys.size < KEYS, "zone b's keys are spread over its ring");

      // Zone info in stats proxy, the stats port JSON and /metrics.
      const s = await proxyStats(proxy.port);
      equal(s.get("zone"), "a");
      equal(s.get(`backup:127.0.0.1:${bPorts[1]}:zone`), "b");
      const doc = JSON.parse(await readAll(proxy.statsPort));
      equal(doc.alpha.zone, "a");
      equal(doc.alpha.a1.zone, "a");
      equal(doc.alpha.b0.zone, "b");
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      ok(
        metrics.includes(`backend="127.0.0.1:${bPorts[0]}",zone="b"`),
        "per-backend series carry the zone",
      );

      // kill -9 b0 and restart it empty; overwrite and delete meanwhile.
      zoneB[0].kill("SIGKILL");
      await zoneB[0].stop();
      const changed: [string, string][] = [];
      for (const k of keys) {
        const r = rand();
        if (r < 0.2) {
          const v = `w-${rand()}`;
          model.set(k, v);
          changed.push([k, v]);
        } else if (r < 0.3) {
          model.set(k, undefined);
          equal(await c.request(`delete ${k}`), "DELETED\r\n");
        }
      }
      equal((await setMany(c, changed)).size, changed.length, "writes with b0 dead");
      const back = await startMemcached([], { port: bPorts[0] });
      procs.push(back);
      // The refill gives b0 its keys back, and only its keys (layout: no key on two servers).
      await eventually(
        "zone b after b0's refill",
        async () => describe(zoneErrors(await contents(bPorts, keys), model)),
        20_000,
      );
      const runs = Number(
        (await proxyStats(proxy.port)).get(`backup:127.0.0.1:${bPorts[0]}:refill_runs`),
      );
      ok(runs >= 1, "b0 was refilled");

      // Now the whole local zone dies: zone b answers everything, nothing stale or lost.
      for (const p of zoneA) p.kill("SIGKILL");
      await Promise.all(zoneA.map((p) => p.stop()));
      for (let round = 0; round < 2; round++) {
        equal(describe(await wrongReads(proxy.port, model)), "", `reads, zone a dead (${round})`);
      }
      await c.close();
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
  },
});

/** Everything a server sends before closing (the stats port's JSON). */
async function readAll(port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let text = "";
  const dec = new TextDecoder();
  const buf = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += dec.decode(buf.subarray(0, n), { stream: true });
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed already */ }
  }
  return text + dec.decode();
}

Deno.test("zones: config and flags refuse servers partly in zones, and zones without placement", async () => {
  const pool = (servers: string, extra = "") =>
    `p:\n  listen: 127.0.0.1:0\n${extra}  servers:\n${servers}`;
  const zoned = "    - server: 127.0.0.1:1:1\n      zone: a\n";
  const plain = "    - 127.0.0.1:2:1\n";
  const refused = (yaml: string, pattern: RegExp) => {
    try {
      parseConfig(yaml);
    } catch (err) {
      ok(err instanceof ConfigError && pattern.test(err.message), String(err));
      return;
    }
    throw new Error(`accepted: ${yaml}`);
  };
  refused(pool(zoned + plain), /every server needs a zone/);
  refused(pool(zoned, "  distribution: random\n"), /distribution: random/);
  const ok2 = parseConfig(
    pool(zoned + "    - server: 127.0.0.1:3:1\n      zone: b\n", "  zone: b\n"),
  );
  equal(ok2[0].zones.join(","), "a,b");
  equal(ok2[0].zone, "b");
  for (
    const [args, pattern] of [
      [["-s", "127.0.0.1:1@a", "-s", "127.0.0.1:2"], /every server needs a zone/],
      [["-s", "127.0.0.1:1@"], /empty zone/],
      [["-s", "127.0.0.1:1", "--zone", ""], /empty zone/],
    ] as const
  ) {
    let err: unknown;
    try {
      await proxyMain([...args]);
    } catch (e) {
      err = e;
    }
    ok(err instanceof UsageError && pattern.test(err.message), `${args.join(" ")}: ${err}`);
  }
});

Deno.test({
  name: "zones: SIGHUP with another zone for the proxy moves its reads to that zone",
  ignore: ignoreUnless("zones reload", ["memcached"]),
  async fn() {
    const zoneA = [await startMemcached(), await startMemcached()];
    const zoneB = [await startMemcached()];
    const procs: ProcessHandle[] = [...zoneA, ...zoneB];
    const aPorts = zoneA.map((p) => p.port), bPorts = zoneB.map((p) => p.port);
    const yaml = (zone: string) =>
      `alpha:\n  listen: 127.0.0.1:{port}\n  timeout: 3000\n  zone: ${zone}\n  servers:\n` +
      aPorts.map((p) => `    - server: 127.0.0.1:${p}:1\n      zone: a\n`).join("") +
      bPorts.map((p) => `    - server: 127.0.0.1:${p}:1\n      zone: b\n`).join("");
    const proxy = await startConfigProxy(yaml("a"));
    procs.push(proxy.proc);
    try {
      const model = new Map<string, string | undefined>();
      for (let i = 0; i < 300; i++) model.set(`h:${i}`, `v${i}`);
      const c = await connect(proxy.port);
      equal((await setMany(c, [...model] as [string, string][])).size, 300);
      await c.close();
      await eventually(
        "zone b copy",
        async () => describe(zoneErrors(await contents(bPorts, [...model.keys()]), model)),
      );
      for (const [zone, local, remote] of [["a", aPorts, bPorts], ["b", bPorts, aPorts]] as const) {
        if (zone === "b") {
          const from = proxy.proc.outputLines().length;
          await Deno.writeTextFile(proxy.file, fill(yaml("b"), proxy.port));
          proxy.proc.kill("SIGHUP");
          await proxy.proc.waitForLog(/reloaded/, 10_000, from);
        }
        await readsStayLocal(proxy.port, model, local, remote);
        equal((await proxyStats(proxy.port)).get("zone"), zone);
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
  },
});

Deno.test({
  name:
    "zones with auto_eject_hosts: a hung local server that comes back serves no value overwritten while it was out",
  ignore: ignoreUnless("zones eject", ["memcached"]),
  async fn() {
    const zoneA = [await startMemcached(), await startMemcached()];
    const zoneB = [await startMemcached()];
    const procs: ProcessHandle[] = [...zoneA, ...zoneB];
    const aPorts = zoneA.map((p) => p.port), bPorts = zoneB.map((p) => p.port);
    const yaml = `alpha:\n  listen: 127.0.0.1:{port}\n  timeout: 500\n  auto_eject_hosts: true\n` +
      `  server_retry_timeout: 200\n  server_failure_limit: 1\n  zone: a\n  servers:\n` +
      aPorts.map((p, i) => `    - server: 127.0.0.1:${p}:1 a${i}\n      zone: a\n`).join("") +
      bPorts.map((p, i) => `    - server: 127.0.0.1:${p}:1 b${i}\n      zone: b\n`).join("");
    const proxy = await startConfigProxy(yaml);
    procs.push(proxy.proc);
    try {
      const model = new Map<string, string | undefined>();
      const round = async (tag: string) => {
        for (let i = 0; i < 300; i++) model.set(`e:${i}`, `${tag}-${i}`);
        const c = await connect(proxy.port);
        try {
          equal((await setMany(c, [...model] as [string, string][])).size, 300, `${tag} stored`);
        } finally {
          await c.close();
        }
      };
      await round("v1");
      await eventually(
        "zone b copy",
        async () => describe(zoneErrors(await contents(bPorts, [...model.keys()]), model)),
      );
      const onA0 = [...(await contents([aPorts[0]], [...model.keys()]))[0].keys()];
      ok(onA0.length > 1, "a0 holds keys");
      // a0 hangs: one write to it times out and a0 is marked down (only that key is dirty there).
      zoneA[0].kill("SIGSTOP");
      const c = await connect(proxy.port);
      equal(await c.request(`set ${onA0[0]} 0 0 2\r\nv2`, "\r\n", 10_000), "STORED\r\n");
      await c.close();
      model.set(onA0[0], "v2");
      await waitForState(proxy.port, "server", aPorts[0], "down");
      // Written while a0 is out of service: a0 never sees these.
      await round("v3");
      zoneA[0].kill("SIGCONT");
      await waitForState(proxy.port, "server", aPorts[0], "up");
      for (let r = 0; r < 2; r++) {
        equal(describe(await wrongReads(proxy.port, model)), "", `reads after a0 is back (${r})`);
      }
    } finally {
      zoneA[0].kill("SIGCONT");
      await Promise.all(procs.map((p) => p.stop()));
    }
  },
});
