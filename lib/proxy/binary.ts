/**
 * The binary protocol in front of the router. A binary client's request
 * (parsed by lib/protocol/binary.ts) is restated as the text/meta request
 * with the same meaning (get -> `mg v f c`, set -> `ms ... c`, incr ->
 * `ma ... N J`, delete -> `md`, touch -> `touch` + `mg f c`) and handed to
 * the same router entry points text requests use: the key hashes to the
 * same primary, and backups, fallback on miss or failure, repair and write
 * copies behave exactly as for text. Backends keep speaking text/meta.
 *
 * The router's reply to that request is then framed as memcached 1.6.18's
 * binary reply: opaque echoed, CAS from the meta reply, memcached's status
 * codes and texts, quiet commands silent on success (getq/getkq: on a
 * miss). Replies keep request order through the connection's slots, so a
 * getkq...noop pipeline fans out over the primaries and is answered in
 * order at the noop.
 * @module
 */

import {
  ascii,
  base64Encode,
  base64Length,
  BINARY_PROTOCOL_VERSION,
  BINARY_STATUS_TEXT,
  BinaryOpcode,
  type BinaryRequest,
  BinaryStatus,
  carveCopy,
  NO_AUTOVIVIFY,
  Op,
  type OpCode,
  parseRequest,
  ReplyKind,
  ReplyParser,
  Request,
  writeBinaryHeader,
  writeBinaryStatLines,
  writeBinaryU32,
  writeBinaryU64,
  Writer,
} from "../protocol/mod.ts";
import { parseDecimal, parseDecimalBigInt } from "../protocol/bytes.ts";
import { Next, type ReplySink, type Router } from "./router/mod.ts";

/** No reply: a quiet command's success (or getq's miss). */
const SILENT: readonly Uint8Array[] = [];
/** A touch's slot when it missed: silent, and its read-back answers as a miss. */
const MISSED: readonly Uint8Array[] = [];
const EN_REPLY = ascii("EN\r\n");

/** How a request's text reply becomes a binary one. */
const Shape = {
  /** mg v f c: VA -> flags, key (getk), value; EN -> not found. */
  GET: 0,
  /** mg f c (touch's read-back): HD -> flags, no value. */
  TOUCHED: 1,
  /** ms ... c: HD -> CAS; NS/EX/NF per command. */
  STORE: 2,
  /** md: HD -> success. */
  DELETE: 3,
  /** ma v c: VA -> the counter as a u64. */
  ARITH: 4,
  /** flush_all: OK. */
  FLUSH: 5,
  /** stats: STAT lines -> stat packets and the empty one. */
  STAT: 6,
  /** touch (text, every copy of the key): TOUCHED -> nothing yet, the read-back answers. */
  TOUCH: 7,
} as const;

/** ms modes per storage opcode (SET stores in the default mode S). */
const MODE: Record<number, string> = {
  [BinaryOpcode.ADD]: " ME",
  [BinaryOpcode.REPLACE]: " MR",
  [BinaryOpcode.APPEND]: " MA",
  [BinaryOpcode.PREPEND]: " MP",
};

const W_MG = ascii("mg ");
const W_MS = ascii("ms ");
const W_MD = ascii("md ");
const W_MA = ascii("ma ");
const W_TOUCH = ascii("touch ");
const W_B = ascii(" b");
const W_GET_FLAGS = ascii(" v f c");
const W_TOUCH_FLAGS = ascii(" f c");

/** Meta and text exptimes are int32: a larger binary one (an absolute time past 2038) is clamped. */
const MAX_EXPTIME = 0x7fffffff;

