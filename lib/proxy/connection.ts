/**
 * One proxy client connection. It reads into a reused buffer, parses every
 * complete request with the one parser, hands each to the router, and writes
 * replies in request order, batched: all replies that are ready go out in
 * one write. A connection whose first byte is 0x80 speaks the binary
 * protocol (as memcached's -B auto): its requests reach the same router
 * through {@linkcode BinaryFront}.
 * @module
 */

import { mark, TRACE, traceEnd, traceStart } from "../trace.ts";
import {
  BINARY_HEADER_LENGTH,
  BINARY_REQUEST_MAGIC,
  BinaryOpcode,
  BinaryRequest,
  carveCopy,
  Op,
  PARSE_CLOSE,
  parseBinaryRequest,
  parseRequest,
  Request,
  Writer,
  WriterPool,
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
import { Next, type ReplySink, type Router } from "./router/mod.ts";
import { BinaryFront } from "./binary.ts";
import { PRESSED_ROOM, replyBudget, UNKNOWN_REPLY } from "./budget.ts";

/** Receive buffer an idle connection keeps; larger ones are lent by {@linkcode reads}. */
const IDLE_READ = 1024;
/**
 * Receive and output buffers the connections borrow while they have bytes
 * to parse or send, so an idle connection holds 1 KB, not 48 KB (thousands
 * of idle clients then cost little, and nothing of theirs stays behind).
 */
const reads = new BufferPool(16384, 64);
const writers = new WriterPool(1024, 262144, 4194304);
/** The process-wide count of reply bytes held (see budget.ts). */
const budget = replyBudget;
/** How long the rest of a first binary read may take to be there (ms; it is queued already). */
const TOP_UP_MS = 5;
/**
 * Requests in flight before the connection's first reply is in: replies of
 * requests already sent to a backend must be kept whatever their size, so
 * the window is sized by the largest reply seen (see {@linkcode MAX_UNSENT}).
 */
const MIN_IN_FLIGHT = 64;
/** Unsent reply bytes per connection (in the output and being written) before reading pauses. */
const MAX_UNSENT = 8 * 1048576;
/**
 * The reply size the window assumes at least: requests in flight may bring
 * larger replies than any so far (a `set`, then thousands of gets of 1 MB
 * values pipelined, unread: 4,096 in flight held 4 GB), so small replies
 * leave at most 128 in flight, which still hides the backends' latency.
 */
const WINDOW_FLOOR = 65536;
/**
 * Unsent reply bytes under which a reply written in parts (a large
 * multi-get) fetches its next part: the client's pace sets the backends',
 * and the proxy holds about this much plus one part per connection.
 */
const PART_ROOM = MAX_UNSENT / 2;
/** What memcached reads of a binary connection at once (its read buffer). */
const BINARY_READ = 16384;
/** memcached's -R default: requests per read event before it yields (and transmits). */
const REQS_PER_EVENT = 20;

/**
 * A binary reply memcached transmits at once: a noop's, or an error packet
 * (write_bin_error; a getk/gatk miss carries the key and is not one).
 */
function transmitsAtOnce(reply: Uint8Array | readonly Uint8Array[]): boolean {
  const b = reply instanceof Uint8Array ? reply : reply[0];
  if (b === undefined || b.length < BINARY_HEADER_LENGTH) return false;
  const status = (b[6] << 8) | b[7];
  return b[1] === BinaryOpcode.NOOP || (status !== 0 && (b[2] | b[3]) === 0);
}

type Slot = Uint8Array | readonly Uint8Array[] | undefined;

/** One client connection: ordered reply slots and batched writes. */
export class ProxyConnection implements ReplySink {
  readonly #conn: Deno.Conn;
  /** Reads and writes of #conn through Deno's ops (one promise fewer per read). */
  readonly #io: RawIo;
  readonly #router: Router;
  readonly #maxValue: number;
  /** Replies collected, not written yet (borrowed from {@linkcode writers} while non-empty). */
  #out: Writer | null = null;
  /** Replies being written. */
  #spare: Writer | null = null;
  /** Replies not written yet, from ticket #head on; undefined = still waiting. */
  #slots: Slot[] = [];
  #slotHead = 0;
  #head = 0;
  #next = 0;
  #writing = false;
  #flushQueued = false;
  #closed = false;
  #closeAt = -1;
  /** Replies from this ticket on wait (a binary read batch being parsed). */
  #hold = Infinity;
  /** After a bad magic byte: replies from this ticket on are sent only as memcached would. */
  #dropFrom = -1;
  /**
   * Tickets of this read batch whose error memcached answered while skipping
   * body bytes already read (conn_swallow): queued, not transmitted at once.
   */
  readonly #queued = new Set<number>();
  #drained: (() => void) | undefined;
  /** Replies written in parts waiting for room, by ticket (see {@linkcode whenRoom}). */
  #rooms: Map<number, () => void> | null = null;
  /**
   * Tickets of replies being written in parts: requests after one wait
   * until it ends, as memcached runs them after the whole get (a part
   * fetched late must not see a later pipelined write). Those not read yet
   * are not read; those read already and held in the router wait in
   * {@linkcode #behindParts}.
   */
  #streams: number[] = [];
  /** Held requests released behind a reply written in parts, in ticket order (see afterParts). */
  #behindParts: { ticket: number; go: () => void }[] = [];
  /** Largest reply of this connection so far (bytes). */
  #maxReply = 0;
  /**
   * Requests it may have in flight: as many as MAX_UNSENT holds of its largest
   * reply or of WINDOW_FLOOR (a client pipelining large gets and never reading
   * costs a bounded amount, not its whole batch); MIN_IN_FLIGHT until a reply came.
   */
  #window = MIN_IN_FLIGHT;
  /** Reply bytes this connection holds (in slots and in the output) that are not written yet. */
  #held = 0;
  /** Requests reserved whose reply is not in yet. */
  #pending = 0;
  /** Whole multi-gets' estimates (ticket -> bytes) until their replies are in (see partsFor). */
  #wholes: Map<number, number> | null = null;
  /** The sum of #wholes' estimates. */
  #wholeBytes = 0;
  /** What this connection adds to the process's {@linkcode budget} now (see {@linkcode #account}). */
  #counted = 0;
  /** The first read's top-up, when it did not complete at once (see {@linkcode #topUp}). */
  #pendingRead: Promise<number | null> | null = null;
  readonly #gone: PromiseWithResolvers<void> = Promise.withResolvers();

  readonly #auth: AuthSession | null;

  /** A connection on `conn` routing through `router` (a login first with `auth`). */
  constructor(conn: Deno.Conn, router: Router, maxValue: number, auth?: Authenticator) {
    this.#conn = conn;
    this.#io = rawIo(conn);
    this.#router = router;
    this.#maxValue = maxValue;
    this.#auth = auth ? new AuthSession(auth, router.stats) : null;
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
    if (out.length > 0) this.reply(out.view().slice());
    if (!more) this.closeAfterReplies();
    return more;
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
      this.closeAfterReplies();
    } catch (err) {
      if (!isDisconnect(err)) log.warn(`proxy: client connection: ${err}`);
      this.#close();
    } finally {
      // A read still pending writes into the buffer: it must not go to another connection.
      if (this.#pendingRead === null) rb.release();
    }
    await this.#gone.promise;
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

  /** The output buffer, borrowed when the first reply of a batch comes. */
  #sink(): Writer {
    return this.#out ??= writers.take();
  }

  /** Reply bytes in the output and being written. */
  #unsent(): number {
    return (this.#out?.length ?? 0) + (this.#spare?.length ?? 0);
  }

  /**
   * True while too many replies are pending or unsent: reading waits
   * ({@linkcode #room}). While the process's budget is spent, a connection
   * that holds more than PRESSED_ROOM waits too: each wait ends with an
   * event of its own (a reply in, a write done), never with the others'.
   */
  #full(): boolean {
    return !this.#closed &&
      (this.#streams.length > 0 || this.#next - this.#head > this.#window ||
        this.#unsent() > MAX_UNSENT ||
        (budget.bytes > budget.limit && this.#counted > PRESSED_ROOM));
  }

  /**
   * Brings this connection's share of the process's budget up to date: the
   * bytes it holds, plus its pending replies at the largest reply it had
   * (unknown: UNKNOWN_REPLY). A few additions per reply, no more.
   */
  #account(): void {
    const c = this.#held + this.#pending * (this.#maxReply || UNKNOWN_REPLY) + this.#wholeBytes;
    budget.bytes += c - this.#counted;
    this.#counted = c;
  }

  /** A part of a reply written in parts may be fetched: little unsent, and the budget allows it. */
  #partRoom(): boolean {
    return this.#unsent() < PART_ROOM &&
      (budget.bytes <= budget.limit || this.#held <= PRESSED_ROOM);
  }

  /** A reply of `size` bytes came: a larger one than before narrows the window. */
  #sized(size: number): void {
    if (size <= this.#maxReply) return;
    this.#maxReply = size;
    if (size > budget.largestReply) budget.largestReply = size;
    this.#window = Math.max(2, Math.floor(MAX_UNSENT / Math.max(size, WINDOW_FLOOR)));
  }

  /** Back-pressure: wait while {@linkcode #full}. Called only then: no promise per batch. */
  async #room(): Promise<void> {
    while (this.#full()) await new Promise<void>((r) => this.#drained = r);
  }

  /** A text connection; `rb` holds its first bytes. */
  async #text(rb: ReadBuffer): Promise<void> {
    const req = new Request();
    const router = this.#router;
    let filled = true;
    while (!this.#closed && this.#closeAt < 0) {
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
          if (this.#hold !== Infinity) this.#close();
          break;
        }
        rb.end += n;
      }
      filled = false;
      if (auth && !auth.authenticated) {
        if (!this.#readLogin(rb, auth) || !auth.authenticated) continue;
      }
      let paused = false;
      while (this.#closeAt < 0 && rb.settle()) {
        if (this.#full()) { // within a read too: each request may bring a large reply
          paused = true;
          break;
        }
        const used = parseRequest(rb.buf, rb.start, rb.end, req, this.#maxValue);
        if (used === 0) break;
        if (used === PARSE_CLOSE) {
          this.closeAfterReplies();
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
        if (req.swallowLine && this.#hold === Infinity) this.#hold = this.#next;
        if (router.handle(req, raw, this) === Next.CLOSE) this.closeAfterReplies();
        if (req.swallow > 0) rb.skip(req.swallow);
        else if (req.swallowLine) rb.skipLine();
      }
      if (this.#hold !== Infinity && !rb.swallowing) {
        this.#hold = Infinity;
        this.#drain();
      }
      // (Held replies drain only once the line's end is read: keep reading for it.)
      if (this.#full() && this.#hold === Infinity) await this.#room();
      filled = paused; // the rest of this read is parsed before reading more
    }
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
    let filled = true;
    while (!this.#closed && this.#closeAt < 0) {
      if (!filled) {
        // memcached reads a binary connection 16 KB at once (what a bad magic byte loses depends on it).
        const pending = this.#pendingRead;
        const n = pending !== null
          ? (await pending) ?? 0
          : await this.#io.read(rb.space(Math.max(req.need, BINARY_READ)));
        this.#pendingRead = null;
        if (n === 0) {
          // memcached closes mid-swallow without sending what it queued.
          if (rb.swallowing) this.#close();
          break;
        }
        rb.end += n;
      }
      filled = false;
      // memcached transmits what it queued when it reads again, after an error or a noop,
      // and after 21 requests of one read (then every 20: its reqs_per_event yield). A bad
      // magic byte closes the connection, and what it queued since is never sent: this
      // batch's replies wait until it is parsed, in case one comes.
      let transmitted = this.#next, count = 0, group = REQS_PER_EVENT + 1;
      // Replies held since a swallow ran past a read stay held (see below).
      if (this.#hold === Infinity) this.#hold = this.#next;
      this.#queued.clear();
      let paused = false;
      while (this.#closeAt < 0 && rb.settle()) {
        if (this.#full()) { // within a read too: each request may bring a large reply
          paused = true;
          break;
        }
        const used = parseBinaryRequest(rb.buf, rb.start, rb.end, req, this.#maxValue, permits);
        if (used === 0) break;
        if (used === PARSE_CLOSE) {
          this.#dropFrom = transmitted;
          this.closeAfterReplies();
          break;
        }
        rb.start += used;
        stats.binaryRequests++;
        const ticket = this.#next;
        const next = req.sasl
          ? this.#sasl(req, auth as AuthSession, front)
          : front.handle(req, this);
        if (req.swallow > 0) {
          // memcached's skip reads the socket to the body's end when it goes past the read,
          // which transmits what it queued; a skip within the read transmits nothing.
          if (req.swallow > rb.end - rb.start) transmitted = this.#next;
          else for (let t = ticket; t < this.#next; t++) this.#queued.add(t);
        }
        if (++count === group) {
          count = 0;
          group = REQS_PER_EVENT;
          transmitted = this.#next;
        }
        if (next === Next.CLOSE) this.closeAfterReplies();
        if (req.swallow > 0) rb.skip(req.swallow);
      }
      // memcached sends nothing while it waits for body bytes to swallow (its reply to
      // a bad verbosity or unknown opcode included): this batch's replies wait for them.
      if (!rb.swallowing) {
        this.#hold = Infinity;
        this.#drain();
      }
      // (Held replies drain only once the swallow's bytes are read: keep reading for them.)
      if (this.#full() && this.#hold === Infinity) await this.#room();
      filled = paused;
    }
  }

  /** A SASL opcode with client auth on: memcached -S's answer (lib/auth). */
  #sasl(req: BinaryRequest, auth: AuthSession, front: BinaryFront): number {
    const action = binarySaslRequest(auth, req);
    const ticket = this.#next;
    this.reply(front.packet(req, action.status, action.body));
    // An answer memcached gives while skipping the data is queued, unless the data went on past
    // its read buffer (the skip then reads the socket, which transmits).
    if (action.swallow && BINARY_HEADER_LENGTH + req.bodylen <= BINARY_READ) {
      for (let t = ticket; t < this.#next; t++) this.#queued.add(t);
    }
    return action.close ? Next.CLOSE : Next.CONTINUE;
  }

  /**
   * A multi-get pipelined behind replies not written yet, while this
   * connection's reply sizes are unknown (its first ones) or past
   * {@linkcode PART_ROOM}, goes in parts: the window counts requests, and
   * 64 multi-gets of 200 MB each, unread, would be 12 GB held; in parts
   * they wait their turn (one whole one at most is held). So does one that,
   * whole, could take the process's budget past its limit (budget.ts): ten
   * connections' first gets of 1,000 values of 200 KB were 2 GB held.
   */
  partsFor(nkeys: number, ticket: number): boolean {
    if (nkeys < 2) return false;
    if (ticket > this.#head && (this.#maxReply === 0 || this.#maxReply > PART_ROOM)) {
      return true;
    }
    // Whole, it could spend the process's budget (a burst of them at once, say): in parts.
    if (budget.tooLarge(nkeys)) return true;
    // Whole: counted as that many values until its reply is in (its own ticket: a get held in
    // the router was reserved long before).
    const est = budget.wholeGet(nkeys);
    (this.#wholes ??= new Map()).set(ticket, est);
    this.#wholeBytes += est;
    this.#account();
    return false;
  }

  /** The reply of `ticket` is in: a whole multi-get's estimate is no longer counted. */
  #whole(ticket: number): void {
    const wholes = this.#wholes as Map<number, number>;
    const est = wholes.get(ticket);
    if (est === undefined) return;
    wholes.delete(ticket);
    this.#wholeBytes -= est;
  }

  reserve(): number {
    this.#slots.push(undefined);
    this.#pending++;
    this.#account();
    return this.#next++;
  }

  fill(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void {
    if (this.#closed) return;
    const ended = this.#streams.length > 0 && this.#partsEnded(ticket);
    let n: number;
    if (reply instanceof Uint8Array) n = reply.length;
    else {
      n = 0;
      for (const p of reply) n += p.length;
    }
    this.#sized(n);
    this.#held += n;
    this.#pending--;
    if (this.#wholes !== null) this.#whole(ticket);
    this.#account();
    this.#slots[ticket - this.#slotBase()] = reply;
    // After a bad magic byte the head waits for the last reply (see #cut).
    if (ticket === this.#head || this.#dropFrom >= 0) this.#drain();
    if (ended) this.#runBehindParts();
  }

  fillFrame(ticket: number, buf: Uint8Array, start: number, length: number): void {
    if (this.#closed) return;
    const ended = this.#streams.length > 0 && this.#partsEnded(ticket);
    this.#sized(length);
    this.#held += length;
    this.#pending--;
    if (this.#wholes !== null) this.#whole(ticket);
    this.#account();
    if (ticket !== this.#head || ticket >= this.#hold) {
      this.#slots[ticket - this.#slotBase()] = carveCopy(buf, start, start + length);
      if (ticket === this.#head || this.#dropFrom >= 0) this.#drain();
    } else {
      // The head: straight into the output, no copy of its own.
      this.#sink().bytes(buf, start, start + length);
      this.#slotHead++;
      this.#head++;
      this.#drain();
    }
    if (ended) this.#runBehindParts();
  }

  /** True when `ticket`'s reply was being written in parts (it is complete now). */
  #partsEnded(ticket: number): boolean {
    const i = this.#streams.indexOf(ticket);
    if (i < 0) return false;
    this.#streams.splice(i, 1);
    return true;
  }

  /** True while a reply before `ticket` is being written in parts. */
  #partsBefore(ticket: number): boolean {
    for (const t of this.#streams) if (t < ticket) return true;
    return false;
  }

  /**
   * A request held in the router, read before a multi-get that is now
   * written in parts and released after it, goes once that get is complete
   * (see {@linkcode ReplySink.afterParts}).
   */
  afterParts(ticket: number, go: () => void): void {
    if (!this.#partsBefore(ticket)) return go();
    const q = this.#behindParts;
    let i = q.length;
    while (i > 0 && q[i - 1].ticket > ticket) i--;
    q.splice(i, 0, { ticket, go });
  }

  /** The requests behind parts that no longer are go, in ticket order (one may start parts). */
  #runBehindParts(): void {
    const q = this.#behindParts;
    while (q.length > 0 && !this.#partsBefore(q[0].ticket)) (q.shift() as { go: () => void }).go();
  }

  whenRoom(ticket: number, go: () => void): void {
    if (this.#closed) return;
    if (!this.#streams.includes(ticket)) this.#streams.push(ticket);
    if (ticket === this.#head && ticket < this.#hold && this.#partRoom()) go();
    else (this.#rooms ??= new Map()).set(ticket, go);
  }

  fillPart(ticket: number, part: Uint8Array | readonly Uint8Array[]): void {
    if (this.#closed) return;
    // whenRoom made it the head: it goes straight to the output.
    if (ticket !== this.#head) {
      // Never happens (whenRoom ran go at the head): out of order would garble the stream.
      log.warn(`proxy: part of reply ${ticket} before its turn (head ${this.#head}): closing`);
      this.#close();
      return;
    }
    const out = this.#sink();
    let n = 0;
    if (part instanceof Uint8Array) {
      n = part.length;
      out.bytes(part);
    } else {
      for (const p of part) {
        out.bytes(p);
        n += p.length;
      }
    }
    this.#sized(n);
    this.#held += n;
    this.#account();
    this.#schedule();
  }

  /** The head's reply waits for room and has it now: its next part is fetched. */
  #roomNow(): void {
    const rooms = this.#rooms;
    if (rooms === null || rooms.size === 0 || !this.#partRoom()) return;
    if (this.#head >= this.#hold) return;
    const go = rooms.get(this.#head);
    if (go === undefined) return;
    rooms.delete(this.#head);
    go();
  }

  reply(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.#head === this.#next && this.#hold === Infinity) {
      this.#sized(bytes.length);
      this.#held += bytes.length;
      this.#account();
      this.#sink().bytes(bytes);
      this.#schedule();
      return;
    }
    this.fill(this.reserve(), bytes);
  }

  closeAfterReplies(): void {
    if (this.#closeAt < 0) this.#closeAt = this.#next;
    if (this.#head === this.#closeAt) this.#schedule();
  }

  #slotBase(): number {
    return this.#head - this.#slotHead;
  }

  /** Move every ready reply at the head into the output buffer. */
  #drain(): void {
    const slots = this.#slots;
    let i = this.#slotHead;
    while (i < slots.length && this.#head < this.#hold) {
      if (this.#dropFrom >= 0 && this.#head >= this.#dropFrom) {
        if (this.#cut(i)) i = slots.length;
        break;
      }
      const s = slots[i];
      if (s === undefined) break;
      const out = this.#sink();
      if (s instanceof Uint8Array) out.bytes(s);
      else for (const p of s) out.bytes(p);
      slots[i] = undefined;
      i++;
      this.#head++;
    }
    if (i === slots.length) {
      slots.length = 0;
      this.#slotHead = 0;
    } else if (i > 1024 && i * 2 > slots.length) {
      this.#slots = slots.slice(i);
      this.#slotHead = 0;
    } else this.#slotHead = i;
    this.#schedule();
    this.#wake();
    this.#roomNow();
  }

  /**
   * A bad magic byte ended a binary connection: of the replies from
   * `#dropFrom` (memcached's last transmit) to the close, only those up to
   * the last one memcached transmits at once (an error, a noop) are sent,
   * the rest is dropped, as memcached drops what it had queued. Waits until
   * all of them are in; true once done (slot `i` is `#dropFrom`'s).
   */
  #cut(i: number): boolean {
    const slots = this.#slots;
    const n = this.#closeAt - this.#head;
    let last = -1;
    for (let k = 0; k < n; k++) {
      const s = slots[i + k];
      if (s === undefined) return false;
      if (transmitsAtOnce(s) && !this.#queued.has(this.#head + k)) last = k;
    }
    for (let k = 0; k <= last; k++) {
      const s = slots[i + k] as Uint8Array | readonly Uint8Array[];
      const out = this.#sink();
      if (s instanceof Uint8Array) out.bytes(s);
      else for (const p of s) out.bytes(p);
    }
    this.#head = this.#closeAt;
    this.#dropFrom = -1;
    return true;
  }

  #wake(): void {
    const d = this.#drained;
    if (d !== undefined && this.#next - this.#head <= this.#window / 2) {
      this.#drained = undefined;
      d();
    }
  }

  #schedule(): void {
    if (this.#flushQueued || this.#writing) return;
    this.#flushQueued = true;
    // After the current batch of replies (all resolved in this turn) is in.
    queueMicrotask(this.#flush);
  }

  /**
   * Write what is buffered: one `conn.write` per batch with bound callbacks,
   * no async function or writeAll promise of its own; a partial write goes
   * on from where it stopped.
   */
  readonly #flush = (): void => {
    this.#flushQueued = false;
    if (this.#writing || this.#closed) return;
    const w = this.#out;
    if (w === null || w.length === 0) {
      if (w !== null) writers.give(w);
      this.#out = null;
      this.#flushed();
      return;
    }
    // Double buffering: #spare is written while a new #out collects.
    this.#out = null;
    this.#spare = w;
    this.#writing = true;
    this.#writeOff = 0;
    this.#send(w.view());
  };

  /** One write; a synchronous throw (a closed resource) fails as a rejection does. */
  #send(bytes: Uint8Array): void {
    if (TRACE) mark("wsend");
    try {
      this.#io.write(bytes).then(this.#written, this.#writeFailed);
    } catch (err) {
      this.#writeFailed(err);
    }
  }

  /** Bytes of #spare written so far. */
  #writeOff = 0;

  readonly #written = (n: number): void => {
    const w = this.#spare as Writer;
    this.#writeOff += n;
    if (!this.#closed) {
      this.#held -= n;
      this.#account();
    }
    if (this.#writeOff < w.length && !this.#closed) {
      this.#send(w.view().subarray(this.#writeOff));
      return;
    }
    if (TRACE) traceEnd();
    this.#spare = null;
    writers.give(w);
    this.#writing = false;
    if (this.#closed) return;
    this.#wake();
    if (this.#out !== null && this.#out.length > 0) this.#flush();
    else this.#flushed();
    this.#roomNow();
  };

  readonly #writeFailed = (err: unknown): void => {
    this.#writing = false;
    if (!isDisconnect(err)) log.warn(`proxy: client write: ${err}`);
    this.#close();
  };

  /** Everything is written: close if asked to, else let reading go on. */
  #flushed(): void {
    if (this.#closeAt >= 0 && this.#head >= this.#closeAt) this.#close();
    else if (this.#drained !== undefined) this.#wake();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // What it held is dropped with it (a write in flight still holds #spare until it ends).
    budget.bytes -= this.#counted;
    this.#counted =
      this.#held =
      this.#pending =
      this.#wholeBytes =
        0;
    this.#wholes = null;
    this.#slots = [];
    this.#rooms = null; // what waits for room is dropped with the connection
    this.#streams = [];
    this.#behindParts = [];
    this.#out = null; // (a write in flight still holds #spare)
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    const d = this.#drained;
    this.#drained = undefined;
    d?.();
    this.#gone.resolve();
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
