/**
 * The memcached binary protocol codec (memcached 1.6's proto_bin.c, which
 * serve and the proxy share): a request parser that validates packets as
 * memcached does and fills the same {@linkcode Request} the text parser
 * fills, and writers for response packets. No server knowledge: executing a
 * request is the caller's business.
 *
 * Client bytes never throw. A packet memcached rejects becomes a request
 * with `op === Op.ERROR` and its error packet in `error` (`closeAfter` when
 * memcached closes the connection after sending it); a bad magic byte makes
 * the parser return {@linkcode PARSE_CLOSE}.
 * @module
 */

import { MAX_KEY_LENGTH } from "./keys.ts";
import { Op, type OpCode } from "./ops.ts";
import { PARSE_CLOSE, Request } from "./request.ts";
import type { Writer } from "./writer.ts";

/** First byte of every request packet (the `-B auto` switch looks at it). */
export const BINARY_REQUEST_MAGIC = 0x80;
/** First byte of every response packet. */
export const BINARY_RESPONSE_MAGIC = 0x81;
/** Length of a request or response header. */
export const BINARY_HEADER_LENGTH = 24;

/** The opcodes of memcached's protocol_binary.h. */
export const BinaryOpcode = {
  GET: 0x00,
  SET: 0x01,
  ADD: 0x02,
  REPLACE: 0x03,
  DELETE: 0x04,
  INCREMENT: 0x05,
  DECREMENT: 0x06,
  QUIT: 0x07,
  FLUSH: 0x08,
  GETQ: 0x09,
  NOOP: 0x0a,
  VERSION: 0x0b,
  GETK: 0x0c,
  GETKQ: 0x0d,
  APPEND: 0x0e,
  PREPEND: 0x0f,
  STAT: 0x10,
  SETQ: 0x11,
  ADDQ: 0x12,
  REPLACEQ: 0x13,
  DELETEQ: 0x14,
  INCREMENTQ: 0x15,
  DECREMENTQ: 0x16,
  QUITQ: 0x17,
  FLUSHQ: 0x18,
  APPENDQ: 0x19,
  PREPENDQ: 0x1a,
  VERBOSITY: 0x1b,
  TOUCH: 0x1c,
  GAT: 0x1d,
  GATQ: 0x1e,
  SASL_LIST_MECHS: 0x20,
  SASL_AUTH: 0x21,
  SASL_STEP: 0x22,
  GATK: 0x23,
  GATKQ: 0x24,
} as const;

/** Response status codes. */
export const BinaryStatus = {
  SUCCESS: 0x00,
  KEY_ENOENT: 0x01,
  KEY_EEXISTS: 0x02,
  E2BIG: 0x03,
  EINVAL: 0x04,
  NOT_STORED: 0x05,
  DELTA_BADVAL: 0x06,
  AUTH_ERROR: 0x20,
  AUTH_CONTINUE: 0x21,
  UNKNOWN_COMMAND: 0x81,
  ENOMEM: 0x82,
  /** protocol_binary.h's codes memcached itself never sends (the proxy does). */
  NOT_SUPPORTED: 0x83,
  EINTERNAL: 0x84,
  EBUSY: 0x85,
  /** Temporary failure: memrep's --repl-sync write the peer did not confirm; the proxy's "no backend". */
  ETMPFAIL: 0x86,
} as const;

/** memcached's write_bin_error texts, sent as the body of an error packet. */
export const BINARY_STATUS_TEXT: Readonly<Record<number, string>> = {
  [BinaryStatus.ENOMEM]: "Out of memory",
  [BinaryStatus.UNKNOWN_COMMAND]: "Unknown command",
  [BinaryStatus.KEY_ENOENT]: "Not found",
  [BinaryStatus.EINVAL]: "Invalid arguments",
  [BinaryStatus.KEY_EEXISTS]: "Data exists for key.",
  [BinaryStatus.E2BIG]: "Too large.",
  [BinaryStatus.DELTA_BADVAL]: "Non-numeric server-side value for incr or decr",
  [BinaryStatus.NOT_STORED]: "Not stored.",
  [BinaryStatus.AUTH_ERROR]: "Auth failure.",
};

