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
  BinaryOpcode,
  type BinaryRequest,
  BinaryStatus,
  carveCopy,
  MAX_KEY_LENGTH,
  NO_AUTOVIVIFY,
  Op,
  type OpCode,
  parseRequest,
  Request,
  Writer,
} from "../protocol/mod.ts";
import { Next, type ReplySink, type Router } from "./router/mod.ts";
import { BinaryFramer, BinaryReplySink, Shape, TouchPair } from "./binary_reply.ts";

/** ms modes per storage opcode (SET stores in the default mode S). */
const MODE: Record<number, string> = {
  [BinaryOpcode.ADD]: " ME",
  [BinaryOpcode.REPLACE]: " MR",
  [BinaryOpcode.APPEND]: " MA",
  [BinaryOpcode.PREPEND]: " MP",
};

/** What binary version answers: exactly memcached's (binary clients parse it). */
const VERSION = ascii(BINARY_PROTOCOL_VERSION);

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
/** memcached's REALTIME_MAXDELTA: a larger exptime is a unix time. */
const REALTIME_MAXDELTA = 60 * 60 * 24 * 30;

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
  readonly #framer = new BinaryFramer();

  /** A front routing through `router`; `maxValue` bounds values as for text. */
  constructor(router: Router, maxValue: number) {
    this.#router = router;
    this.#maxValue = maxValue;
  }

  /** A reply to `req` with `status` and `body` (no extras, key or CAS), e.g. SASL's. */
  packet(req: BinaryRequest, status: number, body: Uint8Array): Uint8Array {
    return this.#framer.packet(req, status, body);
  }

  /** Route one parsed request; its reply goes to `conn` in request order. Returns a Next code. */
  handle(req: BinaryRequest, conn: ReplySink): number {
    if (req.op !== Op.ERROR && req.op !== Op.STATS && unsayable(req)) {
      // memcached's answer to a binary key over 250 bytes (its meta refuses a base64 token over
      // 250 before decoding it): EINVAL, and the connection closes once it is sent.
      conn.reply(this.#framer.error(req, BinaryStatus.EINVAL));
      return Next.CLOSE;
    }
    switch (req.op) {
      case Op.ERROR:
        // The codec's error packet lives in a scratch of `req`: copy it.
        if (req.error !== null) conn.reply(carveCopy(req.error, 0, req.error.length));
        return req.closeAfter ? Next.CLOSE : Next.CONTINUE;
      case Op.MN: // noop: answered in turn, after everything before it
        conn.reply(this.#framer.empty(req, BinaryStatus.SUCCESS, 0));
        return Next.CONTINUE;
      case Op.VERSION: {
        conn.reply(this.#framer.packet(req, BinaryStatus.SUCCESS, VERSION));
        return Next.CONTINUE;
      }
      case Op.QUIT:
        if (!req.noreply) conn.reply(this.#framer.empty(req, BinaryStatus.SUCCESS, 0));
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
          conn.reply(this.#framer.error(req, BinaryStatus.E2BIG));
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
          conn.reply(this.#framer.error(req, BinaryStatus.KEY_ENOENT));
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
    conn.reply(this.#framer.error(req, BinaryStatus.UNKNOWN_COMMAND));
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
    const touch = () =>
      this.#route(req, conn, Shape.TOUCH, Op.TOUCH, () => {
        const w = this.#line;
        w.bytes(W_TOUCH);
        w.bytes(req.keyBuf, req.keyStart, req.keyEnd);
        w.byte(0x20);
        w.uint(Math.min(req.exptime, MAX_EXPTIME));
      }, pair);
    const read = () =>
      this.#route(req, conn, shape, Op.MG, () => {
        this.#keyed(W_MG, req).bytes(flags);
      }, pair);
    // An absolute time already past expires the item, which memcached still answers as a hit
    // (its touch returns the item it changed): read it before the touch ends it.
    if (req.exptime > REALTIME_MAXDELTA && req.exptime <= Date.now() / 1000) {
      read();
      touch();
    } else {
      touch();
      read();
    }
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
    // (Keys too long for meta were answered in handle(); anything else here is a bug's guard.)
    if (used !== w.length || (text.op === Op.ERROR && text.error !== null)) {
      conn.reply(this.#framer.error(req, BinaryStatus.EINVAL));
      return;
    }
    const key = req.returnKey ? carveCopy(req.keyBuf, req.keyStart, req.keyEnd) : null;
    const sink = new BinaryReplySink(this.#framer, conn, req, shape, textOp, key, pair);
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
}

/**
 * A key the backends cannot be sent: text cannot carry it and its base64
 * (meta's ` b`) is over memcached's 250-byte token limit, i.e. over 186 bytes.
 */
function unsayable(req: BinaryRequest): boolean {
  return base64Length(req.keyEnd - req.keyStart) > MAX_KEY_LENGTH &&
    !textSafe(req.keyBuf, req.keyStart, req.keyEnd);
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
