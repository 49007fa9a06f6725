/**
 * One pipelined memcached client (proxy backends, `replicate`, tests).
 *
 * Requests are copied into an output buffer and sent with one socket write
 * per tick; replies are read into a reused growable buffer and parsed by the
 * one reply parser (lib/protocol/response.ts), resolving requests in order.
 * @module
 */

import { mark, TRACE } from "../trace.ts";
import { DumpSink } from "./dump_sink.ts";
import {
  ascii,
  type DumpEntry,
  isErrorKind,
  Op,
  type OpCode,
  ReplyKind,
  ReplyParser,
  writeUint,
} from "../protocol/mod.ts";
import { ClientError, ReplyError } from "./errors.ts";
import { errorText, type RawIo, rawIo } from "../transport/mod.ts";
import { Reply, type ValueItem } from "./reply.ts";

/** Connection options. */
export interface ClientOptions {
  /** Give up connecting after this long (default 3000 ms). */
  connectTimeoutMs?: number;
  /**
   * Close the connection when the oldest outstanding request has seen no
   * reply for this long (default 5000 ms; 0 disables).
   */
  requestTimeoutMs?: number;
  /**
   * Log in first, as text clients of memcached -Y do: the connection sends
   * `set auth 0 0 <n>` with `user password` and must be answered STORED.
   */
  login?: { user: string; password: string };
  /** Speak TLS, trusting `ca` (PEM; Deno's roots when absent). */
  tls?: { ca?: string };
  /**
   * On a request timeout (or {@linkcode Client.abandon}), half-close instead
   * of closing and read on, discarding, until the server closes its side (it
   * has then applied or dropped every byte sent here), for at most this long
   * (ms; 0, the default: close at once). See {@linkcode Client.drained}.
   */
  drainMs?: number;
}

/** A key: a string (UTF-8 encoded) or raw bytes. */
export type Key = string | Uint8Array;

/** A stored item as returned by get/gets. */
export interface Item {
  /** Value bytes (a view into the reply copy). */
  value: Uint8Array;
  /** Client flags. */
  flags: number;
  /** CAS (gets only). */
  cas?: bigint;
}

interface Pending {
  op: OpCode;
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
  dump: DumpSink | undefined;
  /** Set by {@linkcode Client.requestFrame}: gets the frame in place, no Reply. */
  frame: FrameHandler | undefined;
}

/**
 * Receives one complete reply frame `buf[start, start + length)` while it is
 * still in the client's read buffer (valid only during the call), with the
 * parser describing it. Used by the proxy to relay replies without a copy.
 */
export type FrameHandler = (
  buf: Uint8Array,
  start: number,
  length: number,
  parser: ReplyParser,
) => void;

const CRLF = ascii("\r\n");
const MIN_READ = 16384;
const INITIAL_BUFFER = 65536;
const SHRINK_ABOVE = 4 * 1048576;
function keyBytes(key: Key): Uint8Array {
  return typeof key === "string" ? ascii(key) : key;
}

/** Builds `<word> <key> <n> <n> <n>\r\n`-style command lines as bytes. */
function line(...parts: (string | number | Uint8Array)[]): Uint8Array {
  let n = 2;
  for (const p of parts) n += (typeof p === "number" ? 16 : p.length) + 1;
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out[o++] = 0x20;
    const p = parts[i];
    if (typeof p === "number") o = writeUint(out, o, p);
    else if (typeof p === "string") {
      for (let j = 0; j < p.length; j++) out[o++] = p.charCodeAt(j);
    } else {
      out.set(p, o);
      o += p.length;
    }
  }
  out[o++] = 13;
  out[o++] = 10;
  return out.subarray(0, o);
}

/** A pipelined connection to one memcached-protocol server. */
export class Client {
  /** `host:port`, for messages. */
  readonly server: string;
  readonly #conn: Deno.Conn;
  /** Reads and writes of #conn through Deno's ops (one promise fewer per read). */
  readonly #io: RawIo;
  readonly #timeoutMs: number;
  readonly #drainMs: number;
  readonly #parser = new ReplyParser();

