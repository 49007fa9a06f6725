/**
 * memcached's UDP protocol (`serve -U`): real datagrams on loopback, to
 * memrep and, differentially, to memcached 1.6.18 (`-U <port> -t 1`: one
 * thread, so its per-socket state is deterministic).
 */

import { equal, ok } from "../helpers/assert.ts";
import { arithExtras, OP, packet, setExtras } from "../helpers/binary.ts";
import { connect, freePort, ignoreUnless, startMemcached, startMemrep } from "../helpers/mod.ts";
import { mulberry32 } from "../helpers/random.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One datagram received: its header fields and payload. */
interface Datagram {
  id: number;
  seq: number;
  total: number;
  reserved: number;
  payload: Uint8Array;
}

/** A UDP client socket on loopback talking to one server port. */
class UdpClient {
  #sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  #port: number;
  #queue: Datagram[] = [];
  #waiter: (() => void) | null = null;

  constructor(port: number) {
    this.#port = port;
    this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      for (;;) {
        const [d] = await this.#sock.receive();
        const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
        this.#queue.push({
          id: v.getUint16(0),
          seq: v.getUint16(2),
          total: v.getUint16(4),
          reserved: v.getUint16(6),
          payload: d.slice(8),
        });
        this.#waiter?.();
      }
    } catch { /* closed */ }
  }

  /** Send one raw datagram (header included). */
  async sendRaw(bytes: Uint8Array): Promise<void> {
    await this.#sock.send(bytes, { transport: "udp", hostname: "127.0.0.1", port: this.#port });
  }

  /** Send `payload` framed as one datagram of request `id`. */
  send(payload: Uint8Array | string, id: number): Promise<void> {
    const p = typeof payload === "string" ? enc.encode(payload) : payload;
    const d = new Uint8Array(8 + p.length);
    new DataView(d.buffer).setUint16(0, id);
    new DataView(d.buffer).setUint16(4, 1);
    d.set(p, 8);
    return this.sendRaw(d);
  }

  /**
   * The datagrams that arrive until none came for `quietMs` (the first
   * may take `firstMs`).
   */
  async collect(firstMs: number, quietMs = 300): Promise<Datagram[]> {
    const got: Datagram[] = [];
    let wait = firstMs;
    for (;;) {
      if (this.#queue.length === 0) {
        const arrived = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), wait);
          this.#waiter = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        this.#waiter = null;
        if (!arrived) return got;
      }
      got.push(...this.#queue.splice(0));
      wait = quietMs;
    }
  }

  close(): void {
    this.#sock.close();
  }
}

/** Binary replies carry server-chosen CAS values: zero them for comparison. */
function normalize(payload: Uint8Array): Uint8Array {
  const p = payload.slice();
  let at = 0;
  while (p[at] === 0x81 && p.length - at >= 24) {
    p.fill(0, at + 16, at + 24);
    at += 24 + new DataView(p.buffer, at).getUint32(8);
  }
  return p;
}

/** What one exchange produced, as text (one line per datagram). */
function show(ds: Datagram[]): string {
  return ds.map((d) =>
    `${d.id}/${d.seq}/${d.total}/${d.reserved} ${
      JSON.stringify(dec.decode(normalize(d.payload)).replace(/[^\x20-\x7e\r\n]/g, "?"))
    }`
  ).join("\n");
}

/** Reassemble the datagrams of one message (in sequence order). */
function message(ds: Datagram[]): string {
  const sorted = [...ds].sort((a, b) => a.seq - b.seq);
  return sorted.map((d) => dec.decode(d.payload)).join("");
}

const VALUE_20K = Array.from({ length: 20000 }, (_, i) => "CDEFGHIJKLMNOPQRSTUVWXYZ"[i % 24])
  .join("");

