/**
 * The proxy's memory per client connection, measured as its RSS: a client
 * that pipelines thousands of gets of a large value and never reads must
 * cost a bounded amount (the replies of requests already sent to a backend
 * are kept whatever their size, so the proxy may have only as many in
 * flight as its output bound holds), text and binary, while other clients
 * are served.
 * @module
 */

import {
  connect,
  equal,
  ignoreUnless,
  mulberry32,
  ok,
  startMemcached,
  type TestConn,
  waitUntil,
} from "../helpers/mod.ts";
import { OP, packet } from "../helpers/binary.ts";
import { startCluster } from "./cluster.ts";

const MB = 1048576;
const VALUE = "u".repeat(200 * 1024);

async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb[1]) * 1024;
}

/**
 * Samples the RSS of `pid` until `settled` (given each sample) says the
 * process has settled, pausing `pauseMs` between samples; returns the peak.
 */
async function peakRss(
  pid: number,
  settled: (now: number) => Promise<boolean>,
  pauseMs: number,
  what: string,
  timeoutMs: number,
): Promise<number> {
  let peak = 0;
  await waitUntil(
    async () => {
      const now = await rss(pid);
      peak = Math.max(peak, now);
      const done = await settled(now);
      await new Promise((r) => setTimeout(r, pauseMs));
      return done;
    },
    what,
    timeoutMs,
  );
  return Math.max(peak, await rss(pid));
}

for (const protocol of ["text", "binary"] as const) {
  const NAME =
    `proxy bounds a ${protocol} client that pipelines 4,000 gets of 200 KB and never reads`;
  Deno.test({
    name: NAME,
    ignore: Deno.build.os !== "linux" || ignoreUnless(NAME, ["memcached"]),
    async fn() {
      const cluster = await startCluster({ servers: 1, backups: 1 });
      const other = await connect(cluster.proxy.port);
      const backend = await connect(cluster.servers[0].port);
      let hog: Deno.Conn | undefined;
      try {
        equal(await other.request(`set big 0 0 ${VALUE.length}\r\n${VALUE}`), "STORED\r\n");
        const before = await rss(cluster.proxy.pid);
        const one = protocol === "text"
          ? new TextEncoder().encode("get big\r\n")
          : packet({ op: OP.GETK, key: "big" });
        const batch = new Uint8Array(one.length * 4000);
        for (let i = 0; i < 4000; i++) batch.set(one, i * one.length);
        hog = await Deno.connect({ hostname: "127.0.0.1", port: cluster.proxy.port });
        // Never awaited to the end: the proxy stops reading once its output bound is reached.
        hog.write(batch).catch(() => {});
        let gets = -1;
        const peak = await peakRss(
          cluster.proxy.pid,
          async () => {
            const now = Number((await backend.stats()).get("cmd_get"));
            const stuck = now === gets;
            gets = now;
            return stuck;
          },
          400,
          "the non-reading client to stall",
          15_000,
        );
        ok(gets < 1000, `gets sent to the backend while their replies were unread: ${gets}`);
        ok(
          peak - before < 150 * MB,
          `proxy RSS grew ${((peak - before) / MB).toFixed(0)} MB for 4,000 unread 200 KB replies`,
        );
        equal(
          await other.request("get big", "END\r\n"),
          `VALUE big 0 ${VALUE.length}\r\n${VALUE}\r\nEND\r\n`,
        );
      } finally {
        hog?.close();
        await Promise.all([other.close(), backend.close()]);
        await cluster.stop();
      }
    },
  });
}

/** Distinct keys of the long multi-gets below, and their values' size (about 200 KB). */
const LONG_DISTINCT = 120;
const LONG_VALUE = 200 * 1024;

/** Key `i` of the long multi-gets; its value is its letter, repeated, a few bytes short of 200 KB. */
function longItem(i: number): [string, Uint8Array] {
  return [`long:${i}`, new Uint8Array(LONG_VALUE - (i % 5) * 3).fill(97 + (i % 26))];
}

/**
 * `gets` pipelined get lines of `keys` keys each (random order, duplicates,
 * 2 % misses) and the exact length of memcached's replies to all of them.
 */
