/**
 * Frames on the replication link. Every frame is a text line tokenized by
 * the request tokenizer (lib/protocol `tokenizeReplLine`, an `Op.REPL`
 * frame); item frames carry a data block like a storage command:
 *
 * ```
 * S <key> <flags> <exp> <ver> <bits> <touch> <len>\r\n<data>\r\n   item (stream)
 * D <key> <ver> <bits>\r\n                                  delete (stream)
 * F <ver> <at>\r\n                                          flush_all (stream)
 * CS / CD ...                                               the same, in a full copy
 * COPY <stream> <offset> <items> <epoch> <agreed> <id>\r\n  full copy begins (or goes on)
 * MARK <seq>\r\n                                            copy position (after each chunk)
 * SKIP <n>\r\n                                             (group) n stream bytes left out
 * KNOWN <member> <stream> <offset>\r\n                      (group) sender's knowledge, before COPIED
 * HAVE <member> <stream> <offset> <up>\r\n                  (group) sender holds member's stream so far
 * COPIED <items>\r\n                                        full copy ends
 * CACK <seq>\r\n                                            receiver applied up to MARK seq
 * CDONE <id>\r\n                                            receiver applied the whole copy
 * RESUME <stream> <offset>\r\n                              partial resync from offset
 * ACK <offset>\r\n                                          peer stream applied up to offset
 * PING <hlc>\r\n                                            heartbeat
 * ERR <reason>\r\n                                          refusal, then close
 * ```
 * `exp` and `at` are unix seconds (0 = never), `ver` the item's version
 * (its CAS), `bits` item bits (1 stale, 2 a meta win token was handed out,
 * 4 binary key: the key is base64),
 * `touch` the version of the last expiry-only change (touch, gat, mg T) or
 * 0: touches keep the CAS, so this orders them.
 * In COPY, `agreed` is the version up to which the receiver had every one of
 * the sender's items (items of the copy it lacks at or below it, it
 * removed), `id` names the copy: a COPY with the id of a copy the receiver
 * is in the middle of goes on with it (after a link drop). MARK follows
 * each chunk of copy frames and is acknowledged by CACK once applied; the
 * sender keeps a bounded number unacknowledged (flow control, and where a
 * resumed copy starts again).
 * KNOWN (groups of 3+, just before COPIED, one per other member): when the
 * copy began, its sender had applied member `member`'s stream `stream` up to
 * `offset`, so the copy holds all of it; the receiver may resume that
 * member's stream from there instead of taking a second full copy.
 * SKIP (groups of 3+): the next n bytes of the stream are changes that
 * the receiver has already (they came from its stream, or from a member's
 * stream it reported with HAVE), left out; they advance the offset as if
 * sent.
 * HAVE (groups of 3+, whenever it moved): the sender holds member
 * `member`'s stream `stream`, all of it, up to `offset`; `up` is 1 while
 * the sender has a link to that member (what it lacks of it may come
 * directly). The receiver leaves out what it would pass on of it (SKIP).
 * Only S, D and F frames (and SKIP) advance the stream offset; they are stored in the
 * backlog exactly as sent. A version token of digits beyond 2**53 still
 * parses (as Infinity): the frame is well formed, its version is not, and
 * the merge refuses it without breaking the stream.
 * @module
 */

import {
  base64Decode,
  base64Encode,
  base64Length,
  decodeAscii,
  MAX_KEY_LENGTH,
  Request,
  tokenizeReplLine,
  Writer,
} from "../protocol/mod.ts";
import { parseDecimal } from "../protocol/bytes.ts";
import type { Store } from "../store/mod.ts";

/** Item bit: the item was invalidated (meta `md I`, `ms I`): stale. */
export const BIT_STALE = 1;
/**
 * Item bit: a client got the meta win token (W) for this version of the
 * item, so the peer's clients get Z instead of a second W.
 */
export const BIT_WIN_SENT = 2;
/** Item bit: the key is binary; on the wire it is base64. */
export const BIT_BINARY_KEY = 4;

