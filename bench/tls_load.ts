/**
 * A small memcached load generator that can speak TLS (memcaslap cannot):
 * N connections (default 32), each a loop of 90/10 get/set of 100-byte
 * values over a key space of 16-byte keys, one request in flight per
 * connection as memcaslap, for a fixed duration. The key space is set once
 * before the timed loop so gets hit.
 *
 * `deno run --allow-net --allow-read bench/tls_load.ts --port P [--ca ca.crt]
 * [--conns 32] [--seconds 10] [--keys 10000] [--part 0/1] [--wait]`
 * prints one JSON line ({@link LoadResult}). Without `--ca` it speaks plain
 * text. `--part i/n`: this process preloads only its share of the keys (for
 * several generator processes). With `--wait` it prints `ready` once
 * connected and preloaded, starts on a `go` line from stdin, and after the
 * result waits for stdin to close, so a parent can read its CPU from /proc
 * around exactly the timed loop.
 * @module
 */

import { parseArgs } from "node:util";

/** What one generator run did. */
export interface LoadResult {
  /** Requests completed in the timed loop. */
  ops: number;
  /** gets among them. */
  gets: number;
  /** gets that found no value. */
  misses: number;
  /** Replies that were neither a value, END nor STORED. */
  errors: number;
  /** Length of the timed loop in seconds. */
  seconds: number;
}

/** Settings of a run. */
export interface LoadOptions {
  /** Server port on 127.0.0.1. */
  port: number;
  /** CA certificate PEM: TLS when set, plain text otherwise. */
  caPem?: string;
  /** Connections. */
  conns: number;
  /** Keys in the key space. */
  keys: number;
  /** This process's share of the preload: `index` of `count`. */
  part: { index: number; count: number };
}

const KEY_LEN = 16;
const VALUE_LEN = 100;
const CR = 13, LF = 10;
const enc = new TextEncoder();
const END = enc.encode("END\r\n"), STORED = enc.encode("STORED\r\n");

/** Whether the `n` bytes of `b` are exactly `want`. */
function isExactly(b: Uint8Array, n: number, want: Uint8Array): boolean {
  if (n !== want.length) return false;
  for (let i = 0; i < n; i++) if (b[i] !== want[i]) return false;
  return true;
}

/** Key `i` of the key space: 16 bytes, as memcaslap's minimum. */
function key(i: number): string {
  return "k" + String(i).padStart(KEY_LEN - 1, "0");
}

/** One connection with a reusable reply buffer (replies here are small). */
class Conn {
  #c: Deno.Conn;
  #buf = new Uint8Array(4096);
  #len = 0;
  constructor(c: Deno.Conn) {
    this.#c = c;
  }

  /** Sends `req` and reads its whole reply; returns 1 hit, 0 miss/stored, -1 error. */
  async request(req: Uint8Array, isGet: boolean): Promise<number> {
    for (let off = 0; off < req.length;) off += await this.#c.write(req.subarray(off));
    this.#len = 0;
    for (;;) {
      if (this.#len === this.#buf.length) return -1; // no reply of ours is this long
      const n = await this.#c.read(this.#buf.subarray(this.#len));
      if (n === null) throw new Error("server closed the connection");
      this.#len += n;
      const r = this.#done(isGet);
      if (r !== undefined) return r;
    }
  }

  /** The reply's outcome once it is complete, else undefined. */
  #done(isGet: boolean): number | undefined {
    const b = this.#buf, n = this.#len;
    if (n < 2 || b[n - 2] !== CR || b[n - 1] !== LF) return undefined;
    const value = b[0] === 0x56; // "VALUE "
    if (isGet && value) {
      // A hit ends with "END\r\n" after the data; values here never hold it.
      const end = n >= 5 && b[n - 5] === 0x45 && b[n - 4] === 0x4e && b[n - 3] === 0x44;
      return end && n > VALUE_LEN ? 1 : undefined;
    }
    return isExactly(b, n, isGet ? END : STORED) ? 0 : -1;
  }

  close(): void {
    try {
      this.#c.close();
    } catch { /* already closed */ }
  }
}

