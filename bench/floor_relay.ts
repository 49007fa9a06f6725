/**
 * The least a Deno proxy can do per request, as a yardstick for `memrep
 * proxy` (the proxy-floor section): text `get`/`set` only, the key hashed
 * by FNV-1a onto one pipelined connection per memcached, replies matched
 * to clients by a FIFO and copied back, no timeouts, failover or checks.
 * Not a product: malformed input or a lost backend stops it.
 *
 * `deno run --allow-net bench/floor_relay.ts <port> <host:port>...`
 * @module
 */

const LF = 10;
const SPACE = 32;
const CR = 13;

/** An output buffer written with one `conn.write` per microtask turn. */
class Out {
  readonly conn: Deno.Conn;
  #buf = new Uint8Array(16384);
  #len = 0;
  #writing = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Queue `b[start, end)`. */
  push(b: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (this.#len + n > this.#buf.length) {
      const next = new Uint8Array((this.#len + n) * 2);
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    this.#buf.set(b.subarray(start, end), this.#len);
    this.#len += n;
    if (!this.#writing) {
      this.#writing = true;
      queueMicrotask(this.#flush);
    }
  }

  readonly #flush = (): void => {
    if (this.#len === 0) {
      this.#writing = false;
      return;
    }
    const bytes = this.#buf.slice(0, this.#len);
    this.#len = 0;
    this.conn.write(bytes).then(this.#flush, () => {});
  };
}

function indexOfLf(b: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) if (b[i] === LF) return i;
  return -1;
}

/** The decimal number ending just before `b[end]` (the last token of a line). */
function lastNumber(b: Uint8Array, end: number): number {
  let i = end - 1;
  while (b[i] !== SPACE) i--;
  let n = 0;
  for (let j = i + 1; j < end; j++) n = n * 10 + b[j] - 48;
  return n;
}

/** End of the complete reply at `b[start]` (a one-key get's VALUE block or a line), or -1. */
function replyEnd(b: Uint8Array, start: number, end: number): number {
  const lf = indexOfLf(b, start, end);
  if (lf < 0) return -1;
  if (b[start] !== 86 /* V */) return lf + 1;
  const after = lf + 1 + lastNumber(b, lf - 1) + 2 + 5; // data, CRLF, END\r\n
  return after <= end ? after : -1;
}

/** One memcached: a pipelined connection and the clients waiting for its replies, in order. */
class Backend {
  readonly out: Out;
  readonly waiting: Out[] = [];
  #head = 0;

  constructor(conn: Deno.Conn) {
    this.out = new Out(conn);
    this.#read(conn);
  }

  async #read(conn: Deno.Conn): Promise<void> {
    let buf = new Uint8Array(65536);
    let r = 0, w = 0;
    for (;;) {
      if (w === buf.length) {
        if (r === 0) {
          const next = new Uint8Array(buf.length * 2);
          next.set(buf);
          buf = next;
        } else {
          buf.copyWithin(0, r, w);
          w -= r;
          r = 0;
        }
      }
      const n = await conn.read(w === 0 ? buf : buf.subarray(w));
      if (n === null) throw new Error("backend closed");
      w += n;
      for (let e = replyEnd(buf, r, w); e >= 0; e = replyEnd(buf, r, w)) {
        const client = this.waiting[this.#head++];
        if (this.#head === this.waiting.length) this.waiting.length = this.#head = 0;
        client.push(buf, r, e);
        r = e;
      }
      if (r === w) r = w = 0;
    }
  }
}

async function serveClient(conn: Deno.Conn, backends: Backend[]): Promise<void> {
  const out = new Out(conn);
  let buf = new Uint8Array(16384);
  let r = 0, w = 0;
  for (;;) {
    if (w === buf.length) {
      const next = new Uint8Array(buf.length * 2);
      next.set(buf);
      buf = next;
    }
    const n = await conn.read(w === 0 ? buf : buf.subarray(w));
    if (n === null) return;
    w += n;
    for (;;) {
      const lf = indexOfLf(buf, r, w);
      if (lf < 0) break;
      let end = lf + 1;
      if (buf[r] === 115 /* set */) {
        end += lastNumber(buf, lf - 1) + 2;
        if (end > w) break;
      }
      let ks = r;
      while (buf[ks] !== SPACE) ks++;
      ks++;
      let h = 0x811c9dc5;
      for (let i = ks; buf[i] !== SPACE && buf[i] !== CR; i++) {
        h = Math.imul(h ^ buf[i], 0x01000193);
      }
      const b = backends[(h >>> 0) % backends.length];
      b.waiting.push(out);
      b.out.push(buf, r, end);
      r = end;
    }
    if (r === w) r = w = 0;
    else {
      buf.copyWithin(0, r, w);
      w -= r;
      r = 0;
    }
  }
}

async function main(args: string[]): Promise<void> {
  const [port, ...servers] = args;
  const backends: Backend[] = [];
  for (const s of servers) {
    const [hostname, p] = s.split(":");
    const c = await Deno.connect({ hostname, port: Number(p) });
    c.setNoDelay(true);
    backends.push(new Backend(c));
  }
  for await (const conn of Deno.listen({ hostname: "127.0.0.1", port: Number(port) })) {
    conn.setNoDelay(true);
    serveClient(conn, backends).catch(() => conn.close());
  }
}

if (import.meta.main) await main(Deno.args);