/** Frame kinds returned by {@linkcode FrameParser.parse}. */
export const Frame = {
  /** An item's state (S). */
  ITEM: 1,
  /** A delete with its version (D). */
  DELETE: 2,
  /** flush_all (F). */
  FLUSH: 3,
  /** An item of a full copy (CS). */
  COPY_ITEM: 4,
  /** A tombstone of a full copy (CD). */
  COPY_DELETE: 5,
  /** COPY: a full copy begins. */
  COPY: 6,
  /** COPIED: the full copy is complete. */
  COPIED: 7,
  /** RESUME: partial resync. */
  RESUME: 8,
  /** ACK: the peer applied our stream up to an offset. */
  ACK: 9,
  /** PING: heartbeat. */
  PING: 10,
  /** ERR: the peer refuses and closes. */
  ERR: 11,
  /** MARK: a resumable position in a full copy. */
  MARK: 12,
  /** CACK: the receiver applied a full copy up to a MARK. */
  COPY_ACK: 13,
  /** CDONE: the receiver applied a whole full copy. */
  COPY_DONE: 14,
  /** KNOWN: how far the copy's sender had another member's stream (groups). */
  KNOWN: 15,
  /** SKIP: stream bytes left out, the receiver's own changes passed back (groups). */
  SKIP: 16,
  /** HAVE: how far the sender holds another member's stream, and whether it is linked (groups). */
  HAVE: 17,
} as const;

/** Largest data block accepted (memrep -I caps items at 256m). */
const MAX_DATA = 256 * 1048576 + 1024;
/** Longest frame line. */
const MAX_LINE = 1024;

const enc = new TextEncoder();
/** Verb bytes followed by a space. */
export const VERB = {
  S: enc.encode("S "),
  D: enc.encode("D "),
  F: enc.encode("F "),
  CS: enc.encode("CS "),
  CD: enc.encode("CD "),
};

/**
 * Append the line of an item frame (`S`/`CS`, key to length, "\r\n") for
 * item h; the caller appends the value and its "\r\n" (store bytes
 * [valueOffset, valueOffset + valueLength + 2)).
 */
export function writeItemLine(
  out: Writer,
  verb: Uint8Array,
  store: Store,
  h: number,
  bits: number,
  touch: number,
  startUnix: number,
): void {
  out.bytes(verb);
  writeKey(out, store.buffer(h), store.keyOffset(h), store.keyOffset(h) + store.keyLength(h), bits);
  out.byte(32);
  out.uint(store.flags(h));
  out.byte(32);
  const exp = store.exptime(h);
  out.uint(exp === 0 ? 0 : Math.max(1, exp + startUnix));
  out.byte(32);
  out.uint(store.cas(h));
  out.byte(32);
  out.uint(bits);
  out.byte(32);
  out.uint(touch);
  out.byte(32);
  out.uint(store.valueLength(h));
  out.crlf();
}

/** Append a whole item frame (line, value, "\r\n") for item h. */
export function writeItemFrame(
  out: Writer,
  verb: Uint8Array,
  store: Store,
  h: number,
  bits: number,
  touch: number,
  startUnix: number,
): void {
  writeItemLine(out, verb, store, h, bits, touch, startUnix);
  const vo = store.valueOffset(h);
  out.bytes(store.buffer(h), vo, vo + store.valueLength(h) + 2);
}

/**
 * Append a delete frame (`D`/`CD`) for the key src[start, end); keys with
 * spaces or control bytes (binary keys) travel base64 encoded.
 */
export function writeDeleteFrame(
  out: Writer,
  verb: Uint8Array,
  src: Uint8Array,
  start: number,
  end: number,
  version: number,
): void {
  let bits = 0;
  for (let i = start; i < end; i++) {
    if (src[i] <= 32) {
      bits = BIT_BINARY_KEY;
      break;
    }
  }
  out.bytes(verb);
  writeKey(out, src, start, end, bits);
  out.byte(32);
  out.uint(version);
  out.byte(32);
  out.uint(bits);
  out.crlf();
}

/** Append a flush frame. */
export function writeFlushFrame(out: Writer, version: number, atUnix: number): void {
  out.bytes(VERB.F);
  out.uint(version);
  out.byte(32);
  out.uint(atUnix);
  out.crlf();
}

/** Append a control frame: words and numbers separated by spaces. */
export function writeControl(out: Writer, ...parts: Array<string | number>): void {
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out.byte(32);
    const p = parts[i];
    if (typeof p === "number") out.uint(p);
    else out.text(p);
  }
  out.crlf();
}

function writeKey(out: Writer, src: Uint8Array, start: number, end: number, bits: number): void {
  if (bits & BIT_BINARY_KEY) {
    out.reserve(((end - start + 2) / 3) * 4 + 4);
    out.length = base64Encode(src, start, end, out.buf, out.length);
  } else out.bytes(src, start, end);
}

/**
 * A version token: its value; Infinity for digits beyond 2**53 (a version
 * out of range, refused by the merge); -1 when it is not digits.
 */