/** A binary key a text line can carry as is (memcached's text keys: printable, no space). */
function textSafe(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

/**
 * One connection's binary front: turns each request into router calls and
 * their replies into binary packets. Reuses its scratch buffers, so it
 * belongs to one connection.
 */
export class BinaryFront {
  readonly #router: Router;
  readonly #maxValue: number;
  /** The restated text/meta request being built. */
  readonly #line = new Writer(1024);
  readonly #text = new Request();
  /** Reply packets are built here, then copied out. */
  readonly #pkt = new Writer(1024);
  readonly #parser = new ReplyParser();

  /** A front routing through `router`; `maxValue` bounds values as for text. */
  constructor(router: Router, maxValue: number) {
    this.#router = router;
    this.#maxValue = maxValue;
  }

  /** Route one parsed request; its reply goes to `conn` in request order. Returns a Next code. */
  handle(req: BinaryRequest, conn: ReplySink): number {
    switch (req.op) {
      case Op.ERROR:
        // The codec's error packet lives in a scratch of `req`: copy it.
        if (req.error !== null) conn.reply(carveCopy(req.error, 0, req.error.length));
        return req.closeAfter ? Next.CLOSE : Next.CONTINUE;
      case Op.MN: // noop: answered in turn, after everything before it
        conn.reply(this.#empty(req, BinaryStatus.SUCCESS, 0));
        return Next.CONTINUE;
      case Op.VERSION: {
        const v = BINARY_PROTOCOL_VERSION;
        const w = this.#start();
        writeBinaryHeader(w, req.opcode, 0, req.opaque, 0, 0, 0, v.length);
        w.text(v);
        conn.reply(this.#done());
        return Next.CONTINUE;
      }
      case Op.QUIT:
        if (!req.noreply) conn.reply(this.#empty(req, BinaryStatus.SUCCESS, 0));
        return Next.CLOSE;
      case Op.GET:
        this.#get(req, conn);
        return Next.CONTINUE;
      case Op.GAT:
      case Op.TOUCH:
        this.#touch(req, conn);
        return Next.CONTINUE;
      case Op.SET:
      case Op.ADD:
      case Op.REPLACE:
      case Op.APPEND:
      case Op.PREPEND:
        if (req.tooLarge) {
          conn.reply(this.#error(req, BinaryStatus.E2BIG));
          return Next.CONTINUE;
        }
        this.#store(req, conn);
        return Next.CONTINUE;
      case Op.DELETE:
        this.#route(req, conn, Shape.DELETE, Op.MD, () => {
          this.#keyed(W_MD, req);
          this.#cas(req);
        });
        return Next.CONTINUE;
      case Op.INCR:
      case Op.DECR:
        this.#route(req, conn, Shape.ARITH, Op.MA, () => {
          const w = this.#keyed(W_MA, req);
          w.text(req.op === Op.INCR ? " v c MI D" : " v c MD D");
          w.text(req.deltaBig.toString());
          if (req.arithExptime !== NO_AUTOVIVIFY) {
            w.text(" N");
            w.uint(Math.min(req.arithExptime, MAX_EXPTIME));
            w.text(" J");
            w.text(req.initialBig.toString());
          }
          this.#cas(req);
        });
        return Next.CONTINUE;
      case Op.FLUSH_ALL:
        this.#route(req, conn, Shape.FLUSH, Op.FLUSH_ALL, () => {
          const w = this.#line;
          w.text("flush_all");
          if (req.exptime !== 0) {
            w.byte(0x20);
            w.uint(Math.min(req.exptime, MAX_EXPTIME));
          }
        });
        return Next.CONTINUE;
      case Op.STATS: {
        if (!textSafeGroup(req)) {
          conn.reply(this.#error(req, BinaryStatus.KEY_ENOENT));
          return Next.CONTINUE;
        }
        this.#route(req, conn, Shape.STAT, Op.STATS, () => {
          const w = this.#line;
          w.text("stats");
          if (req.keyEnd > req.keyStart) {
            w.byte(0x20);
            w.bytes(req.keyBuf, req.keyStart, req.keyEnd);
          }
        });
        return Next.CONTINUE;
      }
    }
    conn.reply(this.#error(req, BinaryStatus.UNKNOWN_COMMAND));
    return Next.CONTINUE;
  }

  /** get/getk and their quiet forms: `mg <key> v f c`. */
  #get(req: BinaryRequest, conn: ReplySink): void {
    this.#route(req, conn, Shape.GET, Op.MG, () => {
      this.#keyed(W_MG, req).bytes(W_GET_FLAGS);
    });
  }

  /**
   * touch, gat, gatk (+q): a text `touch` reaches every copy of the key (as
   * a text client's touch does: a backup left with the old expiry would
   * bring an expired item back), and a pipelined `mg` reads what the
   * binary reply carries (flags, CAS; gat: the value). The touch's outcome
   * decides hit or miss. A key text cannot carry is touched on its primary
   * only (`mg b T`).
   */
  #touch(req: BinaryRequest, conn: ReplySink): void {
    const shape = req.op === Op.TOUCH ? Shape.TOUCHED : Shape.GET;
    const flags = req.op === Op.TOUCH ? W_TOUCH_FLAGS : W_GET_FLAGS;
    if (!textSafe(req.keyBuf, req.keyStart, req.keyEnd)) {
      this.#route(req, conn, shape, Op.MG, () => {
        this.#keyed(W_MG, req).bytes(flags);
        this.#ttl(req.exptime);
      });
      return;
    }
    const pair = new TouchPair(conn);
    this.#route(req, conn, Shape.TOUCH, Op.TOUCH, () => {
      const w = this.#line;
      w.bytes(W_TOUCH);
      w.bytes(req.keyBuf, req.keyStart, req.keyEnd);
      w.byte(0x20);
      w.uint(Math.min(req.exptime, MAX_EXPTIME));
    }, pair);
    this.#route(req, conn, shape, Op.MG, () => {
      this.#keyed(W_MG, req).bytes(flags);
    }, pair);
  }

  /** set/add/replace/append/prepend (+q): `ms <key> <len> [F T] c [M<mode>] [C<cas>]`. */
  #store(req: BinaryRequest, conn: ReplySink): void {
    this.#route(req, conn, Shape.STORE, Op.MS, () => {
      const w = this.#keyed(W_MS, req, req.dataEnd - req.dataStart);
      const cmd = req.command;
      const concat = cmd === BinaryOpcode.APPEND || cmd === BinaryOpcode.PREPEND;
      if (!concat) {
        w.text(" F");
        w.uint(req.flags);
        this.#ttl(req.exptime);
      }
      w.text(" c");
      // A CAS turns set/add/replace into a compare-and-swap (memcached's NREAD_CAS).
      const hasCas = this.#hasCas(req);
      if (concat || !hasCas) {
        const mode = MODE[cmd];
        if (mode !== undefined) w.text(mode);
      }
      this.#cas(req);
      w.crlf();
      w.bytes(req.buf, req.dataStart, req.dataEnd);
    });
  }

  /**
   * Restate `req` as one text request (`build` writes its line, or line and
   * value block), parse it with the shared parser and hand it to the router
   * with a sink that frames the reply as `shape` says.
   */
  #route(
    req: BinaryRequest,
    conn: ReplySink,
    shape: number,
    textOp: OpCode,
    build: () => void,
    pair: TouchPair | null = null,
  ): void {
    const w = this.#line;
    w.reset();
    build();
    w.crlf();
    const text = this.#text;
    const used = parseRequest(w.buf, 0, w.length, text, this.#maxValue);
    // A key too long for meta once base64-encoded is the one request text cannot state.
    if (used !== w.length || (text.op === Op.ERROR && text.error !== null)) {
      conn.reply(this.#error(req, BinaryStatus.EINVAL));
      return;
    }
    const key = req.returnKey ? carveCopy(req.keyBuf, req.keyStart, req.keyEnd) : null;
    const sink = new BinaryReplySink(this, conn, req, shape, textOp, key, pair);
    this.#router.handle(text, w.view(), sink);
  }

  /**
   * Start the line with `word` and the key; a key text cannot carry goes
   * base64 with the ` b` flag, right after it (`ms`: after the length).
   */
  #keyed(word: Uint8Array, req: BinaryRequest, vlen = -1): Writer {
    const w = this.#line;
    w.bytes(word);
    const buf = req.keyBuf, s = req.keyStart, e = req.keyEnd;
    const safe = textSafe(buf, s, e);
    if (safe) w.bytes(buf, s, e);
    else {
      w.reserve(base64Length(e - s));
      w.length = base64Encode(buf, s, e, w.buf, w.length);
    }
    if (vlen >= 0) {
      w.byte(0x20);
      w.uint(vlen);
    }
    if (!safe) w.bytes(W_B);
    return w;
  }

  #ttl(exptime: number): void {
    this.#line.text(" T");
    this.#line.uint(Math.min(exptime, MAX_EXPTIME));
  }

  #hasCas(req: BinaryRequest): boolean {
    return req.cas !== 0;
  }

  /** ` C<cas>` when the request has one, the header's exact u64. */
  #cas(req: BinaryRequest): void {
    if (!this.#hasCas(req)) return;
    const w = this.#line;
    w.text(" C");
    if (req.cas <= Number.MAX_SAFE_INTEGER) w.uint(req.cas);
    else {
      const b = req.buf, p = req.lineStart + 16;
      let v = 0n;
      for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(b[p + i]);
      w.text(v.toString());
    }
  }

  /** A reply to `req` with `status` and `body` (no extras, no key, CAS 0), e.g. SASL's. */
  packet(req: BinaryRequest, status: number, body: Uint8Array): Uint8Array {
    const w = this.#start();
    writeBinaryHeader(w, req.opcode, status, req.opaque, 0, 0, 0, body.length);
    w.bytes(body);
    return this.#done();
  }

  #start(): Writer {
    this.#pkt.reset();
    return this.#pkt;
  }

  /** The packet built since {@linkcode #start}, copied out. */
  #done(): Uint8Array {
    return carveCopy(this.#pkt.buf, 0, this.#pkt.length);
  }

  /** A reply without a body. */
  #empty(req: { opcode: number; opaque: number }, status: number, cas: number): Uint8Array {
    writeBinaryHeader(this.#start(), req.opcode, status, req.opaque, cas, 0, 0, 0);
    return this.#done();
  }

  /** An error packet with memcached's text for `status` (or `text`). */
  #error(
    req: { opcode: number; opaque: number },
    status: number,
    text: string = BINARY_STATUS_TEXT[status] ?? "",
  ): Uint8Array {
    const w = this.#start();
    writeBinaryHeader(w, req.opcode, status, req.opaque, 0, 0, 0, text.length);
    w.text(text);
    return this.#done();
  }

  /**
   * The binary reply to `ctx` for one complete text reply `bytes` (kept:
   * a value in it is passed on as a view). Empty parts for silence.
   */
  translate(ctx: BinaryReplySink, bytes: Uint8Array): Uint8Array | readonly Uint8Array[] {
    const p = this.#parser;
    p.reset();
    if (p.parse(bytes, 0, bytes.length, ctx.textOp) <= 0) {
      return this.#error(ctx, BinaryStatus.EINTERNAL, "Bad backend reply");
    }
    const k = p.kind;
    const quiet = ctx.quiet;
    if (k === ReplyKind.ERROR || k === ReplyKind.CLIENT_ERROR || k === ReplyKind.SERVER_ERROR) {
      if (ctx.shape === Shape.STAT && k === ReplyKind.ERROR) {
        return this.#error(ctx, BinaryStatus.KEY_ENOENT); // an unknown stats group
      }
      return this.#failure(ctx, bytes, p);
    }
    const cas = p.casStart < 0 ? 0 : parseDecimal(bytes, p.casStart, p.casEnd);
    switch (ctx.shape) {
      case Shape.GET:
      case Shape.TOUCHED: {
        if (k !== ReplyKind.VA && k !== ReplyKind.HD) {
          if (quiet) return SILENT;
          const key = ctx.key;
          if (key === null) return this.#error(ctx, BinaryStatus.KEY_ENOENT);
          // getk/gatk misses carry the key instead of a message.
          const w = this.#start();
          writeBinaryHeader(
            w,
            ctx.opcode,
            BinaryStatus.KEY_ENOENT,
            ctx.opaque,
            0,
            key.length,
            0,
            key.length,
          );
          w.bytes(key);
          return this.#done();
        }
        const key = ctx.key;
        const klen = key === null ? 0 : key.length;
        const hasValue = k === ReplyKind.VA && ctx.shape === Shape.GET;
        const vlen = hasValue ? p.valueEnd - p.valueStart : 0;
        const w = this.#start();
        writeBinaryHeader(w, ctx.opcode, 0, ctx.opaque, cas, klen, 4, 4 + klen + vlen);
        writeBinaryU32(w, p.flags);
        if (key !== null) w.bytes(key);
        if (vlen === 0) return this.#done();
        if (vlen < 256) {
          w.bytes(bytes, p.valueStart, p.valueEnd);
          return this.#done();
        }
        return [this.#done(), bytes.subarray(p.valueStart, p.valueEnd)];
      }
      case Shape.STORE:
        if (k === ReplyKind.HD) return quiet ? SILENT : this.#empty(ctx, 0, cas);
        if (k === ReplyKind.EX) return this.#error(ctx, BinaryStatus.KEY_EEXISTS);
        if (k === ReplyKind.NF) return this.#error(ctx, BinaryStatus.KEY_ENOENT);
        // NS: add of a present key, replace of a missing one, append/prepend to a missing one.
        return this.#error(
          ctx,
          ctx.command === BinaryOpcode.ADD
            ? BinaryStatus.KEY_EEXISTS
            : ctx.command === BinaryOpcode.REPLACE
            ? BinaryStatus.KEY_ENOENT
            : BinaryStatus.NOT_STORED,
        );
      case Shape.DELETE:
        if (k === ReplyKind.HD) return quiet ? SILENT : this.#empty(ctx, 0, 0);
        if (k === ReplyKind.EX) return this.#error(ctx, BinaryStatus.KEY_EEXISTS);
        return this.#error(ctx, BinaryStatus.KEY_ENOENT);
      case Shape.ARITH: {
        if (k === ReplyKind.VA) {
          if (quiet) return SILENT;
          const n = parseDecimalBigInt(bytes, p.valueStart, p.valueEnd) ?? 0n;
          const w = this.#start();
          writeBinaryHeader(w, ctx.opcode, 0, ctx.opaque, cas, 0, 0, 8);
          writeBinaryU64(w, n);
          return this.#done();
        }
        if (k === ReplyKind.EX) return this.#error(ctx, BinaryStatus.KEY_EEXISTS);
        if (k === ReplyKind.NS) {
          return this.#error(ctx, BinaryStatus.ENOMEM, "Out of memory allocating new item");
        }
        return this.#error(ctx, BinaryStatus.KEY_ENOENT);
      }
      case Shape.FLUSH:
        return quiet ? SILENT : this.#empty(ctx, 0, 0);
      case Shape.STAT: {
        const w = this.#start();
        if (k === ReplyKind.STATS) writeBinaryStatLines(w, ctx.opaque, bytes, 0, bytes.length);
        writeBinaryHeader(w, BinaryOpcode.STAT, 0, ctx.opaque, 0, 0, 0, 0);
        return this.#done();
      }
      case Shape.TOUCH:
        // The read-back's slot answers; a miss makes it answer as a miss.
        return k === ReplyKind.TOUCHED ? SILENT : MISSED;
    }
    return this.#error(ctx, BinaryStatus.EINTERNAL, "Bad backend reply");
  }

  /** A text error reply as memcached's binary status for it. */
  #failure(ctx: BinaryReplySink, bytes: Uint8Array, p: ReplyParser): Uint8Array {
    const msg = String.fromCharCode(
      ...bytes.subarray(p.textStart, Math.min(p.textEnd, p.textStart + 80)),
    );
    if (msg === "object too large for cache") return this.#error(ctx, BinaryStatus.E2BIG);
    if (msg.startsWith("out of memory") || msg.startsWith("Out of memory")) {
      const text = ctx.shape === Shape.ARITH
        ? "Out of memory incrementing value"
        : "Out of memory allocating item";
      return this.#error(ctx, BinaryStatus.ENOMEM, text);
    }
    if (msg === "cannot increment or decrement non-numeric value") {
      return this.#error(ctx, BinaryStatus.DELTA_BADVAL);
    }
    if (msg === "no backend available") {
      return this.#error(ctx, BinaryStatus.ETMPFAIL, "No backend available");
    }
    if (p.kind === ReplyKind.CLIENT_ERROR) return this.#error(ctx, BinaryStatus.EINVAL);
    return this.#error(ctx, BinaryStatus.EINTERNAL, msg);
  }
}