/** Exchanges compared with memcached: [payload or raw datagram, expects a reply]. */
function exchanges(): Array<{ send: Uint8Array | string; raw?: boolean; reply: boolean }> {
  const bin = (p: Parameters<typeof packet>[0]) => packet(p);
  return [
    { send: "set foo 0 0 6\r\nfooval\r\n", reply: true },
    { send: "get foo\r\n", reply: true },
    { send: "get nothere\r\n", reply: true },
    { send: "get foo nothere foo\r\n", reply: true }, // one message per key
    { send: "get nothere foo\r\n", reply: true }, // a missed first key: a bare header
    { send: "get foo\r\nversion\r\n", reply: true },
    { send: "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 3\r\n", reply: true },
    { send: "set q 0 0 1 noreply\r\n1\r\nget q\r\n", reply: true },
    { send: "delete q\r\n", reply: true },
    { send: "delete q\r\n", reply: true },
    { send: `set big 0 0 ${VALUE_20K.length}\r\n${VALUE_20K}\r\n`, reply: true },
    { send: "get big\r\n", reply: true }, // 15 datagrams
    { send: "bogus\r\n\r\n", reply: true },
    { send: "get foo", reply: false }, // a line cut off: dropped
    { send: bin({ op: OP.SET, key: "b", value: "bval", extras: setExtras(3, 0) }), reply: true },
    { send: bin({ op: OP.GET, key: "b" }), reply: true },
    { send: bin({ op: OP.GETK, key: "b" }), reply: true },
    { send: bin({ op: OP.GET, key: "nob" }), reply: true },
    { send: bin({ op: OP.GETQ, key: "nob" }), reply: true }, // a quiet miss: a bare header
    {
      send: new Uint8Array([...bin({ op: OP.GETQ, key: "nob" }), ...bin({ op: OP.NOOP })]),
      reply: true,
    },
    {
      send: new Uint8Array([...bin({ op: OP.GET, key: "b" }), ...bin({ op: OP.GETQ, key: "x" })]),
      reply: true,
    },
    { send: bin({ op: OP.INCR, key: "c", extras: arithExtras(1n, 7n, 0) }), reply: true },
    { send: bin({ op: OP.INCR, key: "c", extras: arithExtras(5n, 0n, 0) }), reply: true },
    { send: bin({ op: OP.DECR, key: "c", extras: arithExtras(2n, 0n, 0) }), reply: true },
    { send: bin({ op: OP.DELETE, key: "c" }), reply: true },
    // Frames memcached drops: a request of 2 datagrams, a header only, a short datagram.
    {
      send: new Uint8Array([0, 9, 0, 0, 0, 2, 0, 0, ...enc.encode("get foo\r\n")]),
      raw: true,
      reply: false,
    },
    { send: new Uint8Array([0, 9, 0, 0, 0, 1, 0, 0]), raw: true, reply: false },
    { send: new Uint8Array([1, 2, 3]), raw: true, reply: false },
    // Sequence number and reserved field are not looked at.
    {
      send: new Uint8Array([0, 9, 0, 5, 0, 1, 7, 7, ...enc.encode("get foo\r\n")]),
      raw: true,
      reply: true,
    },
    // A value cut off takes the next datagram whole (header included) as its rest.
    { send: "set y 0 0 10\r\nab", reply: false },
    { send: "xyzw", reply: true }, // 12 bytes short of 10 + \r\n: bad data chunk
    { send: "set z 0 0 12\r\n", reply: false },
    {
      send: new Uint8Array([0, 9, 0, 0, 0, 1, 0, 0, 65, 66, 67, 68, 13, 10, 88]),
      raw: true,
      reply: true,
    },
    { send: "get z\r\n", reply: true },
    { send: "get foo\r\nquit\r\nget foo\r\n", reply: true }, // quit: a bare header, the rest dropped
  ];
}

async function run(port: number): Promise<string[]> {
  const c = new UdpClient(port);
  try {
    const seen: string[] = [];
    let id = 100;
    for (const x of exchanges()) {
      const rid = ++id;
      const bytes = typeof x.send === "string" ? enc.encode(x.send) : x.send;
      if (x.raw) await c.sendRaw(bytes);
      else await c.send(bytes, rid);
      seen.push(show(await c.collect(x.reply ? 10_000 : 500)));
    }
    return seen;
  } finally {
    c.close();
  }
}