/** memcached's MAX_SASL_MECH_LEN: a longer SASL mechanism name is EINVAL (0x04). */
export const BINARY_SASL_MAX_MECH = 32;

/**
 * memcached keeps a SASL request's data in an item that must fit one slab
 * chunk (slab_chunk_max, 512 KiB whatever -I says), 59 bytes of it taken by
 * the item's header, its CAS, the key's NUL and "\r\n" after the data.
 */
const SASL_ITEM_MAX = 524288 - 59;

/** incr/decr expiration meaning "do not create a missing counter". */
export const NO_AUTOVIVIFY = 0xffffffff;

/** A request CAS above 2**53 matches no item: stands in for it. */
const CAS_UNMATCHABLE = 2 ** 64;

/** Quiet opcode -> its loud form (memcached's dispatch_bin_command); -1: not quiet. */
const LOUD = new Int16Array(256).fill(-1);
for (
  const [quiet, loud] of [
    [BinaryOpcode.SETQ, BinaryOpcode.SET],
    [BinaryOpcode.ADDQ, BinaryOpcode.ADD],
    [BinaryOpcode.REPLACEQ, BinaryOpcode.REPLACE],
    [BinaryOpcode.DELETEQ, BinaryOpcode.DELETE],
    [BinaryOpcode.INCREMENTQ, BinaryOpcode.INCREMENT],
    [BinaryOpcode.DECREMENTQ, BinaryOpcode.DECREMENT],
    [BinaryOpcode.QUITQ, BinaryOpcode.QUIT],
    [BinaryOpcode.FLUSHQ, BinaryOpcode.FLUSH],
    [BinaryOpcode.APPENDQ, BinaryOpcode.APPEND],
    [BinaryOpcode.PREPENDQ, BinaryOpcode.PREPEND],
    [BinaryOpcode.GETQ, BinaryOpcode.GET],
    [BinaryOpcode.GETKQ, BinaryOpcode.GETK],
    [BinaryOpcode.GATQ, BinaryOpcode.GAT],
    [BinaryOpcode.GATKQ, BinaryOpcode.GATK],
  ]
) LOUD[quiet] = loud;

/**
 * A parsed binary request: the text parser's {@linkcode Request} (op, key,
 * flags, exptime, value, delta, initial, cas, noreply, swallow, tooLarge)
 * plus the packet fields a reply needs. A connection owns one and reuses it.
 */
export class BinaryRequest extends Request {
  /** The opcode as sent (quiet variants included); replies carry it. */
  opcode = 0;
  /** The opcode with quiet variants folded to their loud form (GETQ -> GET). */
  command = 0;
  /** Echoed in the reply, as the 4 bytes were sent. */
  opaque = 0;
  /** Header key length. */
  keylen = 0;
  /** Header extras length. */
  extlen = 0;
  /** Header total body length (extras + key + value). */
  bodylen = 0;
  /** The reply carries the key (GETK, GATK and their quiet forms). */
  returnKey = false;
  /** incr/decr expiration: a missing counter is created unless it is {@linkcode NO_AUTOVIVIFY}. */
  arithExptime = 0;
  /** After sending `error`, close the connection (memcached's protocol errors). */
  closeAfter = false;
  /**
   * A SASL opcode (list mechs, auth, step) parsed for a caller that does
   * SASL (see `permits` of {@linkcode parseBinaryRequest}): mechanism =
   * key, data = the value range; `op` stays `Op.ERROR` with no error packet.
   */
  sasl = false;
  /** Scratch for the error packet of a rejected request. */
  #errorBuf = new Uint8Array(BINARY_HEADER_LENGTH + 64);