export function parseVersion(buf: Uint8Array, start: number, end: number): number {
  const v = parseDecimal(buf, start, end);
  if (v >= 0 || start >= end) return v;
  for (let i = start; i < end; i++) if (buf[i] < 48 || buf[i] > 57) return -1;
  return Infinity;
}

/**
 * Incremental frame parser: {@linkcode parse} reads one frame from
 * buf[start, end) and leaves its fields here (offsets into buf, or into a
 * scratch buffer for base64 keys). Never throws on bad input.
 */
export class FrameParser {
  /** Kind of the last frame (a {@linkcode Frame} value). */
  kind = 0;
  /** The buffer last given to {@linkcode parse} (value bytes are in it). */
  buf: Uint8Array = new Uint8Array(0);
  /** Bytes holding the key. */
  keyBuf: Uint8Array = new Uint8Array(0);
  /** Key start in keyBuf. */
  keyStart = 0;
  /** Key end in keyBuf. */
  keyEnd = 0;
  /** Client flags. */
  flags = 0;
  /** Absolute expiry, unix seconds, 0 = never. */
  exp = 0;
  /** Version (CAS); for F the flush version. */
  version = 0;
  /** Item bits. */
  bits = 0;
  /** Version of the item's last touch (0: none). */
  touch = 0;
  /** Value start (in the parsed buffer). */
  dataStart = 0;
  /** Value end (exclusive, before "\r\n"). */
  dataEnd = 0;
  /** Numbers of control frames, in order (offset, items, epoch...). */
  readonly nums: number[] = [0, 0, 0, 0, 0, 0];
  /** Stream id (COPY/RESUME) or reason (ERR). */
  text = "";
  /** Why the last parse failed. */
  error = "";
  /** Bytes the frame needs in all when parse returned 0 (0 = unknown). */
  need = 0;
  #req = new Request();
  #scratch = new Uint8Array(MAX_KEY_LENGTH);

