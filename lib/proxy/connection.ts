/**
 * One proxy client connection, its reading side: it reads into a reused
 * buffer, parses every complete request with the one parser and hands each
 * to the router, whose replies go to the connection's {@linkcode ReplyQueue}
 * (reply_queue.ts: request order, bounds, then reply_writer.ts: batched
 * writes). A connection whose first byte is 0x80 speaks the binary protocol
 * (as memcached's -B auto): its requests reach the same router through
 * {@linkcode BinaryFront}.
 * @module
 */

import { mark, TRACE, traceStart } from "../trace.ts";
import {
  BINARY_HEADER_LENGTH,
  BINARY_REQUEST_MAGIC,
  BinaryRequest,
  Op,
  PARSE_CLOSE,
  parseBinaryRequest,
  parseRequest,
  Request,
  textTransmits,
  Writer,
} from "../protocol/mod.ts";
import {
  BufferPool,
  isDisconnect,
  type RawIo,
  rawIo,
  ReadBuffer,
  topUp,
} from "../transport/mod.ts";
import { log } from "../log.ts";
import { AUTH_CLOSE, type Authenticator, AuthSession, binarySaslRequest } from "../auth/mod.ts";
import { Next, type Router } from "./router/mod.ts";
import { BinaryFront } from "./binary.ts";
import { ReplyQueue } from "./reply_queue.ts";

/** Receive buffer an idle connection keeps; larger ones are lent by {@linkcode reads}. */
const IDLE_READ = 1024;
/**
 * Receive buffers the connections borrow while they have bytes to parse,
 * so an idle connection holds 1 KB, not 16 KB (thousands of idle clients
 * then cost little, and nothing of theirs stays behind).
 */
const reads = new BufferPool(16384, 64);
/** How long the rest of a first binary read may take to be there (ms; it is queued already). */
const TOP_UP_MS = 5;
/** What memcached reads of a binary connection at once (its read buffer). */
const BINARY_READ = 16384;
/** memcached's -R default: requests per read event before it yields (and transmits). */
const REQS_PER_EVENT = 20;

/** One client connection: reads, parses and routes its requests. */
export class ProxyConnection {
  readonly #conn: Deno.Conn;
  /** Reads and writes of #conn through Deno's ops (one promise fewer per read). */
  readonly #io: RawIo;
  readonly #router: Router;
  readonly #maxValue: number;
  /** Its replies, in request order (the sink every request is routed with). */
  readonly #replies: ReplyQueue;
  /** The first read's top-up, when it did not complete at once (see {@linkcode #topUp}). */
  #pendingRead: Promise<number | null> | null = null;
  readonly #auth: AuthSession | null;

  /** A connection on `conn` routing through `router` (a login first with `auth`). */
  constructor(conn: Deno.Conn, router: Router, maxValue: number, auth?: Authenticator) {
    this.#conn = conn;
    this.#io = rawIo(conn);
    this.#router = router;
    this.#maxValue = maxValue;
    this.#replies = new ReplyQueue(conn, this.#io);
    this.#auth = auth ? new AuthSession(auth, router.stats) : null;
  }

  /** Read, parse and route until the client goes away. */
  async run(): Promise<void> {
    const rb = new ReadBuffer(IDLE_READ, undefined, reads);
    try {
      // The first byte picks the protocol for good, as memcached's -B auto.
      const n = await this.#io.read(rb.space(0));
      if (n !== 0) {
        rb.end += n;
        if (rb.buf[rb.start] === BINARY_REQUEST_MAGIC) {
          await this.#topUp(rb);
          await this.#binary(rb);
        } else await this.#text(rb);
      }
      // EOF or quit: finish what was asked, then close.
      this.#replies.closeAfterReplies();
    } catch (err) {
      if (!isDisconnect(err)) log.warn(`proxy: client connection: ${err}`);
      this.#replies.close();
    } finally {
      // A read still pending writes into the buffer: it must not go to another connection.
      if (this.#pendingRead === null) rb.release();
    }
    await this.#replies.gone;
  }

  /**
   * memcached's first read of a binary connection takes up to 16 KB (what a
   * bad magic byte in that batch loses depends on it); ours filled the idle
   * 1 KB buffer: the rest of that write joins the batch (see topUp).
   */
  async #topUp(rb: ReadBuffer): Promise<void> {
    if (rb.end < IDLE_READ) return;
    this.#pendingRead = (await topUp(this.#conn, rb, BINARY_READ, TOP_UP_MS)).pending;
  }

