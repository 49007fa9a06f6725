/**
 * serve's binary protocol beyond the differential scripts: -B ascii and
 * -B binary against memcached, a fuzz run that must not crash or corrupt,
 * stats parity with the text protocol, and threads.
 */

import {
  arithExtras,
  decodeResponse,
  OP,
  packet,
  responseEnd,
  roundTrip,
  setExtras,
  splitResponses,
  text,
} from "../helpers/binary.ts";
import {
  concatBytes,
  connect,
  deepEqual as assertEquals,
  escapeBytes,
  ignoreUnless,
  ok as assert,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";

/** Send bytes and collect everything until the line is quiet or closed. */
async function exchange(port: number, bytes: Uint8Array): Promise<string> {
  const c = await connect(port);
  try {
    await c.send(bytes);
    const got = await c.readIdle(400, 3000);
    return escapeBytes(got) + (c.eof ? " <closed>" : " <open>");
  } finally {
    await c.close();
  }
}

const B_NAME = "serve -B ascii and -B binary treat the other protocol as memcached 1.6 does";
Deno.test({
  name: B_NAME,
  ignore: ignoreUnless(B_NAME, ["memcached"]),
  async fn() {
    const binGet = packet({ op: OP.GET, key: "k", opaque: 7 });
    const binSet = packet({ op: OP.SET, key: "k", value: "v\r\n", extras: setExtras(0, 0) });
    const inputs = [binGet, binSet, new TextEncoder().encode("get k\r\n")];
    for (const mode of ["ascii", "binary"]) {
      const ref = await startMemcached(["-B", mode]);
      // Two threads: each applies -B (connections land on either).
      const sut = await startMemrep(["serve", "-t", "2", "-vv", "-B", mode]);
      await sut.waitForLog(/^memrep serve: listening on .*, 2 threads$/);
      try {
        for (const input of [...inputs, ...inputs, ...inputs]) {
          const [expected, actual] = await Promise.all([
            exchange(ref.port, input),
            exchange(sut.port, input),
          ]);
          assertEquals(actual, expected, `-B ${mode}, input ${escapeBytes(input)}`);
        }
        if (mode === "binary") {
          const c = await connect(sut.port);
          const r = await roundTrip(c, packet({ op: OP.VERSION, opaque: 3 }));
          assertEquals(text(r[0].value), "1.6.18");
          await c.close();
        }
      } finally {
        await sut.stop();
        await ref.stop();
      }
    }
  },
});

/** xorshift32: the fuzz run is reproducible from its seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const OPCODES = [...Object.values(OP), 0x1f, 0x25, 0x30, 0x80, 0xff];
const RUNNING = OPCODES.filter((op) =>
  op <= OP.GATKQ && op !== OP.QUIT && op !== OP.QUITQ && op !== OP.VERBOSITY && op < OP.SASL_LIST
);

/** Extras length each opcode takes (memcached's dispatch checks); -1: none, no key or value. */
function extrasFor(op: number): number {
  if ([OP.SET, OP.ADD, OP.REPLACE, OP.SETQ, OP.ADDQ, OP.REPLACEQ].includes(op as 1)) return 8;
  if ([OP.INCR, OP.DECR, OP.INCRQ, OP.DECRQ].includes(op as 5)) return 20;
  if ([OP.TOUCH, OP.GAT, OP.GATQ, OP.GATK, OP.GATKQ].includes(op as 0x1c)) return 4;
  if ([OP.NOOP, OP.VERSION, OP.QUIT, OP.QUITQ, OP.SASL_LIST].includes(op as 0x0a)) return -1;
  return 0;
}

/**
 * A random packet: mostly well formed for its opcode (so the commands run),
 * about one in six with lying lengths, random extras, a long key or cut short.
 */
function randomPacket(next: () => number): Uint8Array {
  const r = (n: number) => next() % n;
  // Mostly commands that leave the connection open; now and then any opcode (quit, unknown...).
  const op = r(10) === 0 ? OPCODES[r(OPCODES.length)] : RUNNING[r(RUNNING.length)];
  const want = extrasFor(op);
  const keyLen = want < 0 ? 0 : r(40) === 0 ? r(300) : 1 + r(3);
  const key = new Uint8Array(keyLen);
  for (let i = 0; i < keyLen; i++) key[i] = 97 + r(4); // few keys: commands meet each other's items
  const extras = new Uint8Array(want < 0 ? 0 : r(40) === 0 ? r(40) : want);
  for (let i = 0; i < extras.length; i++) extras[i] = r(4) === 0 ? r(256) : 0;
  const storage = want === 8 || op === OP.APPEND || op === OP.PREPEND || op === OP.APPENDQ ||
    op === OP.PREPENDQ;
  const valueLen = !storage && r(6) !== 0 ? 0 : r(4) === 0 ? r(3000) : r(20);
  const value = new Uint8Array(valueLen);
  for (let i = 0; i < valueLen; i++) value[i] = 48 + r(10);
  const p = packet({
    op,
    key,
    extras,
    value,
    cas: BigInt(r(4) === 0 ? r(1000) : 0),
    opaque: next(),
  });
  const dv = new DataView(p.buffer);
  switch (r(40)) {
    case 0: // lie about the body
      dv.setUint32(8, next());
      break;
    case 1:
      dv.setUint16(2, next() & 0xffff);
      break;
    case 2:
      p[4] = r(256);
      break;
    case 3: // cut short
    case 4:
      return p.subarray(0, r(p.length));
  }
  return p;
}

Deno.test("serve survives 10,000 seeded random and truncated binary packets: no crash, the canary intact, other connections served", async () => {
  const server = await startMemrep(["serve", "-t", "2", "-I", "1m", "-m", "16"]);
  try {
    const seed = Number(Deno.env.get("FUZZ_SEED") ?? 0x5eed1234);
    const next = rng(seed);
    const canaryValue = "the canary value \x00\x01\r\n";
    const guard = await connect(server.port);
    const setR = await roundTrip(
      guard,
      packet({ op: OP.SET, key: "canary", value: canaryValue, extras: setExtras(77, 0) }),
    );
    assertEquals(setR[0].status, 0);
    let sent = 0, connections = 0, replies = 0;
    while (sent < 10_000) {
      const c = await connect(server.port);
      connections++;
      // Ten packets per connection: a malformed one ends it, as in memcached.
      const batch: Uint8Array[] = [];
      for (let i = 0; i < 10 && sent < 10_000; i++, sent++) batch.push(randomPacket(next));
      // Flush and flushq would take the canary too: the fuzz gets everything else.
      const bytes = concatBytes(...batch.filter((b) => b[1] !== OP.FLUSH && b[1] !== OP.FLUSHQ));
      try {
        await c.send(bytes);
      } catch { /* closed by the server: fine */ }
      replies += splitResponses(await c.readIdle(20, 300)).packets.length;
      await c.close();
    }
    // Not vacuous: many packets ran as commands, not just refused at the first bad one.
    const tc = await connect(server.port);
    const st = await tc.stats();
    await tc.close();
    const ran = ["cmd_get", "cmd_set", "cmd_touch", "delete_hits", "delete_misses"]
      .concat(["incr_hits", "incr_misses", "decr_hits", "decr_misses"])
      .reduce((sum, k) => sum + Number(st.get(k)), 0);
    assert(ran > 1000 && replies > 500, `${ran} commands ran, ${replies} replies`);
    // The server still runs, the canary is intact, the guard connection still answers.
    assert(!server.exited(), "serve exited during the fuzz run");
    const got = await roundTrip(guard, packet({ op: OP.GETK, key: "canary", opaque: 9 }));
    assertEquals(got.length, 1);
    assertEquals(got[0].status, 0);
    assertEquals(text(got[0].value), canaryValue, `seed ${seed}, ${connections} connections`);
    assertEquals(new DataView(got[0].extras.buffer).getUint32(0), 77);
    const fresh = await connect(server.port);
    assertEquals((await fresh.request("get canary", "END\r\n")).length > 10, true);
    await fresh.close();
    await guard.close();
  } finally {
    await server.stop();
  }
});

Deno.test("serve binary stat answers the same names as text stats, general and per group", async () => {
  const server = await startMemrep(["serve", "-t", "1"]);
  try {
    const tc = await connect(server.port);
    const bc = await connect(server.port);
    await roundTrip(bc, packet({ op: OP.SET, key: "x", value: "1", extras: setExtras(0, 0) }));
    for (const group of ["", "settings", "items", "slabs", "sizes"]) {
      const names = [...(await tc.stats(group)).keys()];
      const packets = await roundTrip(bc, packet({ op: OP.STAT, key: group, opaque: 5 }));
      const last = packets.pop()!;
      assertEquals(last.key.length + last.value.length, 0, "terminator");
      assertEquals(packets.map((p) => text(p.key)), names, `stat ${group || "(general)"}`);
      assert(packets.every((p) => p.opaque === 5 && p.status === 0));
    }
    const settings = await roundTrip(bc, packet({ op: OP.STAT, key: "settings" }));
    const binding = settings.find((p) => text(p.key) === "binding_protocol");
    assertEquals(text(binding!.value), "auto-negotiate");
    await tc.close();
    await bc.close();
  } finally {
    await server.stop();
  }
});

Deno.test("serve -t 3: binary writes on one connection are read by text and binary on all threads", async () => {
  const server = await startMemrep(["serve", "-t", "3", "-vv"]);
  await server.waitForLog(/^memrep serve: listening on .*, 3 threads$/);
  try {
    const writer = await connect(server.port);
    const keys = Array.from({ length: 50 }, (_, i) => `tk${i}`);
    const sets = concatBytes(
      ...keys.map((k, i) =>
        packet({ op: OP.SETQ, key: k, value: `v${i}`, extras: setExtras(i, 0) })
      ),
    );
    assertEquals(await roundTrip(writer, sets), []);
    const incr = await roundTrip(
      writer,
      packet({ op: OP.INCR, key: "counter", extras: arithExtras(5n, 100n, 0) }),
    );
    assertEquals(new DataView(incr[0].value.buffer).getBigUint64(0), 100n);
    let stale = 0;
    for (let n = 0; n < 12; n++) {
      const c = await connect(server.port);
      const gets = concatBytes(...keys.map((k) => packet({ op: OP.GETKQ, key: k })));
      const got = await roundTrip(c, gets);
      stale += keys.length - got.filter((r, i) => text(r.value) === `v${i}`).length;
      await c.close();
      const t = await connect(server.port); // text on its own connection: the first byte decides
      assertEquals(await t.request("incr counter 1"), `${101 + n}\r\n`);
      await t.close();
    }
    assertEquals(stale, 0);
    await writer.close();
  } finally {
    await server.stop();
  }
});

Deno.test("serve binary: a value split over many reads and a pipeline of 2,000 quiet sets", async () => {
  const server = await startMemrep(["serve", "-t", "1"]);
  try {
    const c = await connect(server.port);
    const value = "v".repeat(200_000);
    await c.sendSlowly(
      packet({ op: OP.SET, key: "big", value, extras: setExtras(0, 0) }),
      65536,
      5,
    );
    const r = decodeResponse(await c.readUntil((b) => responseEnd(b)));
    assertEquals(r.status, 0);
    const sets = concatBytes(...Array.from(
      { length: 2000 },
      (_, i) => packet({ op: OP.SETQ, key: `q${i}`, value: String(i), extras: setExtras(0, 0) }),
    ));
    assertEquals(await roundTrip(c, sets), []);
    const got = await roundTrip(c, packet({ op: OP.GET, key: "q1999" }));
    assertEquals(text(got[0].value), "1999");
    const big = await roundTrip(c, packet({ op: OP.GET, key: "big" }));
    assertEquals(big[0].value.length, value.length);
    await c.close();
  } finally {
    await server.stop();
  }
});

const OOM_NAME = "serve -M answers a binary set without memory as memcached does";
Deno.test({
  name: OOM_NAME,
  ignore: ignoreUnless(OOM_NAME, ["memcached"]),
  async fn() {
    /** Fill until a set fails; the failure packet, then whether the old key is gone and the connection works. */
    async function run(port: number): Promise<string> {
      const c = await connect(port);
      try {
        const value = "v".repeat(50_000);
        await roundTrip(
          c,
          packet({ op: OP.SET, key: "first", value: "x", extras: setExtras(0, 0) }),
        );
        for (let i = 0; i < 2000; i++) {
          const r = await roundTrip(
            c,
            packet({ op: OP.SET, key: `fill${i}`, value, extras: setExtras(0, 0), opaque: 4 }),
          );
          if (r[0].status !== 0) {
            const after = await roundTrip(c, packet({ op: OP.GET, key: `fill${i}` }));
            return `status=${r[0].status} text=${text(r[0].value)} opaque=${r[0].opaque} ` +
              `cas=${r[0].cas} then get: ${after[0].status}`;
          }
        }
        return "never failed";
      } finally {
        await c.close();
      }
    }
    const ref = await startMemcached(["-m", "2", "-M"]);
    const sut = await startMemrep(["serve", "-t", "1", "-m", "2", "-M"]);
    try {
      const [expected, actual] = await Promise.all([run(ref.port), run(sut.port)]);
      assert(expected.startsWith("status=130 text=Out of memory"), `memcached: ${expected}`);
      assertEquals(actual, expected);
    } finally {
      await sut.stop();
      await ref.stop();
    }
  },
});
