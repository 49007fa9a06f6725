/**
 * Framing for the proxy's binary front: the router's text/meta reply to a
 * restated request becomes memcached 1.6.18's binary reply (opaque echoed,
 * CAS from the meta reply, memcached's status codes and texts, quiet
 * commands silent on success, getq/getkq on a miss). A touch/gat pairs two
 * router calls into one reply.
 * @module
 */

import {
  ascii,
  BINARY_STATUS_TEXT,
  BinaryOpcode,
  type BinaryRequest,
  BinaryStatus,
  carveCopy,
  type OpCode,
  parseDecimal,
  parseDecimalBigInt,
  ReplyKind,
  ReplyParser,
  writeBinaryHeader,
  writeBinaryStatLines,
  writeBinaryU32,
  writeBinaryU64,
  Writer,
} from "../protocol/mod.ts";
import type { ReplySink } from "./router/mod.ts";

/** No reply: a quiet command's success (or getq's miss). */
export const SILENT: readonly Uint8Array[] = [];
/** A touch's slot when it missed: silent, and its read-back answers as a miss. */
export const MISSED: readonly Uint8Array[] = [];
const EN_REPLY = ascii("EN\r\n");

/** How a request's text reply becomes a binary one. */
export const Shape = {
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

/** Builds binary reply packets; one per connection (it reuses its buffers). */
export class BinaryFramer {
  /** Reply packets are built here, then copied out. */
  readonly #pkt = new Writer(1024);
  readonly #parser = new ReplyParser();

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
  empty(req: { opcode: number; opaque: number }, status: number, cas: number): Uint8Array {
    writeBinaryHeader(this.#start(), req.opcode, status, req.opaque, cas, 0, 0, 0);
    return this.#done();
  }

  /** An error packet with memcached's text for `status` (or `text`). */
  error(
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
      return this.error(ctx, BinaryStatus.EINTERNAL, "Bad backend reply");
    }
    const k = p.kind;
    const quiet = ctx.quiet;
    if (k === ReplyKind.ERROR || k === ReplyKind.CLIENT_ERROR || k === ReplyKind.SERVER_ERROR) {
      if (ctx.shape === Shape.STAT && k === ReplyKind.ERROR) {
        return this.error(ctx, BinaryStatus.KEY_ENOENT); // an unknown stats group
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
          if (key === null) return this.error(ctx, BinaryStatus.KEY_ENOENT);
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
        if (k === ReplyKind.HD) return quiet ? SILENT : this.empty(ctx, 0, cas);
        if (k === ReplyKind.EX) return this.error(ctx, BinaryStatus.KEY_EEXISTS);
        if (k === ReplyKind.NF) return this.error(ctx, BinaryStatus.KEY_ENOENT);
        // NS: add of a present key, replace of a missing one, append/prepend to a missing one.
        return this.error(
          ctx,
          ctx.command === BinaryOpcode.ADD
            ? BinaryStatus.KEY_EEXISTS
            : ctx.command === BinaryOpcode.REPLACE
            ? BinaryStatus.KEY_ENOENT
            : BinaryStatus.NOT_STORED,
        );
      case Shape.DELETE:
        if (k === ReplyKind.HD) return quiet ? SILENT : this.empty(ctx, 0, 0);
        if (k === ReplyKind.EX) return this.error(ctx, BinaryStatus.KEY_EEXISTS);
        return this.error(ctx, BinaryStatus.KEY_ENOENT);
      case Shape.ARITH: {
        if (k === ReplyKind.VA) {
          if (quiet) return SILENT;
          const n = parseDecimalBigInt(bytes, p.valueStart, p.valueEnd) ?? 0n;
          const w = this.#start();
          writeBinaryHeader(w, ctx.opcode, 0, ctx.opaque, cas, 0, 0, 8);
          writeBinaryU64(w, n);
          return this.#done();
        }
        if (k === ReplyKind.EX) return this.error(ctx, BinaryStatus.KEY_EEXISTS);
        if (k === ReplyKind.NS) {
          return this.error(ctx, BinaryStatus.ENOMEM, "Out of memory allocating new item");
        }
        return this.error(ctx, BinaryStatus.KEY_ENOENT);
      }
      case Shape.FLUSH:
        return quiet ? SILENT : this.empty(ctx, 0, 0);
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
    return this.error(ctx, BinaryStatus.EINTERNAL, "Bad backend reply");
  }

  /** A text error reply as memcached's binary status for it. */
  #failure(ctx: BinaryReplySink, bytes: Uint8Array, p: ReplyParser): Uint8Array {
    const msg = String.fromCharCode(
      ...bytes.subarray(p.textStart, Math.min(p.textEnd, p.textStart + 80)),
    );
    if (msg === "object too large for cache") return this.error(ctx, BinaryStatus.E2BIG);
    if (msg.startsWith("out of memory") || msg.startsWith("Out of memory")) {
      const text = ctx.shape === Shape.ARITH
        ? "Out of memory incrementing value"
        : "Out of memory allocating item";
      return this.error(ctx, BinaryStatus.ENOMEM, text);
    }
    if (msg === "cannot increment or decrement non-numeric value") {
      return this.error(ctx, BinaryStatus.DELTA_BADVAL);
    }
    if (msg === "no backend available") {
      return this.error(ctx, BinaryStatus.ETMPFAIL, "No backend available");
    }
    if (p.kind === ReplyKind.CLIENT_ERROR) return this.error(ctx, BinaryStatus.EINVAL);
    return this.error(ctx, BinaryStatus.EINTERNAL, msg);
  }
}

/**
 * A binary touch/gat is answered by two router calls: the text touch's
 * outcome decides, the read-back's flags, CAS (and value) are the reply.
 * Whichever comes second fills the read-back's slot; the touch's own slot
 * stays empty unless it failed (no backend).
 */
export class TouchPair {
  readonly #conn: ReplySink;
  /** The touch's reply: undefined until it came. */
  #touch: Uint8Array | readonly Uint8Array[] | undefined;
  #heldTicket = -1;
  #held: Uint8Array | readonly Uint8Array[] = SILENT;
  /** Frames the read-back's miss (its sink). */
  #miss: (() => Uint8Array | readonly Uint8Array[]) | undefined;

  /** A pair whose one reply goes to `conn`. */
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
export class BinaryReplySink implements ReplySink {
  readonly #framer: BinaryFramer;
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
  /** Echoed in the reply. */
  readonly opaque: number;
  /** A quiet opcode: success is not answered. */
  readonly quiet: boolean;
  /** The key, for replies that carry it (getk, gatk). */
  readonly key: Uint8Array | null;

  /** The sink for `req`, framing with `framer` into `conn`. */
  constructor(
    framer: BinaryFramer,
    conn: ReplySink,
    req: BinaryRequest,
    shape: number,
    textOp: OpCode,
    key: Uint8Array | null,
    pair: TouchPair | null,
  ) {
    this.#framer = framer;
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
    if (reply instanceof Uint8Array) return this.#framer.translate(this, reply);
    if (reply.length === 0) return SILENT;
    if (reply.length === 1) return this.#framer.translate(this, reply[0]);
    let n = 0;
    for (const p of reply) n += p.length;
    const all = new Uint8Array(n);
    n = 0;
    for (const p of reply) {
      all.set(p, n);
      n += p.length;
    }
    return this.#framer.translate(this, all);
  }

  #deliver(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void {
    const pair = this.#pair;
    if (pair === null) this.#conn.fill(ticket, reply);
    else if (this.shape === Shape.TOUCH) pair.touched(ticket, reply);
    else pair.readBack(ticket, reply, () => this.#framer.translate(this, EN_REPLY));
  }
}