  /**
   * Parse one frame from buf[start, end): returns its length, 0 when more
   * bytes are needed, -1 when the bytes are not a valid frame ({@linkcode error}).
   */
  parse(buf: Uint8Array, start: number, end: number): number {
    this.need = 0;
    this.buf = buf;
    let nl = buf.indexOf(10, start);
    if (nl >= end) nl = -1;
    if (nl < 0) return end - start > MAX_LINE ? this.#bad("line too long") : 0;
    if (nl - start > MAX_LINE) return this.#bad("line too long");
    const lineEnd = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl;
    const req = this.#req;
    tokenizeReplLine(buf, start, lineEnd, req);
    const n = req.ntokens;
    if (n === 0) return this.#bad("empty line");
    const s = req.tokStart, e = req.tokEnd;
    const v0 = buf[s[0]], len0 = e[0] - s[0];
    const lineLength = nl + 1 - start;
    if (len0 === 1 || (len0 === 2 && v0 === 67 /* C */)) {
      const v = len0 === 1 ? v0 : buf[s[0] + 1];
      const copy = len0 === 2;
      if (v === 83 /* S */ && n === 8) {
        if (!this.#key(buf, s[1], e[1], 5)) return -1;
        this.flags = parseDecimal(buf, s[2], e[2]);
        this.exp = parseDecimal(buf, s[3], e[3]);
        this.version = parseVersion(buf, s[4], e[4]);
        this.touch = parseVersion(buf, s[6], e[6]);
        const vlen = parseDecimal(buf, s[7], e[7]);
        if (
          this.flags < 0 || this.flags > 0xffffffff || this.exp < 0 || this.version < 0 ||
          this.touch < 0 || vlen < 0 || vlen > MAX_DATA
        ) {
          return this.#bad("bad item frame");
        }
        const total = lineLength + vlen + 2;
        if (end - start < total) {
          this.need = total;
          return 0;
        }
        this.dataStart = nl + 1;
        this.dataEnd = nl + 1 + vlen;
        if (buf[this.dataEnd] !== 13 || buf[this.dataEnd + 1] !== 10) {
          return this.#bad("bad data chunk");
        }
        this.kind = copy ? Frame.COPY_ITEM : Frame.ITEM;
        return total;
      }
      if (v === 68 /* D */ && n === 4) {
        if (!this.#key(buf, s[1], e[1], 3)) return -1;
        this.version = parseVersion(buf, s[2], e[2]);
        if (this.version < 0) return this.#bad("bad delete frame");
        this.kind = copy ? Frame.COPY_DELETE : Frame.DELETE;
        return lineLength;
      }
      if (v === 70 /* F */ && n === 3 && !copy) {
        this.version = parseVersion(buf, s[1], e[1]);
        this.exp = parseDecimal(buf, s[2], e[2]);
        if (this.version < 0 || this.exp < 0) return this.#bad("bad flush frame");
        this.kind = Frame.FLUSH;
        return lineLength;
      }
      return this.#bad("unknown frame");
    }
    if (req.tokenIs(0, "ACK") && n === 2) return this.#numbers(Frame.ACK, 1, lineLength);
    if (req.tokenIs(0, "SKIP") && n === 2) return this.#numbers(Frame.SKIP, 1, lineLength);
    if (req.tokenIs(0, "PING") && n === 2) return this.#numbers(Frame.PING, 1, lineLength, 1);
    if (req.tokenIs(0, "MARK") && n === 2) return this.#numbers(Frame.MARK, 1, lineLength);
    if (req.tokenIs(0, "CACK") && n === 2) return this.#numbers(Frame.COPY_ACK, 1, lineLength);
    if (req.tokenIs(0, "CDONE") && n === 2) return this.#numbers(Frame.COPY_DONE, 1, lineLength);
    if (req.tokenIs(0, "COPY") && n === 7) {
      this.text = decodeAscii(buf, s[1], e[1]);
      return this.#numbers(Frame.COPY, 2, lineLength, 4);
    }
    if (req.tokenIs(0, "COPIED") && n === 2) return this.#numbers(Frame.COPIED, 1, lineLength);
    if (req.tokenIs(0, "KNOWN") && n === 4) {
      this.text = decodeAscii(buf, s[2], e[2]);
      const member = parseDecimal(buf, s[1], e[1]), offset = parseDecimal(buf, s[3], e[3]);
      if (member < 0 || offset < 0) return this.#bad("bad number");
      this.nums[0] = member;
      this.nums[1] = offset;
      this.kind = Frame.KNOWN;
      return lineLength;
    }
    if (req.tokenIs(0, "HAVE") && n === 5) {
      this.text = decodeAscii(buf, s[2], e[2]);
      const member = parseDecimal(buf, s[1], e[1]), offset = parseDecimal(buf, s[3], e[3]);
      const up = parseDecimal(buf, s[4], e[4]);
      if (member < 0 || offset < 0 || up < 0) return this.#bad("bad number");
      this.nums[0] = member;
      this.nums[1] = offset;
      this.nums[2] = up;
      this.kind = Frame.HAVE;
      return lineLength;
    }
    if (req.tokenIs(0, "RESUME") && n === 3) {
      this.text = decodeAscii(buf, s[1], e[1]);
      return this.#numbers(Frame.RESUME, 2, lineLength);
    }
    if (req.tokenIs(0, "ERR")) {
      this.text = decodeAscii(buf, n > 1 ? s[1] : lineEnd, lineEnd);
      this.kind = Frame.ERR;
      return lineLength;
    }
    return this.#bad("unknown frame");
  }

  /** Parse tokens from..ntokens-1 as numbers into nums; token `version` is a version. */
  #numbers(kind: number, from: number, length: number, version = -1): number {
    const req = this.#req;
    for (let i = from; i < req.ntokens; i++) {
      const v = (i === version ? parseVersion : parseDecimal)(
        req.buf,
        req.tokStart[i],
        req.tokEnd[i],
      );
      if (v < 0) return this.#bad("bad number");
      this.nums[i - from] = v;
    }
    this.kind = kind;
    return length;
  }

  /** Key token at [ks, ke); token `bitsIndex` holds the bits (base64 keys are decoded). */
  #key(buf: Uint8Array, ks: number, ke: number, bitsIndex: number): boolean {
    const req = this.#req;
    const bits = parseDecimal(buf, req.tokStart[bitsIndex], req.tokEnd[bitsIndex]);
    if (bits < 0 || bits > 7) return this.#fail("bad item bits");
    this.bits = bits;
    if (bits & BIT_BINARY_KEY) {
      if (ke - ks > base64Length(MAX_KEY_LENGTH)) return this.#fail("key too long");
      const n = base64Decode(buf, ks, ke, this.#scratch);
      if (n === 0 || n > MAX_KEY_LENGTH) return this.#fail("bad base64 key");
      this.keyBuf = this.#scratch;
      this.keyStart = 0;
      this.keyEnd = n;
      return true;
    }
    if (ke - ks > MAX_KEY_LENGTH) return this.#fail("key too long");
    this.keyBuf = buf;
    this.keyStart = ks;
    this.keyEnd = ke;
    return true;
  }

  #fail(why: string): false {
    this.#bad(why);
    return false;
  }

  #bad(why: string): number {
    this.error = why;
    this.kind = 0;
    return -1;
  }
}