/** A connected generator: preload done, ready to {@link Load.run}. */
export class Load {
  #conns: Conn[];
  #gets: Uint8Array[];
  #sets: Uint8Array[];
  constructor(conns: Conn[], gets: Uint8Array[], sets: Uint8Array[]) {
    this.#conns = conns;
    this.#gets = gets;
    this.#sets = sets;
  }

  /** Connects, builds every request once and sets this part's keys. */
  static async open(o: LoadOptions): Promise<Load> {
    const value = "v".repeat(VALUE_LEN);
    const gets: Uint8Array[] = [], sets: Uint8Array[] = [];
    for (let i = 0; i < o.keys; i++) {
      gets.push(enc.encode(`get ${key(i)}\r\n`));
      sets.push(enc.encode(`set ${key(i)} 0 0 ${VALUE_LEN}\r\n${value}\r\n`));
    }
    const conns: Conn[] = [];
    try {
      for (let i = 0; i < o.conns; i++) {
        const tcp = await Deno.connect({ hostname: "127.0.0.1", port: o.port });
        tcp.setNoDelay(true);
        const c = o.caPem === undefined
          ? tcp
          : await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [o.caPem] });
        conns.push(new Conn(c));
      }
      const mine: number[] = [];
      for (let k = o.part.index; k < o.keys; k += o.part.count) mine.push(k);
      await Promise.all(conns.map(async (c, ci) => {
        for (let j = ci; j < mine.length; j += conns.length) {
          if (await c.request(sets[mine[j]], false) < 0) throw new Error("preload set failed");
        }
      }));
    } catch (e) {
      for (const c of conns) c.close();
      throw e;
    }
    return new Load(conns, gets, sets);
  }

  /** Runs the 90/10 loop on every connection for `seconds`, then closes them. */
  async run(seconds: number, seed = Date.now()): Promise<LoadResult> {
    const r: LoadResult = { ops: 0, gets: 0, misses: 0, errors: 0, seconds: 0 };
    const keys = this.#gets.length;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    try {
      await Promise.all(this.#conns.map(async (c, ci) => {
        let x = (seed ^ (ci * 0x9e3779b9)) >>> 0 || 1; // xorshift32 per connection
        while (performance.now() < deadline) {
          x ^= x << 13, x >>>= 0, x ^= x >>> 17, x ^= x << 5, x >>>= 0;
          const k = x % keys, isGet = (x >>> 24) % 10 !== 0;
          const got = await c.request(isGet ? this.#gets[k] : this.#sets[k], isGet);
          r.ops++;
          if (isGet) r.gets++;
          if (got < 0) r.errors++;
          else if (isGet && got === 0) r.misses++;
        }
      }));
    } finally {
      r.seconds = (performance.now() - t0) / 1000;
      for (const c of this.#conns) c.close();
    }
    return r;
  }
}

/** Reads stdin lines until one equals `want` (or stdin ends: false). */
async function waitLine(reader: ReadableStreamDefaultReader<Uint8Array>, want: string) {
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    text += new TextDecoder().decode(value);
    if (text.split("\n").some((l) => l.trim() === want)) return true;
  }
}

async function cli(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      ca: { type: "string" },
      conns: { type: "string", default: "32" },
      seconds: { type: "string", default: "10" },
      keys: { type: "string", default: "10000" },
      part: { type: "string", default: "0/1" },
      wait: { type: "boolean", default: false },
    },
  });
  const [index, count] = values.part.split("/").map(Number);
  const load = await Load.open({
    port: Number(values.port),
    caPem: values.ca === undefined ? undefined : await Deno.readTextFile(values.ca),
    conns: Number(values.conns),
    keys: Number(values.keys),
    part: { index, count },
  });
  const stdin = Deno.stdin.readable.getReader();
  if (values.wait) {
    console.log("ready");
    if (!(await waitLine(stdin, "go"))) return 1;
  }
  console.log(JSON.stringify(await load.run(Number(values.seconds))));
  if (values.wait) await waitLine(stdin, "\u0000"); // until stdin closes
  return 0;
}

if (import.meta.main) Deno.exit(await cli(Deno.args));