  #rbuf = new Uint8Array(INITIAL_BUFFER);
  #rpos = 0;
  #wpos = 0;

  #out = new Uint8Array(INITIAL_BUFFER);
  #outLen = 0;
  #spare = new Uint8Array(INITIAL_BUFFER);
  #writing = false;
  #flushQueued = false;

  // Requests issued while a metadump owns the connection wait here.
  #held: Uint8Array[] = [];
  #heldQueue: Pending[] = [];
  #exclusive: DumpSink | undefined;
  #idleWaiters: (() => void)[] = [];
  #dumpChain: Promise<void> = Promise.resolve();

  #queue: (Pending | undefined)[] = [];
  #head = 0;

  #closed = false;
  #closeError: Error | undefined;
  #closeListeners: ((err: Error | undefined) => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastProgress = 0;
  /** A reply (or dump line) completed since the clock was last read: #stamp reads it. */
  #progress = false;
  #paused: Promise<void> | undefined;
  /** Half-closed after a failure, reading until the server closes (see drainMs). */
  #draining = false;
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  #drained: Promise<boolean> = Promise.resolve(true);
  #drainedResolve: ((fenced: boolean) => void) | undefined;

  private constructor(conn: Deno.Conn, server: string, options: ClientOptions) {
    this.#conn = conn;
    this.#io = rawIo(conn);
    this.server = server;
    this.#timeoutMs = options.requestTimeoutMs ?? 5000;
    this.#drainMs = options.drainMs ?? 0;
    this.#readLoop();
  }