const DIFF = "UDP replies, framing and drops match memcached's, datagram for datagram";
Deno.test({
  name: DIFF,
  ignore: ignoreUnless(DIFF, ["memcached"]),
  async fn() {
    const [ru, su] = [freePort(), freePort()];
    const ref = await startMemcached(["-t", "1", "-U", String(ru)]);
    const sut = await startMemrep(["serve", "-t", "1", "-U", String(su)]);
    try {
      const [expected, actual] = await Promise.all([run(ru), run(su)]);
      const list = exchanges();
      for (let i = 0; i < list.length; i++) {
        const what = typeof list[i].send === "string" ? list[i].send : `bytes #${i}`;
        equal(actual[i], expected[i], `exchange ${i} (${JSON.stringify(what).slice(0, 60)})`);
      }
      ok(expected[11].split("\n").length === 15, "the 20 KB reply is 15 datagrams");
    } finally {
      await Promise.all([ref.stop(), sut.stop()]);
    }
  },
});

Deno.test("UDP: request ids are echoed, a 20 KB value comes back whole, writes are shared with TCP", async () => {
  const up = freePort();
  const sut = await startMemrep(["serve", "-U", String(up)]);
  const c = new UdpClient(up);
  const t = await connect(sut.port);
  try {
    await t.send(`set big 0 0 ${VALUE_20K.length}\r\n${VALUE_20K}\r\n`);
    await t.readUntil("STORED\r\n");
    for (const id of [0, 161, 161, 162, 0xffff]) {
      await c.send("get big\r\n", id);
      const ds = await c.collect(10_000);
      ok(ds.length > 1 && ds.every((d) => d.id === id && d.total === ds.length), show(ds));
      ok(ds.every((d) => d.payload.length + 8 <= 1400), "datagrams of at most 1400 bytes");
      equal(message(ds), `VALUE big 0 20000\r\n${VALUE_20K}\r\nEND\r\n`);
    }
    await c.send("set viaudp 5 0 3\r\nabc\r\n", 7);
    equal(message(await c.collect(10_000)), "STORED\r\n");
    await t.send("get viaudp\r\n");
    await t.readUntil("VALUE viaudp 5 3\r\nabc\r\nEND\r\n");
    // stats conns shows the UDP socket as memcached does (stats-conns.t).
    await t.send("stats conns\r\n");
    const conns = dec.decode(await t.readUntil("END\r\n", 10_000));
    ok(
      new RegExp(`STAT \\d+:UDP UDP\r\nSTAT \\d+:addr udp:127\\.0\\.0\\.1:${up}\r\n`).test(conns),
      conns,
    );
    await t.send("stats settings\r\n");
    ok(dec.decode(await t.readUntil("END\r\n", 10_000)).includes(`STAT udpport ${up}\r\n`));
  } finally {
    c.close();
    await t.close();
    await sut.stop();
  }
});

Deno.test("UDP: garbage datagrams leave the server answering", async () => {
  const up = freePort();
  const sut = await startMemrep(["serve", "-U", String(up), "-t", "1"]);
  const c = new UdpClient(up);
  try {
    const rand = mulberry32(67);
    for (let i = 0; i < 300; i++) {
      const n = Math.floor(rand() * 2000);
      const d = new Uint8Array(n);
      for (let j = 0; j < n; j++) d[j] = Math.floor(rand() * 256);
      // Frames that parse (one datagram), payloads that do not (no binary magic: a body
      // length from random bytes would take the next datagrams, as memcached does).
      if (n > 8) {
        d.set([0, 1, 0, 0, 0, 1, 0, 0]);
        if (d[8] === 0x80) d[8] = 0x20;
      }
      await c.sendRaw(d);
    }
    // Bad binary packets: a wrong magic byte after a good packet, a header cut short.
    await c.send(new Uint8Array([...packet({ op: OP.NOOP }), 0x99, ...new Uint8Array(23)]), 2);
    await c.send(packet({ op: OP.NOOP }).subarray(0, 20), 3);
    await c.collect(1000);
    await c.send("set after 0 0 2\r\nok\r\nget after\r\n", 4);
    const ds = await c.collect(10_000);
    equal(
      ds.filter((d) => d.id === 4).map((d) => dec.decode(d.payload)).join(""),
      "STORED\r\nVALUE after 0 2\r\nok\r\nEND\r\n",
    );
    const t = await connect(sut.port);
    await t.send("version\r\n");
    await t.readUntil("\r\n");
    await t.close();
  } finally {
    c.close();
    await sut.stop();
  }
});
