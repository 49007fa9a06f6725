/**
 * The replication handshake gives no offline guessing oracle to whoever
 * reaches the port (the acceptor sends only a nonce, and nothing keyed
 * before the connector proved the secret), and idle unauthenticated
 * connections can neither hold the port for long nor keep the real peer
 * out.
 */

import { createHmac } from "node:crypto";
import { equal, match, ok } from "../helpers/assert.ts";
import { connect, freePort, runMemrep, TestConn, waitUntil } from "../helpers/mod.ts";
import { client, fill, sameContents, settled, startNode } from "./pair.ts";

const SECRET = "s3cret";
const GREETING = /^MEMREP-REPL 4 ([0-9a-f]+) ([0-9a-f]+)$/;

function hmacHex(secret: string, message: string): string {
  return createHmac("sha256", secret).update(message).digest("hex");
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Everything the node sends until it closes the connection. */
async function untilClosed(c: TestConn): Promise<string> {
  ok(await c.waitClosed(5000), "the node closes the connection");
  return new TextDecoder().decode(c.buffered);
}

Deno.test("the acceptor greets with a nonce only and sends nothing keyed before the connector proved", async () => {
  const replPort = freePort();
  const a = await startNode(replPort, ["--repl-secret", SECRET, "--repl-timeout", "5000"]);
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    const state = "STATE abcd 0 - 0 0 0";
    for (const guess of ["guess", SECRET]) {
      const mark = a.proc.outputLines().length;
      const c = await connect(replPort);
      // Before we send a byte: one greeting of four tokens, no proof, then silence.
      const greetingA = await c.readLine(3000);
      match(greetingA, GREETING);
      equal((await c.readIdle(300, 600)).length, 0, "nothing after the greeting");
      const greetingC = "MEMREP-REPL 4 feedc0de 00112233445566778899aabbccddeeff";
      const greetings = `${greetingA}\n${greetingC}`;
      const proofC = hmacHex(guess, `connect\n${greetings}\n${state}`);
      await c.send(`${greetingC}\r\n${state}\r\nAUTH ${proofC}\r\n`);
      if (guess !== SECRET) {
        // A wrong proof gets a refusal only: no STATE, no proof to guess against.
        equal(await untilClosed(c), "ERR auth\r\n");
        await a.proc.waitForLog(/authentication failed: wrong secret/, 5000, mark);
        await c.close();
        continue;
      }
      const stateA = await c.readLine();
      match(stateA, /^STATE \S+ \d+ - 0 \d+ \d+$/);
      equal(
        await c.readLine(),
        `AUTH ${hmacHex(SECRET, `accept\n${greetings}\n${state}\n${stateA}\n${proofC}`)}`,
      );
      // The stream that follows is sealed: a length, the payload, its tag under the session key.
      const session = createHmac("sha256", SECRET).update(`session\n${greetings}`).digest();
      const key = createHmac("sha256", session).update("acceptor to connector").digest();
      const header = await c.readExactly(4);
      const n = new DataView(header.buffer, header.byteOffset).getUint32(0);
      const payload = await c.readExactly(n);
      const tag = await c.readExactly(32);
      const want = createHmac("sha256", key).update(new Uint8Array(8)).update(header).update(
        payload,
      ).digest();
      equal(hex(tag), hex(want), "record 0's tag");
      match(new TextDecoder().decode(payload), /^COPY \S+ \d+ \d+ \d+ \d+ \d+\r\n/);
      await c.close();
      await a.proc.waitForLog(/^replication: listen$/, 5000, mark);
    }
  } finally {
    await a.proc.stop();
  }
});