  /** Reject with an error packet (memcached's write_bin_error): `swallow` body bytes are skipped. */
  fail(status: number, swallow = 0, closeAfter = false): void {
    const text = BINARY_STATUS_TEXT[status] ?? "";
    const b = this.#errorBuf;
    headerInto(b, 0, this.opcode, status, this.opaque, 0, 0, 0, text.length);
    for (let i = 0; i < text.length; i++) b[BINARY_HEADER_LENGTH + i] = text.charCodeAt(i);
    this.reject(b.subarray(0, BINARY_HEADER_LENGTH + text.length));
    this.swallow = swallow;
    this.closeAfter = closeAfter;
  }
}

function u16(buf: Uint8Array, p: number): number {
  return (buf[p] << 8) | buf[p + 1];
}

function u32(buf: Uint8Array, p: number): number {
  return ((buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]) >>> 0;
}

/** Big-endian u64 as a number: exact up to 2**53, `big` past it. */
function u64(buf: Uint8Array, p: number, big: number): number {
  const hi = u32(buf, p);
  if (hi >= 0x200000) return big;
  return hi * 0x100000000 + u32(buf, p + 4);
}

function u64Big(buf: Uint8Array, p: number): bigint {
  return (BigInt(u32(buf, p)) << 32n) | BigInt(u32(buf, p + 4));
}

/**
 * Parse one binary request from buf[start, end), as memcached's
 * try_read_command_binary + dispatch_bin_command.
 *
 * Returns the bytes consumed (header, extras, key, and the value of a
 * storage command), 0 when more bytes are needed (`req.need` then says how
 * many in all), or {@linkcode PARSE_CLOSE} for a bad magic byte (memcached
 * closes without a reply). A rejected packet consumes header, extras and
 * key, and sets `req.swallow` to the body bytes memcached skips after them.
 * `maxValue` bounds the value bytes buffered: larger values are swallowed
 * (`req.tooLarge`) for the caller to answer "Too large.".
 *
 * `permits` (memcached -S) says whether an opcode may run now: one it
 * refuses is answered "Auth failure." (0x20) and the connection closes,
 * checked where memcached's dispatch_bin_command checks it; with it, the
 * SASL opcodes come back as requests with `sasl` set. Without it (the
 * default) they answer "Unknown command", as memcached without -S.
 */
