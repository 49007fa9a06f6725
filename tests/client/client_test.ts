import { deepEqual, equal, ok, rejects } from "../helpers/assert.ts";
import { freePort } from "../helpers/ports.ts";
import { ignoreUnless, startMemcached } from "../helpers/process.ts";
import { latin1 } from "../helpers/bytes.ts";
import { fakeServer } from "../helpers/fake_server.ts";
import { Client, ClientError, ReplyError, ReplyKind } from "../../lib/client/mod.ts";
import { Op } from "../../lib/protocol/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const ignore = ignoreUnless("client tests against memcached", ["memcached"]);

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

Deno.test({
  name: "conveniences store, fetch, count and delete against memcached",
  ignore,
  async fn() {
    const mc = await startMemcached();
    const c = await Client.connect("127.0.0.1", mc.port);
    try {
      ok(/^\d+\.\d+/.test(await c.version()));
      equal(await c.set("a", enc.encode("hello"), 42, 0), true);
      equal(await c.add("a", enc.encode("x")), false);
      equal(await c.replace("missing", enc.encode("x")), false);
      const one = await c.getOne("a");
      ok(one);
      equal(dec.decode(one.value), "hello");
      equal(one.flags, 42);
      equal(await c.getOne("missing"), undefined);
      await c.set("b", enc.encode("2"));
      const many = await c.gets(["a", "b", "missing"]);
      deepEqual([...many.keys()], ["a", "b"]);
      const cas = many.get("a")?.cas;
      ok(typeof cas === "bigint");
      equal(await c.cas("a", enc.encode("new"), cas + 1000n), false);
      equal(await c.cas("a", enc.encode("new"), cas), true);
      equal(await c.incr("b", 40), 42n);
      equal(await c.decr("b", 50), 0n);
      equal(await c.incr("missing"), undefined);
      equal(await c.touch("a", 100), true);
      const mg = await c.mg("a", "v f t");
      equal(mg.kind, ReplyKind.VA);
      equal(dec.decode(mg.value), "new");
      ok(mg.ttl > 90 && mg.ttl <= 100);
      equal(mg.metaFlag("f"), "0");
      const ms = await c.ms("m", enc.encode("meta"), "F7 T0");
      equal(ms.kind, ReplyKind.HD);
      equal((await c.mg("m", "v f")).flags, 7);
      equal((await c.mg("nothing", "v")).kind, ReplyKind.EN);
      equal(await c.delete("a"), true);
      equal(await c.delete("a"), false);
      const stats = await c.stats();
      ok(Number(stats.get("curr_items")) >= 2);
      await c.flushAll();
      equal(await c.getOne("b"), undefined);
      await c.set("m", enc.encode("text"));
      await rejects(c.incr("m"), ReplyError); // CLIENT_ERROR non-numeric; connection stays up
      equal(await c.set("after", enc.encode("ok")), true);
    } finally {
      c.close();
      await mc.stop();
    }
  },
});

Deno.test({
  name: "10k pipelined requests resolve in order",
  ignore,
  async fn() {
    const mc = await startMemcached();
    const c = await Client.connect("127.0.0.1", mc.port);
    try {
      const n = 10_000;
      const sets: Promise<boolean>[] = [];
      for (let i = 0; i < n; i++) sets.push(c.set(`key:${i}`, enc.encode(`value:${i}`), i));
      equal(c.pending, n);
      deepEqual(new Set(await Promise.all(sets)), new Set([true]));
      const gets = [];
      for (let i = 0; i < n; i++) {
        gets.push(c.request(latin1(`get key:${i}\r\n`), Op.GET));
      }
      const replies = await Promise.all(gets);
      for (let i = 0; i < n; i++) {
        const r = replies[i];
        equal(r.count, 1);
        equal(dec.decode(r.itemKey(0)), `key:${i}`);
        equal(dec.decode(r.value), `value:${i}`);
        equal(r.flags, i);
      }
      equal(c.pending, 0);
      const stats = await c.stats();
      equal(Number(stats.get("cmd_get")), n);
    } finally {
      c.close();
      await mc.stop();
    }
  },
});