function longGets(seed: number, gets: number, keys: number): [Uint8Array, number] {
  const rand = mulberry32(seed);
  let text = "", total = 0;
  for (let g = 0; g < gets; g++) {
    const ask: string[] = [];
    for (let k = 0; k < keys; k++) {
      if (rand() < 0.02) {
        ask.push(`absent:${k}`);
        continue;
      }
      const i = Math.floor(rand() * LONG_DISTINCT);
      const [key, value] = longItem(i);
      ask.push(key);
      total += `VALUE ${key} ${i} ${value.length}\r\n`.length + value.length + 2;
    }
    text += `get ${ask.join(" ")}\r\n`;
    total += "END\r\n".length;
  }
  return [new TextEncoder().encode(text), total];
}

/** Reads `total` bytes from each of `a` and `b`; true when they are the same bytes. */
async function sameBytes(a: Deno.Conn, b: Deno.Conn, total: number): Promise<boolean> {
  const readInto = async (c: Deno.Conn, pending: Uint8Array[], have: number) => {
    const chunk = new Uint8Array(1 << 20);
    const n = await c.read(chunk);
    if (n === null) throw new Error(`connection ended after ${have} of ${total} bytes`);
    pending.push(chunk.subarray(0, n));
    return n;
  };
  const pa: Uint8Array[] = [], pb: Uint8Array[] = [];
  let ha = 0, hb = 0, compared = 0;
  const take = (p: Uint8Array[], n: number) => {
    const out = new Uint8Array(n);
    let w = 0;
    while (w < n) {
      const head = p[0];
      const k = Math.min(head.length, n - w);
      out.set(head.subarray(0, k), w);
      w += k;
      if (k === head.length) p.shift();
      else p[0] = head.subarray(k);
    }
    return out;
  };
  while (compared < total) {
    if (ha <= hb && ha < total) ha += await readInto(a, pa, ha);
    else if (hb < total) hb += await readInto(b, pb, hb);
    const n = Math.min(ha, hb) - compared;
    if (n <= 0) continue;
    const x = take(pa, n), y = take(pb, n);
    for (let i = 0; i < n; i++) if (x[i] !== y[i]) return false;
    compared += n;
  }
  return ha === total && hb === total;
}

const LONG_NAME =
  "proxy bounds a client that pipelines gets of 2,000 keys of 200 KB and never reads; then reads them as memcached's";
Deno.test({
  name: LONG_NAME,
  ignore: Deno.build.os !== "linux" || ignoreUnless(LONG_NAME, ["memcached"]),
  async fn() {
    const cluster = await startCluster({
      servers: 3,
      backups: 1,
      memcachedArgs: ["-m", "64"],
      proxyArgs: ["--timeout", "5000", "--retry", "200"],
    });
    const direct = await startMemcached(["-m", "64"]);
    const conns: TestConn[] = [];
    let hog: Deno.Conn | undefined, ref: Deno.Conn | undefined;
    try {
      for (const port of [cluster.proxy.port, direct.port]) {
        const c = await connect(port);
        conns.push(c);
        for (let i = 0; i < LONG_DISTINCT; i++) {
          const [key, value] = longItem(i);
          const head = new TextEncoder().encode(`set ${key} ${i} 0 ${value.length}\r\n`);
          const cmd = new Uint8Array(head.length + value.length + 2);
          cmd.set(head);
          cmd.set(value, head.length);
          cmd.set([13, 10], head.length + value.length);
          equal(await c.request(cmd, "\r\n", 10_000), "STORED\r\n");
        }
      }
      const backends = await Promise.all(
        [...cluster.servers, ...cluster.backups].map((s) => connect(s.port)),
      );
      conns.push(...backends);
      const keysAsked = async () => {
        let n = 0;
        for (const b of backends) n += Number((await b.stats()).get("cmd_get"));
        return n;
      };
      const GETS = 3, KEYS = 2000;
      const [batch, total] = longGets(11, GETS, KEYS);
      const before = await rss(cluster.proxy.pid);
      const asked = await keysAsked();
      hog = await Deno.connect({ hostname: "127.0.0.1", port: cluster.proxy.port });
      hog.write(batch).catch(() => {});
      let gets = -1;
      const peak = await peakRss(
        cluster.proxy.pid,
        async () => {
          const now = await keysAsked();
          const stuck = now === gets;
          gets = now;
          return stuck;
        },
        400,
        "the non-reading client to stall",
        15_000,
      );
      // One part in flight plus the connection's unsent bound (4-8 MB), a few copies of each
      // (backend read buffers, the part's arena, the output): well under 64 MB; the whole
      // pipeline is 1.2 GB, one get alone 400 MB.
      ok(
        peak - before < 64 * MB,
        `proxy RSS grew ${
          ((peak - before) / MB).toFixed(0)
        } MB for ${GETS} unread gets of ${KEYS} keys`,
      );
      ok(gets - asked < KEYS, `keys fetched while the replies were unread: ${gets - asked}`);
      // Then it reads: every byte as memcached's reply to the same pipeline, nothing more.
      ref = await Deno.connect({ hostname: "127.0.0.1", port: direct.port });
      ref.write(batch).catch(() => {});
      ok(await sameBytes(hog, ref, total), "the proxy's replies differ from memcached's");
      await hog.write(new TextEncoder().encode("version\r\n"));
      const tail = new Uint8Array(64);
      const n = await hog.read(tail);
      equal(new TextDecoder().decode(tail.subarray(0, n ?? 0)), "VERSION 1.6.18\r\n");
    } finally {
      hog?.close();
      ref?.close();
      await Promise.all(conns.map((c) => c.close()));
      await direct.stop();
      await cluster.stop();
    }
  },
});