Deno.test("the connector proves first: a fake acceptor that proves nothing gets the proof, then a refusal", async () => {
  const fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (fake.addr as Deno.NetAddr).port;
  const acceptor = (async () => {
    const conn = await fake.accept();
    const c = new TestConn(conn);
    try {
      const greetingA = "MEMREP-REPL 4 0badbeef ffeeddccbbaa99887766554433221100";
      await c.send(greetingA + "\r\n");
      const greetingC = await c.readLine(5000);
      match(greetingC, GREETING);
      const stateC = await c.readLine(5000);
      match(stateC, /^STATE \S+ 0 - 0 0 \d+$/);
      const auth = await c.readLine(5000);
      // The connector's proof came before anything keyed from us, over both greetings and its state.
      equal(auth, `AUTH ${hmacHex(SECRET, `connect\n${greetingA}\n${greetingC}\n${stateC}`)}`);
      await c.send(`STATE f00d 0 - 0 0 0\r\nAUTH ${"00".repeat(32)}\r\n`);
      return await untilClosed(c);
    } finally {
      await c.close();
    }
  })();
  acceptor.catch(() => {}); // awaited below, after the node exited
  try {
    const r = await runMemrep([
      "serve",
      "-l",
      "127.0.0.1",
      "-p",
      String(freePort()),
      "--replicate",
      `127.0.0.1:${port}`,
      "--repl-secret",
      SECRET,
    ], { timeoutMs: 15_000 });
    equal(await acceptor, "ERR auth\r\n", "a wrong acceptor proof is refused");
    equal(r.code, 2, r.stderr);
    match(r.stderr, /secret mismatch/);
  } finally {
    fake.close();
    await acceptor.catch(() => {});
  }
});

Deno.test("an idle unauthenticated connection is closed within a second, not after --repl-timeout", async () => {
  const replPort = freePort();
  const a = await startNode(replPort, ["--repl-secret", SECRET, "--repl-timeout", "10000"]);
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    const c = await connect(replPort);
    const t0 = Date.now();
    ok(await c.waitClosed(6000), "closed before --repl-timeout (10 s)");
    ok(Date.now() - t0 < 6000);
    await c.close();
  } finally {
    await a.proc.stop();
  }
});

Deno.test("a handshake gets through while idle connections hold every slot", async () => {
  const replPort = freePort();
  const a = await startNode(replPort, ["--repl-timeout", "10000"]);
  const idle: TestConn[] = [];
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    for (let round = 0; round < 3; round++) {
      const mark = a.proc.outputLines().length;
      idle.push(...await Promise.all(Array.from({ length: 24 }, () => connect(replPort))));
      const c = await connect(replPort);
      match(await c.readLine(3000), GREETING);
      await c.send(`MEMREP-REPL 4 real${round} 0011\r\nSTATE abcd 0 - 0 0 0\r\nAUTH -\r\n`);
      match(await c.readLine(3000), /^STATE /);
      equal(await c.readLine(), "AUTH -");
      await c.close();
      await a.proc.waitForLog(/^replication: close/, 5000, mark);
      await a.proc.waitForLog(/^replication: listen$/, 5000, mark);
    }
  } finally {
    await Promise.all(idle.map((c) => c.close()));
    await a.proc.stop();
  }
});

/** `count` idle connections to `port`, each replaced by a new one every `renewMs`. */
function idleFlood(port: number, count: number, renewMs: number) {
  let stopped = false;
  let open = 0;
  const loops = Array.from({ length: count }, async () => {
    while (!stopped) {
      let c: TestConn;
      try {
        c = await connect(port);
      } catch {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      open++;
      // Held idle until renewal (or until the node closes it: then at once a new one).
      await c.waitClosed(renewMs);
      open--;
      await c.close();
    }
  });
  return {
    open: () => open,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

Deno.test("a restarted peer rejoins through 20 idle connections renewed every 1.5 s", async () => {
  const replPort = freePort();
  const args = ["--repl-secret", SECRET];
  const a = await startNode(replPort, args);
  let b = await startNode(replPort, args);
  let flood: ReturnType<typeof idleFlood> | undefined;
  try {
    await Promise.all([
      a.proc.waitForLog(/^replication: start/, 10_000),
      b.proc.waitForLog(/^replication: start/, 10_000),
    ]);
    await fill(a, "before", 500);
    await settled(a, b);
    const mark = a.proc.outputLines().length;
    b.proc.kill("SIGKILL");
    await b.proc.stop();
    await a.proc.waitForLog(/^replication: listen$/, 10_000, mark);
    flood = idleFlood(replPort, 20, 1500);
    await waitUntil(() => flood!.open() >= 20, "20 idle connections");
    await fill(a, "during", 500);
    b = await startNode(replPort, args, b.port);
    await b.proc.waitForLog(/^replication: start/, 20_000);
    await settled(a, b);
    const all = await sameContents(a, b);
    equal(all.size, 1000);
    const cb = await client(b);
    ok(await cb.set("after", new TextEncoder().encode("x")));
    cb.close();
    await settled(a, b);
    await sameContents(a, b);
  } finally {
    await flood?.stop();
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});