/** A stats group the text `stats` line can carry. */
function textSafeGroup(req: BinaryRequest): boolean {
  const buf = req.keyBuf;
  for (let i = req.keyStart; i < req.keyEnd; i++) {
    const c = buf[i];
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

/**
 * A binary touch/gat is answered by two router calls: the text touch's
 * outcome decides, the read-back's flags, CAS (and value) are the reply.
 * Whichever comes second fills the read-back's slot; the touch's own slot
 * stays empty unless it failed (no backend).
 */
class TouchPair {
  readonly #conn: ReplySink;
  /** The touch's reply: undefined until it came. */
  #touch: Uint8Array | readonly Uint8Array[] | undefined;
  #heldTicket = -1;
  #held: Uint8Array | readonly Uint8Array[] = SILENT;
  /** Frames the read-back's miss (its sink). */
  #miss: (() => Uint8Array | readonly Uint8Array[]) | undefined;

  constructor(conn: ReplySink) {
    this.#conn = conn;
  }

  /** The touch's framed reply: SILENT (touched), MISSED, or an error packet. */
  touched(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void {
    this.#touch = reply;
    this.#conn.fill(ticket, reply === SILENT || reply === MISSED ? SILENT : reply);
    if (this.#heldTicket >= 0) this.#release();
  }

  /** The read-back's framed reply, and how to frame a miss for it. */
  readBack(
    ticket: number,
    reply: Uint8Array | readonly Uint8Array[],
    miss: () => Uint8Array | readonly Uint8Array[],
  ): void {
    this.#heldTicket = ticket;
    this.#held = reply;
    this.#miss = miss;
    if (this.#touch !== undefined) this.#release();
  }

  #release(): void {
    const t = this.#touch;
    let reply = this.#held;
    if (t === MISSED) reply = (this.#miss as () => Uint8Array | readonly Uint8Array[])();
    else if (t !== SILENT) reply = SILENT; // the touch's error answered
    this.#conn.fill(this.#heldTicket, reply);
  }
}

/** The router's sink for one binary request: frames each text reply as binary. */
class BinaryReplySink implements ReplySink {
  readonly #front: BinaryFront;
  readonly #conn: ReplySink;
  readonly #pair: TouchPair | null;
  /** Reply framing (see Shape). */
  readonly shape: number;
  /** The text op the router was given (how to parse its reply). */
  readonly textOp: OpCode;
  /** Opcode as sent. */
  readonly opcode: number;
  /** Loud opcode. */
  readonly command: number;
  readonly opaque: number;
  readonly quiet: boolean;
  /** The key, for replies that carry it (getk, gatk). */
  readonly key: Uint8Array | null;

  constructor(
    front: BinaryFront,
    conn: ReplySink,
    req: BinaryRequest,
    shape: number,
    textOp: OpCode,
    key: Uint8Array | null,
    pair: TouchPair | null,
  ) {
    this.#front = front;
    this.#conn = conn;
    this.#pair = pair;
    this.shape = shape;
    this.textOp = textOp;
    this.opcode = req.opcode;
    this.command = req.command;
    this.opaque = req.opaque;
    this.quiet = req.noreply;
    this.key = key;
  }

  reserve(): number {
    return this.#conn.reserve();
  }

  fill(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void {
    this.#deliver(ticket, this.#framed(reply));
  }

  fillFrame(ticket: number, buf: Uint8Array, start: number, length: number): void {
    // The frame is valid during this call only; a value in it is passed on as a view.
    this.#deliver(ticket, this.#framed(carveCopy(buf, start, start + length)));
  }

  reply(bytes: Uint8Array): void {
    this.#deliver(this.#conn.reserve(), this.#framed(bytes));
  }

  closeAfterReplies(): void {
    this.#conn.closeAfterReplies();
  }

  #framed(reply: Uint8Array | readonly Uint8Array[]): Uint8Array | readonly Uint8Array[] {
    if (reply instanceof Uint8Array) return this.#front.translate(this, reply);
    if (reply.length === 0) return SILENT;
    if (reply.length === 1) return this.#front.translate(this, reply[0]);
    let n = 0;
    for (const p of reply) n += p.length;
    const all = new Uint8Array(n);
    n = 0;
    for (const p of reply) {
      all.set(p, n);
      n += p.length;
    }
    return this.#front.translate(this, all);
  }

  #deliver(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void {
    const pair = this.#pair;
    if (pair === null) this.#conn.fill(ticket, reply);
    else if (this.shape === Shape.TOUCH) pair.touched(ticket, reply);
    else pair.readBack(ticket, reply, () => this.#front.translate(this, EN_REPLY));
  }
}