const PIPE_NAME =
  "proxy bounds a client that pipelines 60 gets of 500 keys of 10 KB before any reply and never reads; then reads them as memcached's";
Deno.test({
  name: PIPE_NAME,
  ignore: Deno.build.os !== "linux" || ignoreUnless(PIPE_NAME, ["memcached"]),
  async fn() {
    // Before its first reply a connection may have 64 requests in flight: 64 whole multi-gets
    // of 5 MB each, unread, were all held (and of 200 MB each, 12 GB). Those behind the first
    // now go in parts, each fetched in its turn.
    const cluster = await startCluster({ servers: 2, backups: 1, memcachedArgs: ["-m", "64"] });
    const direct = await startMemcached(["-m", "64"]);
    const conns: TestConn[] = [];
    let hog: Deno.Conn | undefined, ref: Deno.Conn | undefined;
    const seed = Math.floor(Math.random() * 1e9);
    try {
      const rand = mulberry32(seed);
      const DISTINCT = 100, SIZE = 10 * 1024, GETS = 60, KEYS = 500;
      for (const port of [cluster.proxy.port, direct.port]) {
        const c = await connect(port);
        conns.push(c);
        for (let i = 0; i < DISTINCT; i++) {
          const value = String.fromCharCode(97 + (i % 26)).repeat(SIZE - i);
          equal(await c.request(`set p:${i} ${i} 0 ${value.length}\r\n${value}`), "STORED\r\n");
        }
      }
      let text = "", total = 0;
      for (let g = 0; g < GETS; g++) {
        const keys: string[] = [];
        for (let k = 0; k < KEYS; k++) {
          const i = Math.floor(rand() * (DISTINCT + 2));
          keys.push(`p:${i}`);
          if (i < DISTINCT) total += `VALUE p:${i} ${i} ${SIZE - i}\r\n`.length + SIZE - i + 2;
        }
        text += `get ${keys.join(" ")}\r\n`;
        total += 5;
      }
      const batch = new TextEncoder().encode(text);
      const before = await rss(cluster.proxy.pid);
      hog = await Deno.connect({ hostname: "127.0.0.1", port: cluster.proxy.port });
      hog.write(batch).catch(() => {});
      let last = -1;
      const peak = await peakRss(
        cluster.proxy.pid,
        (now) => {
          const stuck = Math.abs(now - last) < MB;
          last = now;
          return Promise.resolve(stuck);
        },
        500,
        "the proxy's memory to settle",
        20_000,
      );
      // One whole 5 MB reply (a few copies) and the connection's unsent bound: well under
      // 150 MB; all 60 held were 300 MB and more.
      ok(
        peak - before < 150 * MB,
        `proxy RSS grew ${
          ((peak - before) / MB).toFixed(0)
        } MB for ${GETS} unread gets (seed ${seed})`,
      );
      ref = await Deno.connect({ hostname: "127.0.0.1", port: direct.port });
      ref.write(batch).catch(() => {});
      ok(
        await sameBytes(hog, ref, total),
        `the proxy's replies differ from memcached's (seed ${seed})`,
      );
    } finally {
      hog?.close();
      ref?.close();
      await Promise.all(conns.map((c) => c.close()));
      await direct.stop();
      await cluster.stop();
    }
  },
});
