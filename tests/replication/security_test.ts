/**
 * The replication port authenticates peers (HMAC challenge-response on a
 * shared secret), refuses and logs the others, and survives any bytes
 * thrown at it, before or after the handshake. Configuration mistakes exit
 * with code 2 and say why.
 */

import { equal, match, ok } from "../helpers/assert.ts";
import { connect, freePort, runMemrep } from "../helpers/mod.ts";
import { client, sameContents, settled, startNode } from "./pair.ts";

const enc = new TextEncoder();

/** Random bytes from a seeded generator (reproducible failures). */
function junk(seed: number, n: number): Uint8Array {
  let s = seed;
  return new Uint8Array(n).map(() => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) & 255);
}

/** A node must still answer clients and report stats. */
async function alive(port: number): Promise<void> {
  const c = await client(port);
  ok(await c.set("alive", enc.encode("1")));
  ok((await c.stats("replication")).has("repl_link"));
  c.close();
}

Deno.test("a peer with a wrong or missing secret is refused and logged; the right one pairs", async () => {
  const replPort = freePort();
  const a = await startNode(replPort, ["--repl-secret", "s3cret"]);
  let b: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    const peer = [
      "serve",
      "-l",
      "127.0.0.1",
      "-p",
      String(freePort()),
      "-x",
      "127.0.0.1",
      "-X",
      String(replPort),
    ];
    const wrong = await runMemrep([...peer, "--repl-secret", "guess"]);
    equal(wrong.code, 2, wrong.stderr);
    match(wrong.stderr, /secret mismatch/);
    await a.proc.waitForLog(
      /^replication: refused \(peer=127\.0\.0\.1:\d+\): authentication failed: wrong secret/,
    );
    const none = await runMemrep(peer);
    equal(none.code, 2, none.stderr);
    await a.proc.waitForLog(/authentication failed: the peer has no secret/);
    await alive(a.port);
    // The secret from the environment, as documented.
    b = await startNode(replPort, [], undefined, { MEMREP_REPL_SECRET: "s3cret" });
    await b.proc.waitForLog(/^replication: start/);
    const ca = await client(a);
    await ca.set("k", enc.encode("v"));
    await settled(a, b);
    await sameContents(a, b);
    ca.close();
  } finally {
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});

Deno.test("random bytes on the replication port never crash the node", async () => {
  const replPort = freePort();
  const a = await startNode(replPort, ["--repl-secret", "s3cret", "--repl-timeout", "300"]);
  let b: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    const prefixes = [
      "",
      "MEMREP-REPL 4 aaaa bbbb\r\n",
      "MEMREP-REPL 4 aaaa bbbb\r\nSTATE abcd 0 - 0 0 0\r\nAUTH 00ff\r\n",
      "MEMREP-REPL 9 x y\r\n",
      "get foo\r\n",
      "MEMREP-REPL 4 " + "x".repeat(5000) + "\r\n",
    ];
    for (let i = 0; i < 60; i++) {
      const c = await connect(replPort);
      await c.send(enc.encode(prefixes[i % prefixes.length])).catch(() => {});
      await c.send(junk(i + 1, (i * 997) % 20000)).catch(() => {});
      if (i % 3 === 0) await c.closeWrite().catch(() => {});
      await c.readIdle(20, 400).catch(() => {});
      await c.close();
    }
    await alive(a.port);
    ok(!a.proc.exited());
    // It still pairs with a real peer afterwards.
    b = await startNode(replPort, ["--repl-secret", "s3cret", "--repl-timeout", "300"]);
    await b.proc.waitForLog(/^replication: start/);
    await settled(a, b);
    await sameContents(a, b);
  } finally {
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});

Deno.test("garbage after a valid handshake closes that link only", async () => {
  const replPort = freePort();
  const a = await startNode(replPort);
  let b: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    for (let i = 0; i < 10; i++) {
      const mark = a.proc.outputLines().length;
      const c = await connect(replPort);
      match(await c.readLine(), /^MEMREP-REPL 4 \S+ \S+$/);
      await c.send(`MEMREP-REPL 4 fuzz${i} 0011\r\nSTATE abcd 0 - 0 0 0\r\nAUTH -\r\n`);
      match(await c.readLine(), /^STATE /);
      equal(await c.readLine(), "AUTH -");
      const frames = [
        "S k 0 0 1 0 0 999999999\r\n",
        "RESUME nope 0\r\n",
        "COPY s 0 0 0\r\nCS k 0 0 5 9 0 1\r\nx\r\n",
        "COPY s 0 0 0\r\nCS k 0 0 5 0 0 -3\r\n",
        "D " + "k".repeat(400) + " 5 0\r\n",
      ];
      await c.send(frames[i % frames.length]).catch(() => {});
      await c.send(junk(100 + i, 3000)).catch(() => {});
      await a.proc.waitForLog(/^replication: close \(protocol error/, 5000, mark);
      await c.close();
      // The link is gone and the node listens again.
      await a.proc.waitForLog(/^replication: listen$/, 5000, mark);
    }
    await alive(a.port);
    b = await startNode(replPort);
    await b.proc.waitForLog(/^replication: start/);
    await settled(a, b);
    await sameContents(a, b);
  } finally {
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});

Deno.test("configuration mistakes exit with code 2 and a clear message", async () => {
  const base = ["serve", "-l", "127.0.0.1", "-p", String(freePort())];
  const bad = await runMemrep([...base, "--replicate", "no-port-here"]);
  equal(bad.code, 2);
  match(bad.stderr, /--replicate: expected host:port/);
  // The replication port answered by something that is not memrep (a memcached-like server).
  const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const otherPort = (other.addr as Deno.NetAddr).port;
  const serving = (async () => {
    for await (const conn of other) {
      conn.write(enc.encode("ERROR\r\n")).catch(() => {}).finally(() => conn.close());
    }
  })();
  try {
    const r = await runMemrep([...base, "--replicate", `127.0.0.1:${otherPort}`]);
    equal(r.code, 2, r.stderr);
    match(r.stderr, /not a memrep replication port/);
  } finally {
    other.close();
    await serving.catch(() => {});
  }
});
