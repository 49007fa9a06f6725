/**
 * Large multi-gets through the proxy answer byte for byte as one memcached
 * holding the same items would: every get form, duplicates and misses,
 * values that look like protocol, keys spread over four primaries; and,
 * with a backup, a primary restarted empty loses nothing of a multi-get.
 */

import { equal } from "../helpers/assert.ts";
import {
  bytesToString,
  connect,
  freePort,
  ignoreUnless,
  type ProcessHandle,
  retrievalEnd,
  startMemcached,
  type TestConn,
} from "../helpers/mod.ts";
import { type Cluster, seeded, startCluster } from "./cluster.ts";

/** A loaded machine may take more than the cluster's default 500 ms to store a big batch. */
const SLOW_OK = ["--timeout", "5000", "--retry", "200"];

/**
 * `servers` primaries and `backups` backups of 64 MB behind the proxy, and a
 * lone memcached of 64 MB to compare replies with.
 */
async function startCompared(
  servers: number,
  backups: number,
  proxyArgs = SLOW_OK,
): Promise<[Cluster, ProcessHandle]> {
  const cluster = await startCluster({ servers, backups, memcachedArgs: ["-m", "64"], proxyArgs });
  return [cluster, await startMemcached(["-m", "64"])];
}

/** A random value of 0..`max` bytes; some hold `\r\nEND\r\n` or `VALUE` text. */
function randomValue(rand: () => number, max: number): string {
  const n = Math.floor(rand() * max);
  let v = "";
  for (let i = 0; i < n; i++) v += String.fromCharCode(Math.floor(rand() * 256));
  if (rand() < 0.1) v += "\r\nEND\r\nVALUE x 0 1\r\n";
  return v;
}

/** A random key of 1..250 printable bytes (no space or control byte). */
function randomKey(rand: () => number, i: number): string {
  const n = rand() < 0.2 ? 200 + Math.floor(rand() * 40) : 1 + Math.floor(rand() * 12);
  let k = `${i}:`;
  while (k.length < n) k += String.fromCharCode(33 + Math.floor(rand() * 94));
  return k.slice(0, 250);
}

/** Stores the same items on every connection (noreply, then a version round trip). */
async function load(conns: TestConn[], items: Map<string, [number, string]>): Promise<void> {
  let batch = "";
  for (const [k, [flags, v]] of items) {
    batch += `set ${k} ${flags} 0 ${v.length} noreply\r\n${v}\r\n`;
  }
  for (const c of conns) {
    await c.send(batch);
    equal(await c.request("version", "\r\n", 10_000), "VERSION 1.6.18\r\n");
  }
}

/** CAS tokens differ between servers: blank them (the rest must match byte for byte). */
function maskCas(reply: string): string {
  return reply.replace(/^(VALUE \S+ \d+ \d+) \d+\r\n/gm, "$1 CAS\r\n");
}

/** The reply texts of `cmd` from both, CAS masked. */
async function both(proxy: TestConn, ref: TestConn, cmd: string): Promise<[string, string]> {
  const [p, r] = await Promise.all([
    proxy.request(cmd, retrievalEnd, 10_000),
    ref.request(cmd, retrievalEnd, 10_000),
  ]);
  return [maskCas(p), maskCas(r)];
}

/** Multi-get sizes drawn per round: one key, a few, one server's share, more than a 1,000. */
const SIZES = [1, 2, 7, 60, 333, 1000, 1000, 1500];