export function parseBinaryRequest(
  buf: Uint8Array,
  start: number,
  end: number,
  req: BinaryRequest,
  maxValue: number,
  permits: ((opcode: number) => boolean) | null = null,
): number {
  const avail = end - start;
  // memcached waits for a whole header before it looks at the magic.
  if (avail < BINARY_HEADER_LENGTH) {
    req.need = BINARY_HEADER_LENGTH;
    return 0;
  }
  if (buf[start] !== BINARY_REQUEST_MAGIC) return PARSE_CLOSE;
  const extlen = buf[start + 4];
  const keylen = u16(buf, start + 2);
  const head = BINARY_HEADER_LENGTH + extlen + keylen;
  if (avail < head) {
    req.need = head;
    return 0;
  }
  req.reset(buf);
  const opcode = buf[start + 1];
  const bodylen = u32(buf, start + 8);
  req.opcode = opcode;
  req.keylen = keylen;
  req.extlen = extlen;
  req.bodylen = bodylen;
  req.opaque = u32(buf, start + 12);
  req.cas = u64(buf, start + 16, CAS_UNMATCHABLE);
  req.returnKey = false;
  req.closeAfter = false;
  req.sasl = false;
  req.arithExptime = 0;
  const ext = start + BINARY_HEADER_LENGTH;
  req.keyBuf = buf;
  req.keyStart = ext + extlen;
  req.keyEnd = req.keyStart + keylen;
  req.lineStart = start;
  req.lineEnd = req.keyEnd;
  const loud = LOUD[opcode];
  req.command = loud < 0 ? opcode : loud;
  req.noreply = loud >= 0;

  if (keylen > bodylen || keylen + extlen > bodylen) {
    req.fail(BinaryStatus.UNKNOWN_COMMAND, 0, true);
    return head;
  }
  // -S: until the connection authenticated, memcached answers every opcode but the SASL
  // ones and version with AUTH_ERROR and closes (dispatch_bin_command's authenticated()).
  if (permits !== null && !permits(opcode)) {
    req.fail(BinaryStatus.AUTH_ERROR, 0, true);
    return head;
  }
  if (keylen > MAX_KEY_LENGTH) {
    req.fail(BinaryStatus.EINVAL, 0, true);
    return head;
  }
  const fine = shapeOk(req.command, extlen, keylen, bodylen);
  if (fine === null) {
    // Unknown opcodes and verbosity; SASL without -S. memcached skips bodylen
    // bytes after extras and key (SASL: bodylen - keylen), more than the body.
    const sasl = req.command === BinaryOpcode.SASL_LIST_MECHS ||
      req.command === BinaryOpcode.SASL_AUTH || req.command === BinaryOpcode.SASL_STEP;
    if (sasl && !saslShapeOk(req.command, extlen, keylen, bodylen)) {
      req.fail(BinaryStatus.EINVAL, 0, true);
      return head;
    }
    if (sasl && permits !== null) return saslOf(req, head, maxValue, avail);
    req.fail(BinaryStatus.UNKNOWN_COMMAND, sasl ? bodylen - keylen : bodylen);
    return head;
  }
  if (!fine) {
    req.fail(BinaryStatus.EINVAL, 0, true);
    return head;
  }
  req.op = OP_OF[req.command] as OpCode;
  switch (req.command) {
    case BinaryOpcode.GETK:
      req.returnKey = true;
      break;
    case BinaryOpcode.GATK:
      req.returnKey = true;
      req.exptime = u32(buf, ext);
      break;
    case BinaryOpcode.GAT:
    case BinaryOpcode.TOUCH:
      req.exptime = u32(buf, ext);
      break;
    case BinaryOpcode.FLUSH:
      req.exptime = extlen === 4 ? u32(buf, ext) : 0;
      break;
    case BinaryOpcode.INCREMENT:
    case BinaryOpcode.DECREMENT:
      req.deltaBig = u64Big(buf, ext);
      req.delta = Number(req.deltaBig);
      req.initialBig = u64Big(buf, ext + 8);
      req.initial = Number(req.initialBig);
      req.arithExptime = u32(buf, ext + 16);
      break;
    case BinaryOpcode.SET:
    case BinaryOpcode.ADD:
    case BinaryOpcode.REPLACE:
      req.flags = u32(buf, ext);
      req.exptime = u32(buf, ext + 4);
      return valueOf(req, head, maxValue, avail);
    case BinaryOpcode.APPEND:
    case BinaryOpcode.PREPEND:
      return valueOf(req, head, maxValue, avail);
  }
  return head;
}

/**
 * A SASL request's data follows the mechanism name: buffer it (memcached's
 * item for it). Data that item cannot hold is "Out of memory" (or "Invalid
 * arguments" for a long mechanism, checked first) and skipped unread.
 */
function saslOf(req: BinaryRequest, head: number, maxValue: number, avail: number): number {
  const vlen = req.bodylen - req.keylen - req.extlen;
  if (vlen > Math.min(maxValue, SASL_ITEM_MAX - req.keylen)) {
    req.fail(req.keylen > BINARY_SASL_MAX_MECH ? BinaryStatus.EINVAL : BinaryStatus.ENOMEM, vlen);
    return head;
  }
  const total = head + vlen;
  if (avail < total) {
    req.need = total;
    return 0;
  }
  req.sasl = true;
  req.dataStart = req.keyEnd;
  req.dataEnd = req.keyEnd + vlen;
  return total;
}

