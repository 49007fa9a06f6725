/**
 * `memrep serve --metrics`: /metrics scraped from real processes and parsed
 * strictly; the values follow what clients did (one thread, -t 2 with
 * connections on every thread, a replicated pair), and HTTP edges.
 */

import {
  connect,
  deepEqual,
  equal,
  freePort,
  match,
  ok,
  runMemrep,
  startMemrep,
  waitUntil,
} from "../helpers/mod.ts";
import { startNode } from "../replication/pair.ts";
import { type PromFamily, sampleValue, scrape } from "./prom_parser.ts";

/** Reply timeout: generous, the machine may be loaded. */
const T = 10_000;

const ASCII = new TextEncoder();

/** Set `keys`, then get them plus `misses` unknown keys, spread over `conns` connections. */
async function workload(port: number, conns: number, keys: string[], misses: number) {
  const cs = await Promise.all(Array.from({ length: conns }, () => connect(port)));
  try {
    for (const [i, k] of keys.entries()) {
      equal(
        await cs[i % conns].request(`set ${k} 0 0 ${k.length}\r\n${k}`, "\r\n", T),
        "STORED\r\n",
      );
    }
    for (const [i, k] of keys.entries()) {
      const reply = await cs[i % conns].request(`get ${k}`, "END\r\n", T);
      equal(reply, `VALUE ${k} 0 ${k.length}\r\n${k}\r\nEND\r\n`);
    }
    for (let i = 0; i < misses; i++) {
      equal(
        await cs[i % conns].request(`get missing-${i}-${Math.random()}`, "END\r\n", T),
        "END\r\n",
      );
    }
  } finally {
    await Promise.all(cs.map((c) => c.close()));
  }
}

function value(f: Map<string, PromFamily>, name: string, labels?: Record<string, string>) {
  return sampleValue(f, name, labels);
}

function randomKeys(n: number): string[] {
  const tag = Math.random().toString(36).slice(2, 8);
  return Array.from({ length: n }, (_, i) => `k${tag}-${i}-${"x".repeat(i % 17)}`);
}

for (const threads of [1, 2]) {
  Deno.test(`serve metrics: -t ${threads}: hits, misses, items, bytes and sets follow the clients`, async () => {
    const mport = freePort();
    const node = await startMemrep([
      "serve",
      "-t",
      String(threads),
      "--metrics",
      `127.0.0.1:${mport}`,
    ]);
    try {
      const before = await scrape(mport);
      equal(before.contentType, "text/plain; version=0.0.4; charset=utf-8");
      equal(value(before.families, "memrep_threads"), threads);
      equal(value(before.families, "memrep_curr_items"), 0);
      for (
        const name of ["memrep_get_hits_total", "memrep_get_misses_total", "memrep_evictions_total"]
      ) {
        equal(before.families.get(name)?.type, "counter", name);
      }
      equal(before.families.get("memrep_curr_connections")?.type, "gauge");
      const n = 40 + Math.floor(Math.random() * 40), misses = 5 + Math.floor(Math.random() * 20);
      const keys = randomKeys(n);
      // Many connections: SO_REUSEPORT spreads them over the threads, every one must be counted.
      await workload(node.port, threads * 6, keys, misses);
      const after = await scrape(mport);
      const grew = (name: string) => value(after.families, name) - value(before.families, name);
      equal(grew("memrep_get_hits_total"), n);
      equal(grew("memrep_get_misses_total"), misses);
      equal(grew("memrep_cmd_get_total"), n + misses);
      equal(grew("memrep_cmd_set_total"), n);
      equal(value(after.families, "memrep_curr_items"), n);
      ok(value(after.families, "memrep_bytes") > keys.join("").length * 2);
      ok(grew("memrep_connections_total") >= threads * 6);
      // The same numbers `stats` reports.
      const c = await connect(node.port);
      const stats = await c.stats();
      await c.close();
      equal(Number(stats.get("get_hits")), value(after.families, "memrep_get_hits_total"));
      equal(Number(stats.get("curr_items")), value(after.families, "memrep_curr_items"));
      equal(after.families.has("memrep_replication_link_up"), false);
    } finally {
      await node.stop();
    }
  });
}

Deno.test("serve metrics: open connections are a gauge over every thread", async () => {
  const mport = freePort();
  const node = await startMemrep(["serve", "-t", "2", "--metrics", `127.0.0.1:${mport}`]);
  try {
    const open = async () => value((await scrape(mport)).families, "memrep_curr_connections");
    // The start-up probe's connection may still be closing: wait until none is open.
    await waitUntil(async () => await open() === 0, "no connection open");
    const cs = await Promise.all(Array.from({ length: 10 }, () => connect(node.port)));
    for (const c of cs) equal(await c.request("version", "\r\n", T), "VERSION 1.6.18\r\n");
    equal(await open(), 10);
    await Promise.all(cs.map((c) => c.close()));
    await waitUntil(
      async () => await open() === 0,
      "connections closed",
    );
  } finally {
    await node.stop();
  }
});