  /** Connects with TCP_NODELAY; rejects with a {@linkcode ClientError} naming the server. */
  static async connect(host: string, port: number, options: ClientOptions = {}): Promise<Client> {
    const server = serverName(host, port);
    const timeoutMs = options.connectTimeoutMs ?? 3000;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    let conn: Deno.Conn;
    try {
      if (isUnixPath(host)) {
        if (options.tls) throw new Error("TLS over a unix-domain socket is not supported");
        conn = await Deno.connect({ transport: "unix", path: host });
        // An accept backlog that is full does not block a unix connect; no timer race here.
      } else {
        conn = await connectTcp(host, port, ac.signal, options.tls);
      }
    } catch (err) {
      const why = ac.signal.aborted
        ? `connect timed out after ${timeoutMs} ms`
        : `cannot connect: ${errorText(err)}`;
      throw new ClientError("connect", server, why, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    const client = new Client(conn, server, options);
    if (options.login) await client.#login(options.login);
    return client;
  }

  async #login(login: { user: string; password: string }): Promise<void> {
    const token = new TextEncoder().encode(`${login.user} ${login.password}`);
    const head = new TextEncoder().encode(`set auth 0 0 ${token.length}\r\n`);
    const bytes = new Uint8Array(head.length + token.length + 2);
    bytes.set(head);
    bytes.set(token, head.length);
    bytes.set([13, 10], head.length + token.length);
    let line: string;
    try {
      line = (await this.request(bytes, Op.SET)).line;
    } catch (err) {
      this.close();
      throw err;
    }
    if (line !== "STORED") {
      this.close();
      throw new ClientError("auth", this.server, `login as ${login.user} refused: ${line}`);
    }
  }

  /** True once the connection is closed (by {@linkcode close} or a failure). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Resolves once nothing sent on this connection can still be applied by
   * the server: true when the server closed it after a drain (or it was
   * closed without one, or reset), false when the drain gave up after
   * `drainMs` (bytes may then still land).
   */
  get drained(): Promise<boolean> {
    return this.#drained;
  }

  /** Why the client closed (undefined after a plain {@linkcode close}). */
  get closeError(): Error | undefined {
    return this.#closeError;
  }

  /**
   * Send the requests buffered so far now rather than at the end of this
   * tick (a multi-get's fan-out: the server starts on its part while the
   * caller goes on). Nothing happens while a write is in flight.
   */
  flush(): void {
    if (this.#flushQueued && !this.#writing) this.#flush();
  }

  /** Requests sent or queued whose replies have not arrived yet. */
  get pending(): number {
    return this.#queue.length - this.#head;
  }

  /** Calls `listener` once when the client closes, with the failure if any. */
  onClose(listener: (err: Error | undefined) => void): void {
    if (this.#closed) queueMicrotask(() => listener(this.#closeError));
    else this.#closeListeners.push(listener);
  }

  /**
   * Sends one complete raw request (command line and data block, producing
   * exactly one reply: no `noreply`/`q`) and resolves with its reply frame.
   * Many may be outstanding; replies resolve in order. Requests issued in
   * the same tick go out in one socket write. The bytes are copied at once.
   * Rejects, and the client closes, on timeout, connection loss or an
   * unparseable reply.
   */
  request(bytes: Uint8Array, op: OpCode): Promise<Reply> {
    return this.#request(op, bytes);
  }

  /**
   * Sends a request that gets no reply (`noreply`, meta `q` that succeeds).
   * Beware: memcached still answers errors of such requests, which then
   * arrive ahead of the replies of later requests; errors arriving with no
   * request outstanding are dropped.
   */
  send(...parts: Uint8Array[]): void {
    if (this.#closed) throw this.#closedError();
    if (this.#exclusive !== undefined) {
      for (const part of parts) this.#held.push(part.slice());
    } else this.#write(parts);
  }

  /**
   * Like {@linkcode request}, with the request given in parts (say a command
   * line, a value and `\r\n`, copied at once) and without a Promise or a
   * copied Reply: the reply frame goes to `onFrame` in place, in order with other replies (on
   * the read path, before promise callbacks of later replies run).
   * `onError` runs instead (at most once, possibly at once) when the
   * connection fails or is closed.
   */
  requestFrame(
    op: OpCode,
    parts: readonly Uint8Array[],
    onFrame: FrameHandler,
    onError: (err: Error) => void,
  ): void {
    if (this.#closed) {
      onError(this.#closedError());
      return;
    }
    // Every Pending has the same shape (one hidden class in the queue).
    const p: Pending = { op, resolve: noop, reject: onError, dump: undefined, frame: onFrame };
    if (this.#exclusive !== undefined) {
      this.#heldQueue.push(p);
      for (const part of parts) this.#held.push(part.slice());
      return;
    }
    this.#enqueue(p, parts);
  }

  #request(op: OpCode, ...parts: Uint8Array[]): Promise<Reply> {
    if (this.#closed) return Promise.reject(this.#closedError());
    return new Promise<Reply>((resolve, reject) => {
      const p: Pending = { op, resolve, reject, dump: undefined, frame: undefined };
      if (this.#exclusive !== undefined) {
        this.#heldQueue.push(p);
        for (const part of parts) this.#held.push(part.slice());
        return;
      }
      this.#enqueue(p, parts);
    });
  }

  #enqueue(p: Pending, parts: readonly Uint8Array[]): void {
    // The timeout counts from the later of the head's issue and the last reply: that is the
    // last reply's time unless the queue was empty (one clock read per idle-to-busy step).
    if (this.#queue.length === this.#head) this.#lastProgress = Date.now();
    this.#queue.push(p);
    this.#write(parts);
    this.#armTimer();
  }

  #closedError(): Error {
    return this.#closeError ?? new ClientError("closed", this.server, "client closed");
  }

  #write(parts: readonly Uint8Array[]): void {
    let n = 0;
    for (const p of parts) n += p.length;
    this.#reserveOut(n);
    for (const p of parts) {
      if (p.length < 64) {
        const out = this.#out;
        let o = this.#outLen;
        for (let i = 0; i < p.length; i++) out[o++] = p[i];
      } else this.#out.set(p, this.#outLen);
      this.#outLen += p.length;
    }
    if (!this.#flushQueued && !this.#writing) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  #reserveOut(n: number): void {
    const need = this.#outLen + n;
    if (need <= this.#out.length) return;
    let size = this.#out.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#out.subarray(0, this.#outLen));
    this.#out = next;
  }

  /**
   * Send what is buffered: one `conn.write` per tick with bound callbacks
   * (no async function per flush); a partial write goes on from where it
   * stopped. Double buffering: #spare is written while #out collects.
   */
  readonly #flush = (): void => {
    this.#flushQueued = false;
    if (this.#writing || this.#closed || this.#outLen === 0) return;
    this.#writing = true;
    const buf = this.#out;
    this.#writeLen = this.#outLen;
    this.#writeOff = 0;
    this.#out = this.#spare.length >= INITIAL_BUFFER ? this.#spare : new Uint8Array(INITIAL_BUFFER);
    this.#outLen = 0;
    this.#spare = buf;
    this.#send(buf.subarray(0, this.#writeLen));
  };

  /** One write; a synchronous throw (a closed resource) fails as a rejection does. */
  #send(bytes: Uint8Array): void {
    if (TRACE) mark("bsend");
    try {
      this.#io.write(bytes).then(this.#written, this.#writeFailed);
      if (TRACE) mark("bsent");
    } catch (err) {
      this.#writeFailed(err);
    }
  }

  /** Bytes of #spare being written, and written so far. */
  #writeLen = 0;
  #writeOff = 0;

  readonly #written = (n: number): void => {
    this.#writeOff += n;
    const buf = this.#spare;
    if (this.#writeOff < this.#writeLen && !this.#closed) {
      this.#send(buf.subarray(this.#writeOff, this.#writeLen));
      return;
    }
    if (buf.length > SHRINK_ABOVE) this.#spare = new Uint8Array(INITIAL_BUFFER);
    this.#writing = false;
    this.#flush();
  };

  readonly #writeFailed = (err: unknown): void => {
    this.#writing = false;
    this.#fail(
      new ClientError("closed", this.server, `write failed: ${errorText(err)}`, { cause: err }),
    );
  };

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.#paused !== undefined) {
          await this.#paused;
          this.#paused = undefined;
          this.#lastProgress = Date.now();
          if (this.#closed) return;
          this.#process();
          this.#stamp();
          continue;
        }
        if (this.#rbuf.length - this.#wpos < MIN_READ) this.#makeRoom();
        // An empty buffer is read into whole: no view to allocate.
        const n = await this.#io.read(
          this.#wpos === 0 ? this.#rbuf : this.#rbuf.subarray(this.#wpos),
        );
        if (n === 0) {
          if (this.#draining) return this.#endDrain(true);
          this.#fail(new ClientError("closed", this.server, "connection closed by server"));
          return;
        }
        if (this.#closed) {
          if (!this.#draining) return;
          this.#rpos = this.#wpos = 0; // replies nobody waits for
          continue;
        }
        if (TRACE) mark("bread");
        this.#wpos += n;
        this.#process();
        this.#stamp();
      }
    } catch (err) {
      if (this.#draining) this.#endDrain(true);
      else if (!this.#closed) {
        this.#fail(
          new ClientError("closed", this.server, `read failed: ${errorText(err)}`, { cause: err }),
        );
      }
    }
  }