/** The value of a storage packet follows the key: buffer it, or swallow a too-large one. */
function valueOf(req: BinaryRequest, head: number, maxValue: number, avail: number): number {
  // memcached computes the length in an int: a body over 2 GiB is negative, "too large", and
  // nothing is swallowed.
  const vlen = (req.bodylen - req.keylen - req.extlen) | 0;
  req.vlen = vlen;
  if (vlen < 0 || vlen > maxValue) {
    req.tooLarge = true;
    req.swallow = Math.max(vlen, 0);
    return head;
  }
  const total = head + vlen;
  if (avail < total) {
    req.need = total;
    return 0;
  }
  req.dataStart = req.keyEnd;
  req.dataEnd = req.keyEnd + vlen;
  return total;
}

/** The request's engine op, per loud opcode. */
const OP_OF = new Uint8Array(256);
for (
  const [opcode, op] of [
    [BinaryOpcode.GET, Op.GET],
    [BinaryOpcode.GETK, Op.GET],
    [BinaryOpcode.GAT, Op.GAT],
    [BinaryOpcode.GATK, Op.GAT],
    [BinaryOpcode.TOUCH, Op.TOUCH],
    [BinaryOpcode.SET, Op.SET],
    [BinaryOpcode.ADD, Op.ADD],
    [BinaryOpcode.REPLACE, Op.REPLACE],
    [BinaryOpcode.APPEND, Op.APPEND],
    [BinaryOpcode.PREPEND, Op.PREPEND],
    [BinaryOpcode.DELETE, Op.DELETE],
    [BinaryOpcode.INCREMENT, Op.INCR],
    [BinaryOpcode.DECREMENT, Op.DECR],
    [BinaryOpcode.QUIT, Op.QUIT],
    [BinaryOpcode.FLUSH, Op.FLUSH_ALL],
    [BinaryOpcode.NOOP, Op.MN],
    [BinaryOpcode.VERSION, Op.VERSION],
    [BinaryOpcode.STAT, Op.STATS],
  ]
) OP_OF[opcode] = op;

/** dispatch_bin_command's per-opcode length checks; null for an opcode it does not run. */
function shapeOk(cmd: number, extlen: number, keylen: number, bodylen: number): boolean | null {
  switch (cmd) {
    case BinaryOpcode.VERSION:
    case BinaryOpcode.NOOP:
    case BinaryOpcode.QUIT:
      return extlen === 0 && keylen === 0 && bodylen === 0;
    case BinaryOpcode.FLUSH:
      return keylen === 0 && bodylen === extlen && (extlen === 0 || extlen === 4);
    case BinaryOpcode.SET:
    case BinaryOpcode.ADD:
    case BinaryOpcode.REPLACE:
      return extlen === 8 && keylen !== 0 && bodylen >= keylen + 8;
    case BinaryOpcode.GET:
    case BinaryOpcode.GETK:
      return extlen === 0 && bodylen === keylen && keylen > 0;
    case BinaryOpcode.DELETE:
      return keylen > 0 && extlen === 0 && bodylen === keylen;
    case BinaryOpcode.INCREMENT:
    case BinaryOpcode.DECREMENT:
      return keylen > 0 && extlen === 20 && bodylen === keylen + extlen;
    case BinaryOpcode.APPEND:
    case BinaryOpcode.PREPEND:
      return keylen > 0 && extlen === 0;
    case BinaryOpcode.STAT:
      return extlen === 0;
    case BinaryOpcode.TOUCH:
    case BinaryOpcode.GAT:
    case BinaryOpcode.GATK:
      return extlen === 4 && keylen !== 0;
  }
  return null;
}

function saslShapeOk(cmd: number, extlen: number, keylen: number, bodylen: number): boolean {
  if (cmd === BinaryOpcode.SASL_LIST_MECHS) return extlen === 0 && keylen === 0 && bodylen === 0;
  return extlen === 0 && keylen !== 0;
}