  /** A text connection; `rb` holds its first bytes. */
  async #text(rb: ReadBuffer): Promise<void> {
    const req = new Request();
    const router = this.#router;
    const replies = this.#replies;
    let filled = true;
    while (!replies.closed && !replies.closing) {
      const auth = this.#auth;
      if (!filled) {
        // Straight into the buffer (rb.fill would add a promise per read).
        const fresh = TRACE && rb.end === rb.start;
        const n = await this.#io.read(
          rb.space(auth && !auth.authenticated ? auth.need : req.need),
        );
        if (TRACE) {
          if (fresh) traceStart();
          mark("read");
        }
        if (n === 0) {
          // memcached closes mid-line without sending the reply it held for it.
          if (replies.holding) replies.close();
          break;
        }
        rb.end += n;
      }
      filled = false;
      if (auth && !auth.authenticated) {
        if (!this.#readLogin(rb, auth) || !auth.authenticated) continue;
      }
      let paused = false;
      replies.batch();
      while (!replies.closing && rb.settle()) {
        if (replies.full()) { // within a read too: each request may bring a large reply
          paused = true;
          break;
        }
        const used = parseRequest(rb.buf, rb.start, rb.end, req, this.#maxValue);
        if (used === 0) break;
        if (used === PARSE_CLOSE) {
          replies.closeAfterReplies();
          break;
        }
        let raw = rb.buf.subarray(rb.start, rb.start + used);
        if (req.swallowLine && req.op !== Op.ERROR) {
          // A get line cut by a NUL: the backend gets the line memcached decided, with its
          // newline (the rest was never its, and it would wait for the newline).
          raw = decidedLine(rb.buf, req.lineStart, req.lineEnd);
        }
        rb.start += used;
        // memcached answers a get line it decided before the newline once the newline comes:
        // its replies wait (released below when the line ended within this read).
        if (req.swallowLine) replies.hold();
        if (req.cull) replies.cull(replies.next);
        if (router.handle(req, raw, replies) === Next.CLOSE) replies.closeAfterReplies();
        if (textTransmits(req.op)) replies.batch(); // (memcached transmitted here: none to drop)
        if (req.swallow > 0) rb.skip(req.swallow);
        else if (req.swallowLine) rb.skipLine();
      }
      if (replies.holding && !rb.swallowing) replies.release();
      // (Held replies drain only once the line's end is read: keep reading for it.)
      if (replies.full() && !replies.holding) await replies.room();
      filled = paused; // the rest of this read is parsed before reading more
    }
  }