Deno.test({
  name: "a 1,000-key multi-get over four primaries answers byte for byte as one memcached",
  ignore: ignoreUnless("multiget", ["memcached"]),
  async fn() {
    const [cluster, direct] = await startCompared(4, 0);
    const proxy = await connect(cluster.proxy.port);
    const ref = await connect(direct.port);
    try {
      for (const seed of [3, 4]) {
        const rand = seeded(seed);
        const items = new Map<string, [number, string]>();
        const keys: string[] = [];
        for (let i = 0; i < 1200; i++) {
          const k = randomKey(rand, seed * 10_000 + i);
          keys.push(k);
          // A quarter are never stored: misses scattered through every server's share.
          if (rand() < 0.75) {
            items.set(k, [
              Math.floor(rand() * 2 ** 32),
              randomValue(rand, rand() < 0.05 ? 3000 : 80),
            ]);
          }
        }
        await load([proxy, ref], items);
        let mismatches = 0;
        for (let round = 0; round < 12; round++) {
          // Keys in random order, with duplicates; sizes vary, so the proxy's reused per-get
          // tables go from large to small and back (a stale entry would show as a wrong reply).
          const size = SIZES[Math.floor(rand() * SIZES.length)];
          const ask = Array.from({ length: size }, () => keys[Math.floor(rand() * keys.length)]);
          for (const cmd of ["get", "gets"]) {
            const [p, r] = await both(proxy, ref, `${cmd} ${ask.join(" ")}`);
            if (p !== r) mismatches++;
          }
          // memcached reads only get/gets lines longer than 2 KB: gat lines stay shorter.
          const short = ask.filter((k) => k.length < 16).slice(0, 80);
          for (const cmd of ["gat 3600", "gats 3600"]) {
            const [p, r] = await both(proxy, ref, `${cmd} ${short.join(" ")}`);
            if (p !== r) mismatches++;
          }
        }
        // All hits, all misses, two keys, one key per server share.
        const stored = [...items.keys()];
        for (
          const ask of [
            stored.slice(0, 1000),
            keys.filter((k) => !items.has(k)).slice(0, 300),
            [stored[0], stored[1]],
            [stored[2], "nothing-here", stored[2]],
          ]
        ) {
          const [p, r] = await both(proxy, ref, `get ${ask.join(" ")}`);
          if (p !== r) mismatches++;
        }
        equal(mismatches, 0, `seed ${seed}: multi-get replies that differ from memcached's`);
      }
    } finally {
      await proxy.close();
      await ref.close();
      await direct.stop();
      await cluster.stop();
    }
  },
});

/** The keys of `keys` that memcached on `port` holds, and their values (one multi-get). */
async function held(port: number, keys: string[]): Promise<Map<string, string>> {
  const c = await connect(port);
  try {
    const reply = await c.request(`get ${keys.join(" ")}`, retrievalEnd, 10_000);
    const out = new Map<string, string>();
    const head = /VALUE (\S+) \d+ (\d+)\r\n/y;
    let at = 0;
    for (;;) {
      head.lastIndex = at;
      const m = head.exec(reply);
      if (m === null) break;
      const start = head.lastIndex, len = Number(m[2]);
      out.set(m[1], reply.slice(start, start + len));
      at = start + len + 2;
    }
    return out;
  } finally {
    await c.close();
  }
}

/** Waits until memcached on `port` holds every key of `keys` (copies reach a backup after the primaries answered). */
async function untilHeld(port: number, keys: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await held(port, keys)).size < keys.length) {
    if (Date.now() > deadline) throw new Error("the backup did not get the copies");
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name: "a multi-get over a primary restarted empty is answered from the backup in key order",
  ignore: ignoreUnless("multiget-backup", ["memcached"]),
  async fn() {
    const [cluster, direct] = await startCompared(4, 1);
    const proxy = await connect(cluster.proxy.port);
    const ref = await connect(direct.port);
    try {
      const rand = seeded(9);
      const items = new Map<string, [number, string]>();
      const keys = Array.from({ length: 600 }, (_, i) => randomKey(rand, i));
      for (const k of keys) items.set(k, [Math.floor(rand() * 1000), randomValue(rand, 60)]);
      await load([proxy, ref], items);
      // Copies reach the backup after the primaries answered: wait until it has every item.
      await untilHeld(cluster.backups[0].port, keys);
      const lost0 = [...(await held(cluster.servers[0].port, keys)).keys()];
      equal(lost0.length > 50, true, "the restarted primary held its share");
      await cluster.restart("server", 0);
      let mismatches = 0;
      for (const cmd of ["get", "gets", "get"]) {
        const ask = [...keys, "never-stored", keys[0]];
        const [p, r] = await both(proxy, ref, `${cmd} ${ask.join(" ")}`);
        if (p !== r) mismatches++;
      }
      equal(mismatches, 0, "replies that differ from memcached's");
      // The misses were repaired onto the restarted primary.
      const back = await held(cluster.servers[0].port, lost0);
      const unrepaired = lost0.filter((k) => back.get(k) !== items.get(k)?.[1]).length;
      equal(unrepaired, 0, `of ${lost0.length} keys of the restarted primary, not repaired`);
    } finally {
      await proxy.close();
      await ref.close();
      await direct.stop();
      await cluster.stop();
    }
  },
});

