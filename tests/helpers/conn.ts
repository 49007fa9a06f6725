/**
 * A tiny raw TCP client for byte-exact protocol tests. A background pump reads
 * everything into one buffer; `readUntil` and friends consume from it.
 * @module
 */

import { bytesToString, concatBytes, escapeBytes, indexOfBytes, toBytes } from "./bytes.ts";

/** What ends a read: a terminator (string/bytes), a RegExp on the latin1 text, or a function returning the reply length (or -1 for "need more"). */
export type Until = string | Uint8Array | RegExp | ((buf: Uint8Array) => number);

/** Raised when a read times out or the peer closes before the reply is complete. */
export class ReadError extends Error {
  /** Bytes received (and not consumed) when the read gave up. */
  readonly received: Uint8Array;
  /** Creates the error. */
  constructor(message: string, received: Uint8Array) {
    super(`${message}; received so far: "${escapeBytes(received)}"`);
    this.received = received;
  }
}

/** A connected raw test client. Create with {@linkcode connect}. */
export class TestConn {
  readonly #conn: Deno.Conn;
  #buf: Uint8Array = new Uint8Array(0);
  #eof = false;
  #closed = false;
  #waiters = new Set<() => void>();
  readonly #pump: Promise<void>;

  /** Wraps an open TCP (or unix-domain) connection. */
  constructor(conn: Deno.TcpConn | Deno.UnixConn | Deno.TlsConn) {
    this.#conn = conn;
    if ("setNoDelay" in conn) conn.setNoDelay(true);
    this.#pump = this.#run();
  }

  async #run(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        this.#buf = concatBytes(this.#buf, chunk.subarray(0, n));
        this.#notify();
      }
    } catch {
      // reset or closed locally: treat as end of stream
    }
    this.#eof = true;
    this.#notify();
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** True once the peer closed (or reset) the connection. */
  get eof(): boolean {
    return this.#eof;
  }

  /** This end's TCP port (0 for a unix-domain socket): how server logs name the connection. */
  get localPort(): number {
    const a = this.#conn.localAddr;
    return a.transport === "tcp" ? a.port : 0;
  }

  /** Bytes received and not consumed yet. */
  get buffered(): Uint8Array {
    return this.#buf;
  }

  /** Writes all of `data` (strings are latin1: one char, one byte). */
  async send(data: string | Uint8Array): Promise<void> {
    const b = toBytes(data);
    let off = 0;
    while (off < b.length) off += await this.#conn.write(b.subarray(off));
  }

  /** Writes `data` in pieces of `chunkSize` bytes with a pause between, to exercise split reads. */
  async sendSlowly(data: string | Uint8Array, chunkSize = 1, pauseMs = 1): Promise<void> {
    const b = toBytes(data);
    for (let off = 0; off < b.length; off += chunkSize) {
      await this.send(b.subarray(off, off + chunkSize));
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }

  /** Waits until `cond` is true or `timeoutMs` passes or EOF; returns whether cond held. */
  #wait(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), timeoutMs);
      const check = () => {
        if (cond()) finish(true);
        else if (this.#eof) finish(false);
      };
      const finish = (v: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(v);
      };
      this.#waiters.add(check);
      check();
    });
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /**
   * Resolves with the bytes up to and including the end given by `until`,
   * consuming them. Rejects with {@linkcode ReadError} on timeout or EOF.
   */
  async readUntil(until: Until, timeoutMs = 2000): Promise<Uint8Array> {
    const end = endFinder(until);
    let at = -1;
    const ok = await this.#wait(() => (at = end(this.#buf)) >= 0, timeoutMs);
    if (!ok) {
      throw new ReadError(
        this.#eof ? "connection closed before reply ended" : `no complete reply in ${timeoutMs} ms`,
        this.#buf,
      );
    }
    return this.#take(at);
  }

  /** Like {@linkcode readUntil}, decoded as latin1 text. */
  async readUntilText(until: Until, timeoutMs = 2000): Promise<string> {
    return bytesToString(await this.readUntil(until, timeoutMs));
  }

  /** Reads one `\r\n`-terminated line and returns it without the terminator. */
  async readLine(timeoutMs = 2000): Promise<string> {
    const s = await this.readUntilText("\r\n", timeoutMs);
    return s.slice(0, -2);
  }

  /** Reads exactly `n` bytes. */
  readExactly(n: number, timeoutMs = 2000): Promise<Uint8Array> {
    return this.readUntil((b) => (b.length >= n ? n : -1), timeoutMs);
  }

  /**
   * Returns everything that arrives until the line is quiet for `idleMs` (or
   * EOF, or `maxMs`). For replies of unknown shape; slower than readUntil.
   */
  async readIdle(idleMs = 200, maxMs = 3000): Promise<Uint8Array> {
    const deadline = Date.now() + maxMs;
    while (!this.#eof && Date.now() < deadline) {
      const before = this.#buf.length;
      await this.#wait(() => this.#buf.length !== before, Math.min(idleMs, deadline - Date.now()));
      if (this.#buf.length === before) break;
    }
    return this.#take(this.#buf.length);
  }

  /** Resolves true when the peer closes within `timeoutMs` (data still unread is kept). */
  waitClosed(timeoutMs = 2000): Promise<boolean> {
    return this.#wait(() => this.#eof, timeoutMs);
  }

  /**
   * Sends `cmd` (adds `\r\n` when it does not end with `\n`) and returns the
   * reply text up to and including `expectTerminator` (default one line).
   */
  async request(
    cmd: string | Uint8Array,
    expectTerminator: Until = "\r\n",
    timeoutMs = 2000,
  ): Promise<string> {
    let b = toBytes(cmd);
    if (b[b.length - 1] !== 0x0a) b = concatBytes(b, toBytes("\r\n"));
    await this.send(b);
    return await this.readUntilText(expectTerminator, timeoutMs);
  }

  /**
   * `stats [group]` as a name -> value map. Throws on a line that is not
   * `STAT name value`, so a malformed stats reply fails the test.
   */
  async stats(group = "", timeoutMs = 5000): Promise<Map<string, string>> {
    const reply = await this.request(group ? `stats ${group}` : "stats", "END\r\n", timeoutMs);
    const map = new Map<string, string>();
    for (const line of reply.split("\r\n")) {
      const m = /^STAT (\S+) (.*)$/.exec(line);
      if (m) map.set(m[1], m[2]);
      else if (line !== "END" && line !== "") throw new Error(`not "STAT name value": ${line}`);
    }
    return map;
  }

  /** Closes the socket and waits for the reader to stop. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // already closed
      }
    }
    await this.#pump;
  }

  /** Half-closes the write side (peer sees EOF), keeping the read side. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }
}

/** Converts an {@linkcode Until} into "length of the complete reply or -1". */
function endFinder(until: Until): (buf: Uint8Array) => number {
  if (typeof until === "function") return until;
  if (until instanceof RegExp) {
    const re = new RegExp(until.source, until.flags.replace("g", ""));
    return (buf) => {
      const m = re.exec(bytesToString(buf));
      return m ? m.index + m[0].length : -1;
    };
  }
  const t = toBytes(until);
  return (buf) => {
    const i = indexOfBytes(buf, t);
    return i < 0 ? -1 : i + t.length;
  };
}

/** Opens a {@linkcode TestConn} to 127.0.0.1:`port` (or `hostname`). */
export async function connect(port: number, hostname = "127.0.0.1"): Promise<TestConn> {
  return new TestConn(await Deno.connect({ hostname, port }));
}

/** Opens a {@linkcode TestConn} over TLS to 127.0.0.1:`port`, trusting the PEM `caCert`. */
export async function connectTls(port: number, caCert: string): Promise<TestConn> {
  return new TestConn(await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caCert] }));
}