Deno.test("serve metrics: a replicated pair reports its link, changes and lag per peer", async () => {
  const replPort = freePort();
  const ma = freePort(), mb = freePort();
  const a = await startNode(replPort, ["--metrics", `127.0.0.1:${ma}`]);
  await a.proc.waitForLog(/^replication: listen/, 10_000);
  // Items written before the peer exists reach it by a full copy.
  const early = randomKeys(20 + Math.floor(Math.random() * 20));
  await workload(a.port, 2, early, 0);
  const b = await startNode(replPort, ["--metrics", `127.0.0.1:${mb}`]);
  try {
    await Promise.all([
      a.proc.waitForLog(/^replication: start/, 10_000),
      b.proc.waitForLog(/^replication: start/, 10_000),
    ]);
    const linkUp = async (port: number) => {
      const f = (await scrape(port)).families;
      const s = f.get("memrep_replication_link_up")?.samples ?? [];
      return s.length === 1 && s[0].value === 1;
    };
    await waitUntil(async () => await linkUp(ma) && await linkUp(mb), "both links up");
    const sentBefore = value((await scrape(ma)).families, "memrep_replication_changes_sent_total");
    const n = 30 + Math.floor(Math.random() * 30);
    const keys = randomKeys(n);
    await workload(a.port, 3, keys, 0);
    const fa = (await scrape(ma)).families;
    equal(value(fa, "memrep_replication_changes_sent_total") - sentBefore, n);
    const labels = fa.get("memrep_replication_link_up")!.samples[0].labels;
    ok(labels.peer.length > 0, "peer label");
    for (const name of ["memrep_replication_lag_seconds", "memrep_replication_lag_bytes"]) {
      equal(fa.get(name)?.type, "gauge", name);
      ok(value(fa, name) >= 0, name);
    }
    equal(fa.get("memrep_replication_full_copies_sent_total")?.type, "counter");
    await waitUntil(async () => {
      const fb = (await scrape(mb)).families;
      return value(fb, "memrep_curr_items") === n + early.length &&
        value(fb, "memrep_replication_changes_applied_total") >= n &&
        value(fb, "memrep_replication_full_copies_received_total") >= 1 &&
        value(fb, "memrep_replication_items_copied_received_total") >= early.length;
    }, "the peer got the full copy and every change");
    const copied = (await scrape(ma)).families;
    ok(value(copied, "memrep_replication_full_copies_sent_total") >= 1);
    ok(value(copied, "memrep_replication_items_copied_sent_total") >= early.length);
    // Acknowledged: no lag left.
    await waitUntil(
      async () => value((await scrape(ma)).families, "memrep_replication_lag_bytes") === 0,
      "lag back to 0",
    );
    // The peer goes away: the link gauge drops to 0 and the drop is counted.
    await b.proc.stop();
    await waitUntil(async () => {
      const f = (await scrape(ma)).families;
      return value(f, "memrep_replication_link_up") === 0 &&
        value(f, "memrep_replication_link_drops_total") >= 1;
    }, "link down after the peer stopped");
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("serve metrics: only GET /metrics; other paths 404, other methods 405", async () => {
  const mport = freePort();
  const node = await startMemrep(["serve", "-t", "1", "--metrics", `127.0.0.1:${mport}`]);
  try {
    const get = (path: string, method = "GET") =>
      fetch(`http://127.0.0.1:${mport}${path}`, { method }).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      });
    deepEqual(
      [
        await get("/metrics"),
        await get("/metrics?x=1"),
        await get("/"),
        await get("/metricsx"),
        await get("/metrics", "HEAD"),
        await get("/metrics", "POST"),
      ],
      [200, 200, 404, 404, 405, 405],
    );
    // Raw HTTP garbage on the metrics port never hurts the cache.
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: mport });
    await raw.write(ASCII.encode("\x00\xff GARBAGE \r\n\r\n"));
    raw.close();
    const c = await connect(node.port);
    equal(await c.request("set g 0 0 1\r\nv", "\r\n", T), "STORED\r\n");
    await c.close();
    equal(await get("/metrics"), 200);
  } finally {
    await node.stop();
  }
});

Deno.test("serve/proxy --metrics: a bad address or a taken port exits 2 with a message", async () => {
  for (const sub of ["serve", "proxy"]) {
    const base = sub === "serve" ? ["serve", "-p", "0"] : ["proxy", "-p", "0", "-s", "127.0.0.1:1"];
    for (const bad of ["nonsense", "127.0.0.1:", "127.0.0.1:99999", ":80"]) {
      const r = await runMemrep([...base, "--metrics", bad]);
      equal(r.code, 2, `${sub} --metrics ${bad}: ${r.stderr}`);
      match(r.stderr, /--metrics: expected host:port/);
    }
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const r = await runMemrep([
        ...base,
        "-l",
        "127.0.0.1",
        "--metrics",
        `127.0.0.1:${taken.addr.port}`,
      ]);
      equal(r.code, 2, r.stderr);
      match(r.stderr, /--metrics: cannot listen on/);
    } finally {
      taken.close();
    }
  }
});

Deno.test("serve metrics: scrapes during traffic parse, and counters never go back", async () => {
  const mport = freePort();
  const node = await startMemrep(["serve", "-t", "2", "--metrics", `127.0.0.1:${mport}`]);
  try {
    const keys = randomKeys(300);
    let done = false;
    const work = workload(node.port, 8, keys, 50).finally(() => done = true);
    const seen: number[][] = [];
    const names = ["memrep_get_hits_total", "memrep_cmd_get_total", "memrep_cmd_set_total"];
    while (!done) {
      const f = (await scrape(mport)).families; // throws on any format violation
      seen.push(names.map((n) => value(f, n)));
    }
    await work;
    const last = (await scrape(mport)).families;
    seen.push(names.map((n) => value(last, n)));
    for (let i = 1; i < seen.length; i++) {
      for (let j = 0; j < names.length; j++) {
        ok(
          seen[i][j] >= seen[i - 1][j],
          `${names[j]} went back: ${seen[i - 1][j]} -> ${seen[i][j]}`,
        );
      }
    }
    deepEqual(seen.at(-1), [300, 350, 300]);
    ok(seen.length > 1, "scraped during the traffic");
  } finally {
    await node.stop();
  }
});