function headerInto(
  b: Uint8Array,
  p: number,
  opcode: number,
  status: number,
  opaque: number,
  cas: number,
  keylen: number,
  extlen: number,
  bodylen: number,
): void {
  b[p] = BINARY_RESPONSE_MAGIC;
  b[p + 1] = opcode;
  b[p + 2] = keylen >> 8;
  b[p + 3] = keylen & 0xff;
  b[p + 4] = extlen;
  b[p + 5] = 0;
  b[p + 6] = status >> 8;
  b[p + 7] = status & 0xff;
  putU32(b, p + 8, bodylen);
  putU32(b, p + 12, opaque);
  putU32(b, p + 16, Math.floor(cas / 0x100000000));
  putU32(b, p + 20, cas >>> 0);
}

function putU32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}

/**
 * Append a response header (memcached's add_bin_header): the body of
 * `bodylen` bytes (extras, key, value) is the caller's to append.
 */
export function writeBinaryHeader(
  out: Writer,
  opcode: number,
  status: number,
  opaque: number,
  cas: number,
  keylen: number,
  extlen: number,
  bodylen: number,
): void {
  out.reserve(BINARY_HEADER_LENGTH);
  headerInto(out.buf, out.length, opcode, status, opaque, cas, keylen, extlen, bodylen);
  out.length += BINARY_HEADER_LENGTH;
}

/** Append a big-endian u32 (flags extras). */
export function writeBinaryU32(out: Writer, v: number): void {
  out.reserve(4);
  putU32(out.buf, out.length, v);
  out.length += 4;
}

/** Append a big-endian u64 (an incr/decr result). */
export function writeBinaryU64(out: Writer, v: bigint): void {
  writeBinaryU32(out, Number(v >> 32n));
  writeBinaryU32(out, Number(v & 0xffffffffn));
}

/**
 * Append an error packet for `req`: the status and its memcached text, or
 * `text` when given (memcached's out_of_memory texts).
 */
export function writeBinaryError(
  out: Writer,
  req: BinaryRequest,
  status: number,
  text: string = BINARY_STATUS_TEXT[status] ?? "",
): void {
  writeBinaryHeader(out, req.opcode, status, req.opaque, 0, 0, 0, text.length);
  out.text(text);
}

/**
 * Append one `stat` reply packet (key = stat name, value = its text); an
 * empty name and value make the packet that ends the list.
 */
export function writeBinaryStat(
  out: Writer,
  opaque: number,
  src: Uint8Array,
  keyStart: number,
  keyEnd: number,
  valueStart: number,
  valueEnd: number,
): void {
  const klen = keyEnd - keyStart, vlen = valueEnd - valueStart;
  writeBinaryHeader(out, BinaryOpcode.STAT, 0, opaque, 0, klen, 0, klen + vlen);
  out.bytes(src, keyStart, keyEnd);
  out.bytes(src, valueStart, valueEnd);
}

/**
 * Rewrite text `STAT <name> <value>\r\n` lines in src[start, end) as binary
 * stat packets (memcached's append_bin_stats), so one stats generator
 * serves both protocols. Stops at `END\r\n` without writing the terminator.
 */
export function writeBinaryStatLines(
  out: Writer,
  opaque: number,
  src: Uint8Array,
  start: number,
  end: number,
): void {
  let p = start;
  while (p < end) {
    let nl = src.indexOf(10, p);
    if (nl < 0 || nl >= end) nl = end;
    const lineEnd = nl > p && src[nl - 1] === 13 ? nl - 1 : nl;
    // "STAT " prefix, then the name up to the first space, the value after it.
    if (lineEnd - p > 5 && src[p] === 83 && src[p + 4] === 32) {
      const ks = p + 5;
      let sp = src.indexOf(32, ks);
      if (sp < 0 || sp > lineEnd) sp = lineEnd;
      writeBinaryStat(out, opaque, src, ks, sp, Math.min(sp + 1, lineEnd), lineEnd);
    }
    p = nl + 1;
  }
}