/** Opens a {@linkcode TestConn} to the unix-domain socket at `path`. */
export async function connectUnix(path: string): Promise<TestConn> {
  return new TestConn(await Deno.connect({ transport: "unix", path }));
}

/**
 * Opens a connection the server admits: one turned away with `ERROR Too many
 * open connections` (a slot not yet freed by a close the server has not seen)
 * is retried until `timeoutMs`. A `version` round trip proves admission.
 */
export async function connectAdmitted(port: number, timeoutMs = 10_000): Promise<TestConn> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await connect(port);
    // A refused socket may already be reset when the request is written.
    const line = await c.request("version", "\r\n").catch((e: Error) => e.message);
    if (line.startsWith("VERSION ")) return c;
    await c.close();
    if (Date.now() > deadline) throw new Error(`not admitted within ${timeoutMs} ms: ${line}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Reply-end finder for a retrieval reply (`get`/`gets`/`gat`): walks VALUE
 * headers and their data blocks, so values containing `END\r\n` are safe.
 * Also ends on a single ERROR / CLIENT_ERROR / SERVER_ERROR line.
 */
export function retrievalEnd(buf: Uint8Array): number {
  let off = 0;
  while (true) {
    const eol = indexOfBytes(buf, CRLF, off);
    if (eol < 0) return -1;
    const line = bytesToString(buf.subarray(off, eol));
    if (line === "END") return eol + 2;
    if (/^(ERROR|CLIENT_ERROR|SERVER_ERROR)/.test(line)) return eol + 2;
    const m = /^VALUE \S+ \d+ (\d+)/.exec(line);
    if (!m) return eol + 2; // unexpected line: hand it back as the reply
    const next = eol + 2 + Number(m[1]) + 2;
    if (buf.length < next) return -1;
    off = next;
  }
}

/**
 * Reply-end finder for one meta reply: `VA <n> ...` plus its data block, or
 * any other single line (HD, EN, NF, NS, EX, MN, ME ..., errors).
 */
export function metaEnd(buf: Uint8Array): number {
  const eol = indexOfBytes(buf, CRLF);
  if (eol < 0) return -1;
  const m = /^VA (\d+)/.exec(bytesToString(buf.subarray(0, Math.min(eol, 32))));
  if (!m) return eol + 2;
  const end = eol + 2 + Number(m[1]) + 2;
  return buf.length >= end ? end : -1;
}

const CRLF = toBytes("\r\n");