Deno.test({
  name: "1 MB values round-trip byte for byte, and too-large values report SERVER_ERROR",
  ignore,
  async fn() {
    const mc = await startMemcached(["-I", "2m", "-m", "64"]);
    const c = await Client.connect("127.0.0.1", mc.port);
    try {
      const big = randomBytes(1 << 20);
      const big2 = randomBytes((1 << 20) - 17);
      equal(await c.set("big", big, 3), true);
      equal(await c.set("big2", big2), true);
      const got = await c.get(["big", "big2", "none"]);
      deepEqual(got.get("big")?.value, big);
      equal(got.get("big")?.flags, 3);
      deepEqual(got.get("big2")?.value, big2);
      const va = await c.mg("big", "v");
      deepEqual(va.value, big);
      const huge = randomBytes(3 << 20);
      const err = await c.set("huge", huge).then(() => undefined, (e) => e);
      ok(err instanceof ReplyError, String(err));
      ok(/SERVER_ERROR/.test(err.message) && err.message.includes(`127.0.0.1:${mc.port}`));
      equal(await c.set("small", enc.encode("s")), true);
    } finally {
      c.close();
      await mc.stop();
    }
  },
});

Deno.test("replies split into tiny reads across frames are reassembled", async () => {
  const reply = latin1(
    "VALUE k1 1 5\r\nhello\r\nVALUE k2 2 0\r\n\r\nEND\r\n" + "STORED\r\n" +
      "VA 3 f9 t-1\r\nabc\r\n" +
      "STAT a 1\r\nSTAT b 2\r\nEND\r\n",
  );
  const server = fakeServer(async (conn) => {
    const buf = new Uint8Array(4096);
    let got = 0;
    while (got < 4) { // wait for all four requests (one line each)
      const n = await conn.read(buf);
      if (n === null) return;
      for (let i = 0; i < n; i++) if (buf[i] === 10) got++;
    }
    conn.setNoDelay(true);
    for (let i = 0; i < reply.length; i += 3) {
      await conn.write(reply.subarray(i, Math.min(reply.length, i + 3)));
      await new Promise((r) => setTimeout(r, 1));
    }
    await conn.read(buf); // hold open until the client leaves
  });
  const c = await Client.connect("127.0.0.1", server.port);
  try {
    const [g, s, m, st] = await Promise.all([
      c.request(latin1("get k1 k2\r\n"), Op.GET),
      c.request(latin1("set k 0 0 1\r\nx\r\n"), Op.SET),
      c.request(latin1("mg k v f t\r\n"), Op.MG),
      c.request(latin1("stats\r\n"), Op.STATS),
    ]);
    deepEqual(g.items().map((i) => [i.key, i.flags, dec.decode(i.value)]), [
      ["k1", 1, "hello"],
      ["k2", 2, ""],
    ]);
    equal(s.kind, ReplyKind.STORED);
    equal(dec.decode(m.value), "abc");
    equal(m.flags, 9);
    equal(m.ttl, -1);
    deepEqual([...st.stats()], [["a", "1"], ["b", "2"]]);
  } finally {
    c.close();
    await server.close();
  }
});

Deno.test("requests issued in one tick leave in one socket write", async () => {
  const sizes: number[] = [];
  const server = fakeServer(async (conn) => {
    const buf = new Uint8Array(1 << 20);
    let total = 0;
    while (total < 1000 * 16) {
      const n = await conn.read(buf);
      if (n === null) return;
      sizes.push(n);
      total += n;
    }
    await conn.write(latin1("STORED\r\n".repeat(1000)));
    await conn.read(buf);
  });
  const c = await Client.connect("127.0.0.1", server.port);
  try {
    const all = [];
    for (let i = 0; i < 1000; i++) all.push(c.request(latin1("set k 0 0 1\r\nx\r\n"), Op.SET));
    const replies = await Promise.all(all);
    ok(replies.every((r) => r.kind === ReplyKind.STORED));
    equal(sizes.reduce((a, b) => a + b, 0), 1000 * 16);
    ok(sizes.length <= 3, `arrived in ${sizes.length} reads`);
  } finally {
    c.close();
    await server.close();
  }
});

Deno.test("a server that accepts but never answers times the request out and closes the client", async () => {
  const server = fakeServer(async (conn) => {
    const buf = new Uint8Array(4096);
    while (await conn.read(buf) !== null) { /* swallow */ }
  });
  const c = await Client.connect("127.0.0.1", server.port, { requestTimeoutMs: 200 });
  try {
    const started = Date.now();
    const a = c.request(latin1("get a\r\n"), Op.GET);
    const b = c.request(latin1("get b\r\n"), Op.GET);
    const err = await a.then(() => undefined, (e) => e);
    ok(err instanceof ClientError);
    equal(err.code, "timeout");
    ok(err.message.includes(`127.0.0.1:${server.port}`));
    const elapsed = Date.now() - started;
    ok(elapsed >= 150 && elapsed < 10_000, `timed out after ${elapsed} ms`);
    await rejects(b, ClientError);
    ok(c.closed);
    await rejects(c.request(latin1("get c\r\n"), Op.GET), ClientError);
  } finally {
    c.close();
    await server.close();
  }
});