  #makeRoom(): void {
    const used = this.#wpos - this.#rpos;
    if (this.#rpos > 0) {
      this.#rbuf.copyWithin(0, this.#rpos, this.#wpos);
      this.#rpos = 0;
      this.#wpos = used;
    }
    if (this.#rbuf.length - this.#wpos < MIN_READ) {
      const next = new Uint8Array(this.#rbuf.length * 2);
      next.set(this.#rbuf.subarray(0, used));
      this.#rbuf = next;
    }
  }

  #process(): void {
    const parser = this.#parser;
    while (this.#rpos < this.#wpos && !this.#closed) {
      const p = this.#queue[this.#head];
      const buf = this.#rbuf;
      if (p === undefined) {
        if (!this.#dropUnsolicited()) return;
        continue;
      }
      if (p.dump !== undefined) {
        const sink = p.dump;
        if (sink.full) {
          this.#paused = sink.waitForSpace();
          return;
        }
        const r = parser.parseDumpLine(buf, this.#rpos, this.#wpos);
        if (r === 0) break;
        if (r < 0) return this.#protocolError(parser.error);
        if (parser.kind === ReplyKind.DUMP_LINE) {
          sink.push(buf, parser.textStart, parser.textEnd);
          this.#rpos += r;
          this.#progress = true;
          sink.wakeConsumer();
          continue;
        }
        const reply = new Reply(parser, buf, this.#rpos, r);
        this.#rpos += r;
        this.#shift();
        sink.finish(
          parser.kind === ReplyKind.DUMP ? undefined : new ReplyError(this.server, reply),
        );
        this.#endExclusive();
        p.resolve(reply);
        continue;
      }
      const r = parser.parse(buf, this.#rpos, this.#wpos, p.op);
      if (r === 0) break;
      if (r < 0) return this.#protocolError(parser.error);
      if (p.frame !== undefined) {
        const at = this.#rpos;
        this.#rpos += r;
        this.#shift();
        try {
          p.frame(buf, at, r, parser);
        } catch (err) {
          // A handler's bug must not break the connection for everyone else.
          console.error(`client ${this.server}: reply handler failed: ${errorText(err)}`);
        }
        continue;
      }
      const reply = new Reply(parser, buf, this.#rpos, r);
      this.#rpos += r;
      this.#shift();
      p.resolve(reply);
    }
    if (this.#rpos === this.#wpos) {
      this.#rpos = this.#wpos = 0;
      if (this.#rbuf.length > SHRINK_ABOVE) this.#rbuf = new Uint8Array(INITIAL_BUFFER);
    }
  }

  /** One clock read per read batch, not per reply. */
  #stamp(): void {
    if (this.#progress) {
      this.#progress = false;
      this.#lastProgress = Date.now();
    }
  }

  /** Bytes with no request outstanding: drop an error line (a noreply failure), else fail. */
  #dropUnsolicited(): boolean {
    const parser = this.#parser;
    const r = parser.parse(this.#rbuf, this.#rpos, this.#wpos, Op.ERROR);
    if (r === 0) return false;
    if (r > 0 && isErrorKind(parser.kind)) {
      this.#rpos += r;
      return true;
    }
    this.#protocolError("reply with no request outstanding");
    return false;
  }

  #protocolError(why: string): void {
    this.#fail(new ClientError("protocol", this.server, `bad reply: ${why}`));
  }

  #shift(): void {
    this.#progress = true;
    this.#queue[this.#head++] = undefined;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
      const waiters = this.#idleWaiters;
      if (waiters.length > 0) {
        this.#idleWaiters = [];
        for (const w of waiters) w();
      }
    } else if (this.#head >= 4096 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #armTimer(): void {
    if (this.#timer !== undefined || this.#timeoutMs <= 0) return;
    this.#timer = setTimeout(() => this.#checkTimeout(), this.#timeoutMs);
  }

  #checkTimeout(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    const head = this.#queue[this.#head];
    if (head === undefined) return;
    const now = Date.now();
    if (this.#paused !== undefined) this.#lastProgress = now; // a slow dump consumer is not a slow server
    const deadline = this.#lastProgress + this.#timeoutMs;
    if (now >= deadline) {
      this.#fail(
        new ClientError("timeout", this.server, `no reply within ${this.#timeoutMs} ms`),
        true,
      );
      return;
    }
    this.#timer = setTimeout(() => this.#checkTimeout(), deadline - now);
  }

  #fail(err: Error, drain = false): void {
    if (this.#closed) return;
    this.#closeError = err;
    this.#shutdown(err, drain);
  }

  /** Closes the connection; outstanding requests reject. */
  close(): void {
    if (this.#closed) return;
    this.#shutdown(new ClientError("closed", this.server, "client closed"));
  }

  /**
   * Like {@linkcode close} for the requests (they reject), but with
   * `drainMs` the connection is half-closed and drained (see
   * {@linkcode drained}): requests given up on may still be applied.
   */
  abandon(why: string): void {
    if (this.#closed) return;
    this.#shutdown(new ClientError("closed", this.server, why), true);
  }

  #shutdown(err: Error, drain = false): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (drain && this.#drainMs > 0 && this.#queue.length > this.#head) this.#startDrain();
    else {
      try {
        this.#conn.close();
      } catch {
        // already closed by the peer
      }
    }
    this.#parser.reset();
    const queue = this.#queue;
    const head = this.#head;
    this.#queue = [];
    this.#head = 0;
    this.#exclusive?.finish(err);
    this.#endExclusive();
    for (let i = head; i < queue.length; i++) {
      const p = queue[i];
      p?.dump?.finish(err);
      p?.reject(err);
    }
    for (const w of this.#idleWaiters) w();
    this.#idleWaiters = [];
    const listeners = this.#closeListeners;
    this.#closeListeners = [];
    for (const l of listeners) l(this.#closeError);
  }

  /**
   * Requests were given up on while the server may still apply them (a
   * timeout: the server or the path is slow, not gone): half-close, so the
   * server sees the end after every byte already sent, and read on until it
   * closes its side. A path that holds the bytes delivers them before the end.
   */
  #startDrain(): void {
    this.#draining = true;
    this.#drained = new Promise((r) => this.#drainedResolve = r);
    this.#drainTimer = setTimeout(() => this.#endDrain(false), this.#drainMs);
    Deno.unrefTimer(this.#drainTimer);
    // Its rejection is async (a resource already gone): a throw here is never caught.
    this.#conn.closeWrite().catch(() => this.#endDrain(true));
  }

  #endDrain(fenced: boolean): void {
    if (!this.#draining) return;
    this.#draining = false;
    clearTimeout(this.#drainTimer);
    try {
      this.#conn.close();
    } catch {
      // closed
    }
    this.#drainedResolve?.(fenced);
  }

  // ---- metadump -------------------------------------------------------

  /**
   * Streams `lru_crawler metadump <what>` (default `all`). memcached wants
   * the dump alone on the connection: it waits for outstanding requests,
   * and requests issued meanwhile are held until the dump ends. Breaking
   * out of the loop early discards the rest of the dump. Throws a
   * {@linkcode ReplyError} when the server refuses (ERROR, BUSY, ...).
   *
   * Reading pauses while more than a few thousand entries wait for the
   * consumer, unless `pause` is false: then entries pile up in memory. Use
   * that for memcached 1.6.9-1.6.18's `hash` walk, which holds an item lock
   * while its write blocks, stalling lookups until the dump is read on.
   */
  async *metadump(what = "all", options: { pause?: boolean } = {}): AsyncGenerator<DumpEntry> {
    if (this.#closed) throw this.#closedError();
    const previous = this.#dumpChain;
    const sink = new DumpSink();
    sink.pause = options.pause ?? true;
    this.#dumpChain = previous.then(() => sink.ended);
    let sent = false;
    try {
      await previous;
      if (this.#closed) throw this.#closedError();
      this.#exclusive = sink;
      if (this.pending > 0) await new Promise<void>((r) => this.#idleWaiters.push(r));
      if (this.#closed) throw this.#closedError();
      const done = new Promise<Reply>((resolve, reject) => {
        const p: Pending = { op: Op.LRU_CRAWLER, resolve, reject, dump: sink, frame: undefined };
        this.#enqueue(p, [line("lru_crawler", "metadump", what)]);
      });
      sent = true;
      done.catch(() => {}); // the outcome is reported through the sink
      for (;;) {
        await sink.waitForEntries();
        if (sink.count > 0) {
          for (const e of sink.take()) yield e;
          continue;
        }
        if (sink.done) break;
      }
      if (sink.error !== undefined) throw sink.error;
    } finally {
      if (!sink.done) {
        // Stopped early: the rest of the dump is read and dropped.
        sink.discard = true;
        sink.clear();
        if (!sent) {
          if (this.#exclusive === sink) this.#endExclusive();
          else sink.finish();
        }
      }
      if (this.#closed) this.#endExclusive();
    }
  }

  /** A dump ended: release the requests held meanwhile. */
  #endExclusive(): void {
    const sink = this.#exclusive;
    if (sink === undefined) return;
    this.#exclusive = undefined;
    const held = this.#held;
    const heldQueue = this.#heldQueue;
    this.#held = [];
    this.#heldQueue = [];
    sink.finish();
    if (this.#closed) {
      for (const p of heldQueue) p.reject(this.#closedError());
      return;
    }
    if (held.length > 0) this.#write(held);
    if (heldQueue.length > 0) {
      const now = Date.now();
      if (this.#queue.length === this.#head) this.#lastProgress = now;
      for (const p of heldQueue) this.#queue.push(p);
      this.#armTimer();
    }
  }

  // ---- conveniences ---------------------------------------------------

  async #expect(op: OpCode, ...parts: Uint8Array[]): Promise<Reply> {
    const reply = await this.#request(op, ...parts);
    if (reply.isError) throw new ReplyError(this.server, reply);
    return reply;
  }

  async #retrieve(
    op: OpCode,
    word: string,
    keys: Key | readonly Key[],
  ): Promise<Map<string, Item>> {
    const list = Array.isArray(keys) ? keys as readonly Key[] : [keys as Key];
    const reply = await this.#expect(op, line(word, ...list.map(keyBytes)));
    const out = new Map<string, Item>();
    for (const it of reply.items()) out.set(it.key, toItem(it));
    return out;
  }

  /** `get <keys>`: hits by key. */
  get(keys: Key | readonly Key[]): Promise<Map<string, Item>> {
    return this.#retrieve(Op.GET, "get", keys);
  }

  /** `gets <keys>`: hits by key, with CAS. */
  gets(keys: Key | readonly Key[]): Promise<Map<string, Item>> {
    return this.#retrieve(Op.GETS, "gets", keys);
  }

  /** `get <key>` for one key: the item or undefined. */
  async getOne(key: Key): Promise<Item | undefined> {
    const reply = await this.#expect(Op.GET, line("get", keyBytes(key)));
    if (reply.count === 0) return undefined;
    return { value: reply.itemValue(0), flags: reply.itemFlags(0) };
  }

  async #store(
    op: OpCode,
    word: string,
    key: Key,
    value: Uint8Array,
    flags: number,
    exptime: number,
    noreply: boolean,
    cas?: bigint,
  ): Promise<boolean> {
    const head = cas === undefined
      ? line(word, keyBytes(key), flags, exptime, value.length, ...(noreply ? ["noreply"] : []))
      : line(
        word,
        keyBytes(key),
        flags,
        exptime,
        value.length,
        String(cas),
        ...(noreply ? ["noreply"] : []),
      );
    if (noreply) {
      this.send(head, value, CRLF);
      return true;
    }
    const reply = await this.#expect(op, head, value, CRLF);
    return reply.kind === ReplyKind.STORED;
  }

  /** `set`: true when STORED. With `noreply`, resolves true once queued. */
  set(key: Key, value: Uint8Array, flags = 0, exptime = 0, noreply = false): Promise<boolean> {
    return this.#store(Op.SET, "set", key, value, flags, exptime, noreply);
  }

  /** `add`: true when STORED, false when the key exists. */
  add(key: Key, value: Uint8Array, flags = 0, exptime = 0, noreply = false): Promise<boolean> {
    return this.#store(Op.ADD, "add", key, value, flags, exptime, noreply);
  }

  /** `replace`: true when STORED, false when the key is missing. */
  replace(key: Key, value: Uint8Array, flags = 0, exptime = 0, noreply = false): Promise<boolean> {
    return this.#store(Op.REPLACE, "replace", key, value, flags, exptime, noreply);
  }

  /** `cas`: true when STORED, false on EXISTS / NOT_FOUND. */
  cas(key: Key, value: Uint8Array, cas: bigint, flags = 0, exptime = 0): Promise<boolean> {
    return this.#store(Op.CAS, "cas", key, value, flags, exptime, false, cas);
  }

  /** `delete`: true when DELETED. */
  async delete(key: Key): Promise<boolean> {
    const reply = await this.#expect(Op.DELETE, line("delete", keyBytes(key)));
    return reply.kind === ReplyKind.DELETED;
  }

  /** `incr`: the new value, or undefined when the key is missing. */
  async incr(key: Key, delta: number | bigint = 1): Promise<bigint | undefined> {
    const reply = await this.#expect(Op.INCR, line("incr", keyBytes(key), String(delta)));
    return reply.number;
  }

  /** `decr`: the new value, or undefined when the key is missing. */
  async decr(key: Key, delta: number | bigint = 1): Promise<bigint | undefined> {
    const reply = await this.#expect(Op.DECR, line("decr", keyBytes(key), String(delta)));
    return reply.number;
  }

  /** `touch`: true when TOUCHED. */
  async touch(key: Key, exptime: number): Promise<boolean> {
    const reply = await this.#expect(Op.TOUCH, line("touch", keyBytes(key), exptime));
    return reply.kind === ReplyKind.TOUCHED;
  }

  /** `mg <key> <flags>`, e.g. `mg(key, "v f t")`; the raw reply (VA, HD, EN, ...). */
  mg(key: Key, flags = ""): Promise<Reply> {
    const head = flags === "" ? line("mg", keyBytes(key)) : line("mg", keyBytes(key), flags);
    return this.#expect(Op.MG, head);
  }

  /** `ms <key> <len> <flags>` + value, e.g. `ms(key, v, "F5 T60")`; the raw reply. */
  ms(key: Key, value: Uint8Array, flags = ""): Promise<Reply> {
    const head = flags === ""
      ? line("ms", keyBytes(key), value.length)
      : line("ms", keyBytes(key), value.length, flags);
    return this.#expect(Op.MS, head, value, CRLF);
  }

  /** `stats [group]` as a map. */
  async stats(group?: string): Promise<Map<string, string>> {
    const reply = await this.#expect(Op.STATS, group ? line("stats", group) : line("stats"));
    return reply.stats();
  }

  /** `version`: the server's version text. */
  async version(): Promise<string> {
    return (await this.#expect(Op.VERSION, line("version"))).text;
  }

  /** `flush_all [delay]`. */
  async flushAll(delay?: number): Promise<void> {
    await this.#expect(
      Op.FLUSH_ALL,
      delay === undefined ? line("flush_all") : line("flush_all", delay),
    );
  }
}

function toItem(it: ValueItem): Item {
  const item: Item = { value: it.value, flags: it.flags };
  if (it.cas !== undefined) item.cas = it.cas;
  return item;
}

function noop(): void {}

function closeSilently(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}

/** A host that is an absolute path names a unix-domain socket (port unused), as in nutcracker. */
export function isUnixPath(host: string): boolean {
  return host.startsWith("/");
}

/** How a server is named in messages and stats: `host:port`, or the socket's path. */
export function serverName(host: string, port: number): string {
  return isUnixPath(host) ? host : `${host}:${port}`;
}

/** TCP (and TLS inside the same deadline: the abort closes the socket). */
async function connectTcp(
  host: string,
  port: number,
  signal: AbortSignal,
  tlsOptions: ClientOptions["tls"],
): Promise<Deno.Conn> {
  const tcp = await Deno.connect({ hostname: host, port, signal });
  tcp.setNoDelay(true);
  if (!tlsOptions) return tcp;
  const tls = await Deno.startTls(tcp, {
    hostname: host,
    caCerts: tlsOptions.ca === undefined ? undefined : [tlsOptions.ca],
  });
  const onAbort = () => closeSilently(tls);
  signal.addEventListener("abort", onAbort);
  try {
    await tls.handshake();
  } catch (err) {
    closeSilently(tls);
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  return tls;
}