Deno.test({
  name:
    "a primary killed while 1,000-key multi-gets are in flight: every reply is still memcached's, in key order",
  ignore: ignoreUnless("multiget-kill", ["memcached"]),
  async fn() {
    const [cluster, direct] = await startCompared(4, 1);
    const conns: TestConn[] = [];
    try {
      const rand = seeded(21);
      const items = new Map<string, [number, string]>();
      const keys = Array.from({ length: 1500 }, (_, i) => randomKey(rand, i));
      // Keys of exactly 250 bytes, memcached's limit.
      for (let i = 0; i < 30; i++) keys.push(`${i}:long:`.padEnd(250, String.fromCharCode(65 + i)));
      for (const k of keys) {
        if (rand() < 0.8) items.set(k, [Math.floor(rand() * 1000), randomValue(rand, 60)]);
      }
      const proxy = await connect(cluster.proxy.port), ref = await connect(direct.port);
      conns.push(proxy, ref);
      await load([proxy, ref], items);
      const stored = [...items.keys()];
      await untilHeld(cluster.backups[0].port, stored);
      let mismatches = 0, replies = 0;
      // A line of about 400 KB: every key, 250-byte ones included, five times over.
      const all = [...keys, ...keys, ...keys, ...keys, ...keys];
      const [p0, r0] = await both(proxy, ref, `get ${all.join(" ")}`);
      if (p0 !== r0) mismatches++;
      // Four clients, each a loop of random 1,000-key gets (duplicates, misses) compared with
      // memcached's; a primary is killed while they run.
      let killed = false;
      const worker = async (seed: number) => {
        const r = seeded(seed);
        const p = await connect(cluster.proxy.port), d = await connect(direct.port);
        conns.push(p, d);
        for (let n = 0; n < 12 || !killed; n++) {
          const ask = Array.from({ length: 1000 }, () => keys[Math.floor(r() * keys.length)]);
          const [a, b] = await both(p, d, `${n % 3 === 2 ? "gets" : "get"} ${ask.join(" ")}`);
          replies++;
          if (a !== b) mismatches++;
        }
      };
      const running = [1, 2, 3, 4].map((s) => worker(100 + s));
      while (replies < 8) await new Promise((r) => setTimeout(r, 5));
      cluster.servers[1].kill("SIGKILL");
      killed = true;
      await Promise.all(running);
      equal(mismatches, 0, `of ${replies + 1} multi-gets, replies that differ from memcached's`);
    } finally {
      for (const c of conns) await c.close();
      await direct.stop();
      await cluster.stop();
    }
  },
});

