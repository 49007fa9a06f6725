/**
 * The pipelined connection under a {@linkcode Client}: requests are copied
 * into an output buffer and sent with one socket write per tick
 * (send_buffer.ts); replies are read into a reused growable buffer and
 * parsed by the one reply parser (lib/protocol/response.ts), resolving
 * requests in order.
 * @module
 */

import { mark, TRACE } from "../trace.ts";
import { DumpSink } from "./dump_sink.ts";
import { line } from "./command_line.ts";
import type { ClientOptions } from "./dial.ts";
import {
  type DumpEntry,
  isErrorKind,
  Op,
  type OpCode,
  ReplyKind,
  ReplyParser,
} from "../protocol/mod.ts";
import { ClientError, ReplyError } from "./errors.ts";
import { errorText, type RawIo, rawIo } from "../transport/mod.ts";
import { Reply } from "./reply.ts";
import { INITIAL_BUFFER, SendBuffer, SHRINK_ABOVE } from "./send_buffer.ts";

interface Pending {
  op: OpCode;
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
  dump: DumpSink | undefined;
  /** Set by {@linkcode Pipeline.requestFrame}: gets the frame in place, no Reply. */
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

const MIN_READ = 16384;

/**
 * A pipelined connection to one memcached-protocol server: its
 * {@linkcode SendBuffer}, the read loop and reply queue, timeouts, drain and metadump.
 * {@linkcode Client} adds the request kinds and how it is opened.
 */
export class Pipeline {
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

  /** Requests on their way out (one socket write per tick). */
  readonly #sendBuffer: SendBuffer;

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

  /** Takes over `conn`, an open socket to `server`, and starts reading. */
  protected constructor(conn: Deno.Conn, server: string, options: ClientOptions) {
    this.#conn = conn;
    this.#io = rawIo(conn);
    this.server = server;
    this.#sendBuffer = new SendBuffer(this.#io, (err) =>
      this.#fail(
        new ClientError("closed", this.server, `write failed: ${errorText(err)}`, { cause: err }),
      ));
    this.#timeoutMs = options.requestTimeoutMs ?? 5000;
    this.#drainMs = options.drainMs ?? 0;
    this.#readLoop();
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
    this.#sendBuffer.flush();
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
    return this.requestParts(op, bytes);
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
    } else this.#sendBuffer.write(parts);
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

  /** {@linkcode request} with the request in parts (copied at once). */
  protected requestParts(op: OpCode, ...parts: Uint8Array[]): Promise<Reply> {
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
    this.#sendBuffer.write(parts);
    this.#armTimer();
  }

  #closedError(): Error {
    return this.#closeError ?? new ClientError("closed", this.server, "client closed");
  }

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
    this.#sendBuffer.close();
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
    if (held.length > 0) this.#sendBuffer.write(held);
    if (heldQueue.length > 0) {
      const now = Date.now();
      if (this.#queue.length === this.#head) this.#lastProgress = now;
      for (const p of heldQueue) this.#queue.push(p);
      this.#armTimer();
    }
  }
}

function noop(): void {}