  /**
   * Before login the bytes go to the login reader, never to the backends;
   * its replies of one read batch go out as one reply. True: read on.
   */
  #readLogin(rb: ReadBuffer, auth: AuthSession): boolean {
    const out = new Writer(256);
    let more = true;
    while (rb.settle()) {
      const used = auth.readText(rb.buf, rb.start, rb.end, out);
      if (used === 0) break;
      if (used === AUTH_CLOSE) {
        more = false;
        break;
      }
      rb.start += used;
      if (auth.authenticated) break;
    }
    if (out.length > 0) this.#replies.reply(out.view().slice());
    if (!more) this.#replies.closeAfterReplies();
    return more;
  }

  /**
   * A binary connection; `rb` holds its first bytes. With client auth the
   * SASL opcodes log in (PLAIN, the users of the auth file); until then the
   * codec refuses every other opcode but version as memcached -S does.
   */
  async #binary(rb: ReadBuffer): Promise<void> {
    const req = new BinaryRequest();
    const front = new BinaryFront(this.#router, this.#maxValue);
    const stats = this.#router.stats;
    const auth = this.#auth;
    const permits = auth === null ? null : (opcode: number) => auth.binaryPermits(opcode);
    const replies = this.#replies;
    let filled = true;
    while (!replies.closed && !replies.closing) {
      if (!filled) {
        // memcached reads a binary connection 16 KB at once (what a bad magic byte loses depends on it).
        const pending = this.#pendingRead;
        const n = pending !== null
          ? (await pending) ?? 0
          : await this.#io.read(rb.space(Math.max(req.need, BINARY_READ)));
        this.#pendingRead = null;
        if (n === 0) {
          // memcached closes mid-swallow without sending what it queued.
          if (rb.swallowing) replies.close();
          break;
        }
        rb.end += n;
      }
      filled = false;
      // memcached transmits what it queued when it reads again, after an error or a noop,
      // and after 21 requests of one read (then every 20: its reqs_per_event yield). A bad
      // magic byte closes the connection, and what it queued since is never sent: this
      // batch's replies wait until it is parsed, in case one comes.
      let transmitted = replies.next, count = 0, group = REQS_PER_EVENT + 1;
      // Replies held since a swallow ran past a read stay held (see below).
      replies.hold();
      replies.clearQueued();
      let paused = false;
      replies.batch();
      while (!replies.closing && rb.settle()) {
        if (replies.full()) { // within a read too: each request may bring a large reply
          paused = true;
          break;
        }
        const used = parseBinaryRequest(rb.buf, rb.start, rb.end, req, this.#maxValue, permits);
        if (used === 0) break;
        if (used === PARSE_CLOSE) {
          replies.dropFrom(transmitted);
          replies.closeAfterReplies();
          break;
        }
        rb.start += used;
        stats.binaryRequests++;
        const ticket = replies.next;
        const next = req.sasl
          ? this.#sasl(req, auth as AuthSession, front)
          : front.handle(req, replies);
        if (req.swallow > 0) {
          // memcached's skip reads the socket to the body's end when it goes past the read,
          // which transmits what it queued; a skip within the read transmits nothing.
          if (req.swallow > rb.end - rb.start) transmitted = replies.next;
          else replies.queue(ticket);
        }
        if (++count === group) {
          count = 0;
          group = REQS_PER_EVENT;
          transmitted = replies.next;
        }
        if (next === Next.CLOSE) replies.closeAfterReplies();
        if (req.swallow > 0) rb.skip(req.swallow);
      }
      // memcached sends nothing while it waits for body bytes to swallow (its reply to
      // a bad verbosity or unknown opcode included): this batch's replies wait for them.
      if (!rb.swallowing) replies.release();
      // (Held replies drain only once the swallow's bytes are read: keep reading for them.)
      if (replies.full() && !replies.holding) await replies.room();
      filled = paused;
    }
  }

  /** A SASL opcode with client auth on: memcached -S's answer (lib/auth). */
  #sasl(req: BinaryRequest, auth: AuthSession, front: BinaryFront): number {
    const action = binarySaslRequest(auth, req);
    const ticket = this.#replies.next;
    this.#replies.reply(front.packet(req, action.status, action.body));
    // An answer memcached gives while skipping the data is queued, unless the data went on past
    // its read buffer (the skip then reads the socket, which transmits).
    if (action.swallow && BINARY_HEADER_LENGTH + req.bodylen <= BINARY_READ) {
      this.#replies.queue(ticket);
    }
    return action.close ? Next.CLOSE : Next.CONTINUE;
  }
}

/** buf[start, end) and CRLF, copied: a request line whose rest is swallowed. */
function decidedLine(buf: Uint8Array, start: number, end: number): Uint8Array {
  const line = new Uint8Array(end - start + 2);
  line.set(buf.subarray(start, end));
  line[line.length - 2] = 13;
  line[line.length - 1] = 10;
  return line;
}