Deno.test({
  name:
    "multi-gets of more than 1,024 keys, written in parts: memcached's replies, pipelined, and with a primary killed mid-reply",
  ignore: ignoreUnless("multiget-parts", ["memcached"]),
  async fn() {
    // Through the metrics' timed sink (the unread test covers the plain connection).
    const [cluster, direct] = await startCompared(3, 1, [
      ...SLOW_OK,
      "--metrics",
      `127.0.0.1:${freePort()}`,
    ]);
    const conns: TestConn[] = [];
    try {
      const rand = seeded(77);
      const items = new Map<string, [number, string]>();
      const keys = Array.from({ length: 2500 }, (_, i) => randomKey(rand, i));
      for (const k of keys) {
        if (rand() >= 0.8) continue; // a fifth never stored: misses
        // Mostly small; a few of 20-60 KB make the parts short (down to about 17 keys).
        const big = rand() < 0.01;
        const v = big ? "x".repeat(20_000 + Math.floor(rand() * 40_000)) : randomValue(rand, 80);
        items.set(k, [Math.floor(rand() * 2 ** 32), v]);
      }
      const proxy = await connect(cluster.proxy.port), ref = await connect(direct.port);
      conns.push(proxy, ref);
      await load([proxy, ref], items);
      const stored = [...items.keys()];
      await untilHeld(cluster.backups[0].port, stored);
      const pick = (n: number) =>
        Array.from({ length: n }, () => keys[Math.floor(rand() * keys.length)]);
      let mismatches = 0, compared = 0;
      // Sizes on either side of the single fan-out's limit and across many part boundaries.
      for (const n of [1024, 1025, 1057, 2047, 3000, 5000]) {
        for (const cmd of ["get", "gets"]) {
          const [p, r] = await both(proxy, ref, `${cmd} ${pick(n).join(" ")}`);
          compared++;
          if (p !== r) mismatches++;
        }
      }
      // Every key (each server's share, hits and misses) twice over, in one line.
      {
        const [p, r] = await both(proxy, ref, `get ${[...keys, ...keys].join(" ")}`);
        compared++;
        if (p !== r) mismatches++;
      }
      // A pipeline: long gets between short ones; each reply in its turn.
      const line = [
        `get ${pick(1500).join(" ")}`,
        `get ${stored[0]}`,
        `gets ${pick(3000).join(" ")}`,
        `get ${pick(20).join(" ")}`,
        `get ${pick(1100).join(" ")}`,
        "version",
      ].map((l) => l + "\r\n").join("");
      const done = (b: Uint8Array) => {
        const t = bytesToString(b);
        const at = t.indexOf("VERSION 1.6.18\r\n");
        return at < 0 ? -1 : at + 16;
      };
      const [pp, rp] = await Promise.all([proxy, ref].map(async (c) => {
        await c.send(line);
        return maskCas(await c.readUntilText(done, 20_000));
      }));
      compared++;
      if (pp !== rp) mismatches++;
      // A primary killed while a long reply waits for its client (about 35 MB, most of it
      // not fetched yet): the rest comes from the backup.
      const bigKeys = stored.filter((k) => (items.get(k) as [number, string])[1].length >= 20_000);
      const ask = Array.from(
        { length: 3000 },
        () => rand() < 0.3 ? bigKeys[Math.floor(rand() * bigKeys.length)] : pick(1)[0],
      );
      let total = 5; // memcached's reply: a VALUE block per hit, END
      for (const k of ask) {
        const item = items.get(k);
        if (item !== undefined) {
          total += `VALUE ${k} ${item[0]} ${item[1].length}\r\n`.length + item[1].length + 2;
        }
      }
      const raw = await Promise.all(
        [cluster.proxy.port, direct.port].map((port) =>
          Deno.connect({ hostname: "127.0.0.1", port })
        ),
      );
      try {
        const get = new TextEncoder().encode(`get ${ask.join(" ")}\r\nversion\r\n`);
        const [slow, fast] = raw;
        await slow.write(get);
        const got = new Uint8Array(total + 16);
        const have = (await slow.read(got)) ?? 0;
        await new Promise((r) => setTimeout(r, 300)); // the proxy waits for this client
        cluster.servers[1].kill("SIGKILL");
        // What a short reply lacks is never read: a deadline ends the wait (the bytes then differ).
        const readAll = async (c: Deno.Conn, buf: Uint8Array, from: number) => {
          const timer = setTimeout(() => c.close(), 20_000);
          try {
            while (from < buf.length) {
              const n = await c.read(buf.subarray(from));
              if (n === null) break;
              from += n;
            }
          } catch {
            // closed at the deadline
          } finally {
            clearTimeout(timer);
          }
          return buf;
        };
        await fast.write(get);
        const [p, r] = await Promise.all([
          readAll(slow, got, have),
          readAll(fast, new Uint8Array(total + 16), 0),
        ]);
        compared++;
        let same = true;
        for (let i = 0; i < total && same; i++) same = p[i] === r[i];
        if (!same) mismatches++;
        equal(bytesToString(p.subarray(total)), "VERSION 1.6.18\r\n");
      } finally {
        for (const c of raw) {
          try {
            c.close();
          } catch {
            // closed at the deadline
          }
        }
      }
      // And with that primary down.
      for (const cmd of ["get", "gets"]) {
        const [p, r] = await both(proxy, ref, `${cmd} ${pick(2500).join(" ")}`);
        compared++;
        if (p !== r) mismatches++;
      }
      equal(mismatches, 0, `of ${compared} long multi-gets, replies that differ from memcached's`);
    } finally {
      for (const c of conns) await c.close();
      await direct.stop();
      await cluster.stop();
    }
  },
});

const ORDER_NAME =
  "a multi-get written in parts runs before the writes pipelined after it, as in memcached";
Deno.test({
  name: ORDER_NAME,
  ignore: ignoreUnless(ORDER_NAME, ["memcached"]),
  async fn() {
    // A part fetched once earlier replies are out must not see a later write (a long get
    // of 1,100 keys; and a short one behind unanswered sets, before any reply came).
    const cluster = await startCluster({ servers: 2, backups: 1, proxyArgs: SLOW_OK });
    const direct = await startMemcached();
    const conns: TestConn[] = [];
    try {
      const keys = Array.from({ length: 1100 }, (_, i) => `o${i}`).join(" ");
      const script = "set last 0 0 4\r\nlast\r\nset one 0 0 3\r\none\r\n" +
        `get ${keys} last\r\ndelete last\r\nget one last\r\nset last 0 0 5\r\nlater\r\n` +
        "get one last\r\ndelete one\r\nversion\r\n";
      const replies: string[] = [];
      for (const port of [direct.port, cluster.proxy.port]) {
        const c = await connect(port);
        conns.push(c);
        replies.push(await c.request(script, "VERSION 1.6.18\r\n", 10_000));
      }
      equal(replies[1], replies[0]);
    } finally {
      await Promise.all(conns.map((c) => c.close()));
      await direct.stop();
      await cluster.stop();
    }
  },
});