Deno.test({
  name: "killing the server mid-request rejects every pending request",
  ignore,
  async fn() {
    const mc = await startMemcached(["-I", "2m"]);
    const c = await Client.connect("127.0.0.1", mc.port, { requestTimeoutMs: 10_000 });
    let closedWith: Error | undefined;
    c.onClose((e) => closedWith = e);
    try {
      equal(await c.set("big", randomBytes(1 << 20)), true);
      const pending = [];
      for (let i = 0; i < 300; i++) pending.push(c.request(latin1("get big\r\n"), Op.GET));
      await pending[0]; // the rest (299 MB) is still on its way
      mc.kill("SIGKILL");
      const results = await Promise.allSettled(pending);
      const rejected = results.filter((r) => r.status === "rejected");
      ok(rejected.length > 0, "some requests were still pending when the server died");
      for (const r of rejected) {
        ok((r as PromiseRejectedResult).reason instanceof ClientError);
      }
      // Replies resolve in order, so failures are a suffix.
      const firstRejected = results.findIndex((r) => r.status === "rejected");
      ok(results.slice(firstRejected).every((r) => r.status === "rejected"));
      ok(c.closed);
      ok(closedWith instanceof ClientError);
    } finally {
      c.close();
      await mc.stop();
    }
  },
});

Deno.test("connecting to a closed port fails with a message naming the server", async () => {
  const port = freePort();
  const err = await Client.connect("127.0.0.1", port, { connectTimeoutMs: 1000 }).then(
    () => undefined,
    (e) => e,
  );
  ok(err instanceof ClientError);
  equal(err.code, "connect");
  ok(err.message.startsWith(`127.0.0.1:${port}: `), err.message);
});

Deno.test("an unparseable reply closes the client with a protocol error", async () => {
  const server = fakeServer(async (conn) => {
    const buf = new Uint8Array(4096);
    await conn.read(buf);
    await conn.write(latin1("BOGUS REPLY\r\n"));
    await conn.read(buf);
  });
  const c = await Client.connect("127.0.0.1", server.port);
  try {
    const err = await c.request(latin1("set k 0 0 1\r\nx\r\n"), Op.SET).then(
      () => undefined,
      (e) => e,
    );
    ok(err instanceof ClientError);
    equal(err.code, "protocol");
    ok(c.closed);
  } finally {
    c.close();
    await server.close();
  }
});

Deno.test({
  name: "metadump streams every key and holds other requests until it ends",
  ignore,
  async fn() {
    const mc = await startMemcached();
    const c = await Client.connect("127.0.0.1", mc.port);
    try {
      const n = 20_000;
      const sets = [];
      for (let i = 0; i < n; i++) {
        sets.push(c.set(`k ${i}`.replace(" ", "_"), enc.encode("v"), 0, i % 2 ? 0 : 1000));
      }
      await Promise.all(sets);
      await c.ms("AAEC/w==", enc.encode("bin"), "b");
      const seen = new Set<string>();
      let binary: Uint8Array | undefined;
      let during: Promise<boolean> | undefined;
      for await (const e of c.metadump()) {
        if (e.key.length === 4 && e.key[0] === 0) binary = e.key;
        else seen.add(dec.decode(e.key));
        if (during === undefined) {
          during = c.set("during", enc.encode("x"));
          // Awaited below; if an assertion fails first, close() rejects it: report that failure.
          during.catch(() => {});
        }
        if (dec.decode(e.key) === "k_1") equal(e.exp, -1);
        if (dec.decode(e.key) === "k_0") ok(e.exp > Date.now() / 1000);
      }
      equal(seen.size, n);
      deepEqual(binary && [...binary], [0, 1, 2, 255]);
      equal(await during, true);
      // Breaking out early leaves the connection usable.
      let count = 0;
      for await (const _ of c.metadump()) if (++count === 10) break;
      equal(count, 10);
      equal(dec.decode((await c.getOne("during"))?.value), "x");
      const again = [];
      for await (const e of c.metadump()) again.push(e);
      equal(again.length, n + 2);
    } finally {
      c.close();
      await mc.stop();
    }
  },
});
