/**
 * The one incremental parser of memcached server replies (text and meta
 * protocol), used by the client (proxy backends, `replicate`, tests).
 *
 * {@linkcode ReplyParser.parse} is given bytes `buf[start, end)` and the
 * {@linkcode OpCode} of the request they answer; it returns 0 (need more
 * bytes), -1 (not a valid reply: the connection is out of step and must be
 * closed; see {@linkcode ReplyParser.error}) or the length of one complete
 * reply frame. After a complete frame the parser's fields describe it as
 * offsets into `buf`: nothing is copied and values are never decoded.
 *
 * Frames by request:
 * - get/gets/gat/gats: `VALUE <key> <flags> <bytes> [<cas>]` + data, repeated,
 *   then `END` ({@linkcode ReplyKind.VALUES}; items in {@linkcode ReplyParser.items}).
 * - storage, delete, touch, flush_all, verbosity...: one status line.
 * - incr/decr: a decimal number ({@linkcode ReplyKind.NUMBER}) or `NOT_FOUND`.
 * - stats: `STAT <name> <value>` lines then `END` ({@linkcode ReplyKind.STATS}).
 * - version: `VERSION <text>`.
 * - meta: `VA <size> <flags>*` + data, `HD`/`NS`/`EX`/`NF`/`EN`/`MN`/`ME ...`.
 * - lru_crawler: `key=...` lines (ended by a bare `\n`) then `END`
 *   ({@linkcode ReplyKind.DUMP}), or one status line; for streaming a large
 *   dump line by line use {@linkcode ReplyParser.parseDumpLine}.
 * - any request: `ERROR`, `CLIENT_ERROR <text>`, `SERVER_ERROR <text>`.
 *
 * A frame that needs more bytes is resumed where it stopped on the next call
 * (large multi-gets and stats are not rescanned from their start), so calls
 * must keep offering the same frame, from its first byte, until it completes
 * or {@linkcode ReplyParser.reset} is called. The buffer may be compacted or
 * grown between calls (a different `start` is fine).
 *
 * What a single status line means, and which answer which request, is
 * status_line.ts; this file is the framing around it.
 * @module
 */

import {
  ascii,
  bytesEqual,
  CR,
  decodeAscii,
  indexOfLf,
  LF,
  lineTextEnd,
  parseDecimal,
  parseDecimalBigInt,
  parseSignedDecimal,
  SP,
  startsWith,
} from "./bytes.ts";
import { Op, type OpCode } from "./ops.ts";
import {
  isErrorKind,
  Item,
  ITEM_STRIDE,
  NO_TTL,
  ReplyKind,
  type ReplyKindCode,
} from "./reply_kind.ts";
import {
  answersMeta,
  answersStatus,
  classifyLine,
  isDumpFinal,
  type LineClass,
  W_END,
} from "./status_line.ts";

/** Longest reply line accepted without its `\n` before the stream is declared broken. */
export const MAX_LINE = 65536;

const W_VALUE = ascii("VALUE ");
const W_STAT = ascii("STAT ");

/**
 * Reused incremental reply parser. One per connection: it keeps the
 * progress of a frame that needs more bytes.
 */
export class ReplyParser {
  /** Kind of the last complete frame. */
  kind: ReplyKindCode = ReplyKind.NONE;
  /** Length in bytes of the last complete frame (also parse's return value). */
  length = 0;
  /** VALUE items, STAT lines or dump lines in the frame (1 for VA). */
  count = 0;
  /**
   * Text of a status line after its keyword: the message of errors, the
   * version, the digits of NUMBER, the return flags of meta codes (after the
   * size for VA), the rest of an ME line. Empty when none.
   */
  textStart = 0;
  /** End of the text (before `\r\n`). */
  textEnd = 0;
  /** Data of a VA reply or of the first VALUE item; -1 when none. */
  valueStart: number = -1;
  /** End of that data (exclusive). */
  valueEnd: number = -1;
  /** Client flags of the first VALUE item, or a meta reply's `f` flag; 0 when absent. */
  flags = 0;
  /** A meta reply's `t` flag (-1: never expires); {@linkcode NO_TTL} when absent. */
  ttl: number = NO_TTL;
  /** CAS token digits of the first VALUE item or a meta reply's `c` flag; -1 when absent. */
  casStart: number = -1;
  /** End of those digits. */
  casEnd: number = -1;
  /**
   * Per-item offsets (absolute positions in `buf`), {@linkcode ITEM_STRIDE}
   * numbers per item, laid out as {@linkcode Item}. Reused; valid until the
   * next call.
   */
  items: Float64Array = new Float64Array(ITEM_STRIDE * 16);
  /** Why the last call returned -1. */
  error = "";

  // Progress of a frame that needed more bytes: relative offset of the next
  // unparsed line, items found so far, and the start they were recorded at.
  #resumeOp = -1;
  #resumeRel = 0;
  #resumeCount = 0;
  #resumeStart = 0;
  readonly #line: LineClass = { kind: ReplyKind.NONE, text: 0 };

  /** Forget a partly parsed frame (after closing a connection, say). */
  reset(): void {
    this.#resumeOp = -1;
    this.#resumeRel = 0;
    this.#resumeCount = 0;
  }

  /**
   * Parse one reply frame answering a request of kind `op` from
   * `buf[start, end)`. Returns its length, 0 when more bytes are needed, or
   * -1 when the bytes are not a valid reply to `op` (see {@linkcode error}).
   */
  parse(buf: Uint8Array, start: number, end: number, op: OpCode): number {
    switch (op) {
      case Op.GET:
      case Op.GETS:
      case Op.GAT:
      case Op.GATS:
        return this.#parseList(buf, start, end, op, ReplyKind.VALUES);
      case Op.STATS:
        return this.#parseList(buf, start, end, op, ReplyKind.STATS);
      case Op.LRU_CRAWLER:
        return this.#parseList(buf, start, end, op, ReplyKind.DUMP);
      case Op.MG:
      case Op.MS:
      case Op.MD:
      case Op.MA:
      case Op.MN:
      case Op.ME:
        return this.#parseMeta(buf, start, end, op);
      default:
        return this.#parseStatus(buf, start, end, op);
    }
  }

  /**
   * Parse one line of a streamed `lru_crawler metadump`: returns its length
   * (0: need more, -1: broken). {@linkcode kind} is DUMP_LINE for an item
   * line (its text is `textStart..textEnd`), or the final line's kind: DUMP
   * for `END`, else BUSY, BADCLASS, OK or an error.
   */
  parseDumpLine(buf: Uint8Array, start: number, end: number): number {
    const lf = indexOfLf(buf, start, end);
    if (lf < 0) return this.#needLine(start, end);
    const e = lineTextEnd(buf, lf, start);
    this.#clear();
    classifyLine(buf, start, e, this.#line);
    const k = this.#line.kind;
    if (k === ReplyKind.LINE) {
      this.kind = ReplyKind.DUMP_LINE;
      this.textStart = start;
    } else {
      this.kind = k === ReplyKind.NONE ? ReplyKind.DUMP : k;
      if (k === ReplyKind.NONE) { // END
        this.textStart = e;
      } else this.textStart = this.#line.text;
      if (!isDumpFinal(k)) return this.#invalid(buf, start, e, "unexpected dump line");
    }
    this.textEnd = e;
    this.length = lf + 1 - start;
    return this.length;
  }

  /** Index just after meta return flag `code` (e.g. 0x66 for `f`) in the last frame's text, or -1. */
  metaFlag(buf: Uint8Array, code: number): number {
    let i = this.textStart;
    const e = this.textEnd;
    while (i < e) {
      if (buf[i] === code) return i + 1;
      const sp = buf.indexOf(SP, i);
      if (sp < 0 || sp >= e) return -1;
      i = sp + 1;
    }
    return -1;
  }

  /** The CAS of the first item / meta `c` flag as a bigint, or undefined. */
  cas(buf: Uint8Array): bigint | undefined {
    return this.casStart < 0 ? undefined : parseDecimalBigInt(buf, this.casStart, this.casEnd);
  }

  #clear(): void {
    this.kind = ReplyKind.NONE;
    this.count = 0;
    this.textStart = this.textEnd = 0;
    this.valueStart = this.valueEnd = -1;
    this.flags = 0;
    this.ttl = NO_TTL;
    this.casStart = this.casEnd = -1;
    this.error = "";
  }

  #needLine(start: number, end: number): number {
    if (end - start > MAX_LINE) {
      this.kind = ReplyKind.NONE;
      this.error = `reply line longer than ${MAX_LINE} bytes`;
      this.reset();
      return -1;
    }
    return 0;
  }

  #invalid(buf: Uint8Array, s: number, e: number, why: string): number {
    this.kind = ReplyKind.NONE;
    this.reset();
    const text = decodeAscii(buf, s, Math.min(e, s + 80));
    this.error = `${why}: ${JSON.stringify(text)}`;
    return -1;
  }

  /** Single status-line replies (storage, delete, incr, touch, version, ...). */
  #parseStatus(buf: Uint8Array, start: number, end: number, op: OpCode): number {
    const lf = indexOfLf(buf, start, end);
    if (lf < 0) return this.#needLine(start, end);
    const e = lineTextEnd(buf, lf, start);
    this.#clear();
    classifyLine(buf, start, e, this.#line);
    const k = this.#line.kind;
    const ok = answersStatus(op, k);
    if (!ok) return this.#invalid(buf, start, e, `unexpected reply to op ${op}`);
    this.kind = k === ReplyKind.NONE ? ReplyKind.LINE : k;
    this.textStart = this.#line.text;
    this.textEnd = e;
    this.length = lf + 1 - start;
    return this.length;
  }

  /** Meta replies: VA + data, HD/NS/EX/NF/EN/MN/ME, errors. */
  #parseMeta(buf: Uint8Array, start: number, end: number, op: OpCode): number {
    const lf = indexOfLf(buf, start, end);
    if (lf < 0) return this.#needLine(start, end);
    const e = lineTextEnd(buf, lf, start);
    if (e - start >= 3 && buf[start] === 0x56 && buf[start + 1] === 0x41 && buf[start + 2] === SP) {
      // VA <size> <flags>*
      let sizeEnd = buf.indexOf(SP, start + 3);
      if (sizeEnd < 0 || sizeEnd > e) sizeEnd = e;
      const size = parseDecimal(buf, start + 3, sizeEnd);
      if (size < 0) return this.#invalid(buf, start, e, "bad VA size");
      const dataStart = lf + 1;
      const frameEnd = dataStart + size + 2;
      if (frameEnd > end) return 0;
      if (buf[frameEnd - 2] !== CR || buf[frameEnd - 1] !== LF) {
        return this.#invalid(buf, start, e, "VA data block not ended by \\r\\n");
      }
      this.#clear();
      this.kind = ReplyKind.VA;
      this.count = 1;
      this.valueStart = dataStart;
      this.valueEnd = dataStart + size;
      this.textStart = Math.min(e, sizeEnd + 1);
      this.textEnd = e;
      this.#metaCommon(buf);
      this.length = frameEnd - start;
      return this.length;
    }
    this.#clear();
    classifyLine(buf, start, e, this.#line);
    const k = this.#line.kind;
    const ok = answersMeta(op, k);
    if (!ok) return this.#invalid(buf, start, e, `unexpected reply to meta op ${op}`);
    this.kind = k;
    this.textStart = this.#line.text;
    this.textEnd = e;
    if (k === ReplyKind.HD) this.#metaCommon(buf);
    this.length = lf + 1 - start;
    return this.length;
  }

  /** Pick the common return flags (f, t, c) out of the meta flags text. */
  #metaCommon(buf: Uint8Array): void {
    let i = this.textStart;
    const e = this.textEnd;
    while (i < e) {
      let sp = buf.indexOf(SP, i);
      if (sp < 0 || sp > e) sp = e;
      const code = buf[i];
      if (code === 0x66) { // f
        const v = parseDecimal(buf, i + 1, sp);
        if (v >= 0) this.flags = v;
      } else if (code === 0x74) { // t
        const v = parseSignedDecimal(buf, i + 1, sp);
        if (!Number.isNaN(v)) this.ttl = v;
      } else if (code === 0x63) { // c
        this.casStart = i + 1;
        this.casEnd = sp;
      }
      i = sp + 1;
    }
  }

  #ensureItems(count: number): void {
    const need = (count + 1) * ITEM_STRIDE;
    if (need <= this.items.length) return;
    const next = new Float64Array(Math.max(need, this.items.length * 2));
    next.set(this.items);
    this.items = next;
  }

  /**
   * Multi-line frames ended by END: VALUE items (get family), STAT lines,
   * dump lines. Resumable.
   */
  #parseList(
    buf: Uint8Array,
    start: number,
    end: number,
    op: OpCode,
    listKind: ReplyKindCode,
  ): number {
    let pos = start;
    let count = 0;
    if (this.#resumeOp === op && this.#resumeRel > 0 && start + this.#resumeRel <= end) {
      pos = start + this.#resumeRel;
      count = this.#resumeCount;
      const delta = start - this.#resumeStart;
      if (delta !== 0) this.#shiftItems(count, delta);
    } else if (this.#resumeOp !== -1) {
      this.reset();
    }
    for (;;) {
      if (listKind === ReplyKind.VALUES && buf[pos] === 0x56 /* V */) {
        const next = this.#valueItem(buf, pos, end, count);
        if (next > 0) {
          count++;
          pos = next;
          continue;
        }
        if (next === 0) {
          this.#saveProgress(op, start, pos, count);
          return 0;
        }
        // Anything unusual: the general path below decides (and words the error).
      }
      const lf = indexOfLf(buf, pos, end);
      if (lf < 0) {
        const r = this.#needLine(pos, end);
        if (r === 0) this.#saveProgress(op, start, pos, count);
        return r;
      }
      const e = lineTextEnd(buf, lf, pos);
      if (listKind === ReplyKind.VALUES && startsWith(buf, pos, e, W_VALUE)) {
        // VALUE <key> <flags> <bytes> [<cas>]
        const keyStart = pos + 6;
        const keyEnd = buf.indexOf(SP, keyStart);
        if (keyEnd < 0 || keyEnd >= e || keyEnd === keyStart) {
          return this.#invalid(buf, pos, e, "bad VALUE line");
        }
        const flagsEnd = buf.indexOf(SP, keyEnd + 1);
        if (flagsEnd < 0 || flagsEnd > e) return this.#invalid(buf, pos, e, "bad VALUE line");
        const flags = parseDecimal(buf, keyEnd + 1, flagsEnd);
        let bytesEnd = buf.indexOf(SP, flagsEnd + 1);
        if (bytesEnd < 0 || bytesEnd > e) bytesEnd = e;
        const size = parseDecimal(buf, flagsEnd + 1, bytesEnd);
        if (flags < 0 || size < 0) return this.#invalid(buf, pos, e, "bad VALUE line");
        let casStart = -1, casEnd = -1;
        if (bytesEnd < e) {
          casStart = bytesEnd + 1;
          casEnd = e;
          if (parseDecimalBigInt(buf, casStart, casEnd) === undefined) {
            return this.#invalid(buf, pos, e, "bad VALUE cas");
          }
        }
        const dataStart = lf + 1;
        const next = dataStart + size + 2;
        if (next > end) {
          this.#saveProgress(op, start, pos, count);
          return 0;
        }
        if (buf[next - 2] !== CR || buf[next - 1] !== LF) {
          return this.#invalid(buf, pos, e, "VALUE data block not ended by \\r\\n");
        }
        this.#putItem(count, keyStart, keyEnd, flags, dataStart, size, casStart, casEnd);
        count++;
        pos = next;
        continue;
      }
      if (bytesEqual(buf, pos, e, W_END)) {
        this.#clear();
        this.kind = listKind;
        this.count = count;
        if (listKind === ReplyKind.VALUES && count > 0) {
          const it = this.items;
          this.flags = it[Item.FLAGS];
          this.valueStart = it[Item.DATA_START];
          this.valueEnd = it[Item.DATA_END];
          this.casStart = it[Item.CAS_START];
          this.casEnd = it[Item.CAS_END];
        }
        this.reset();
        this.length = lf + 1 - start;
        return this.length;
      }
      if (listKind === ReplyKind.STATS && startsWith(buf, pos, e, W_STAT)) {
        const nameStart = pos + 5;
        let nameEnd = buf.indexOf(SP, nameStart);
        if (nameEnd < 0 || nameEnd > e) nameEnd = e;
        this.#ensureItems(count);
        const it = this.items;
        const b = count * ITEM_STRIDE;
        it[b] = nameStart;
        it[b + 1] = nameEnd;
        it[b + 2] = 0;
        it[b + 3] = Math.min(nameEnd + 1, e);
        it[b + 4] = e;
        it[b + 5] = -1;
        it[b + 6] = -1;
        count++;
        pos = lf + 1;
        continue;
      }
      // Anything else: a one-line status (errors, OK/RESET for stats,
      // BUSY/BADCLASS/OK for lru_crawler) ends the frame when it comes first
      // (errors end it anywhere); other lines are list entries of stats
      // variants and dumps.
      classifyLine(buf, pos, e, this.#line);
      const k = this.#line.kind;
      const first = count === 0;
      let single = isErrorKind(k);
      if (!single && first && listKind !== ReplyKind.VALUES) {
        single = k === ReplyKind.OK || k === ReplyKind.RESET || k === ReplyKind.BUSY ||
          k === ReplyKind.BADCLASS;
      }
      if (single) {
        const text = this.#line.text;
        this.#clear();
        this.kind = k;
        this.textStart = text;
        this.textEnd = e;
        this.reset();
        this.length = lf + 1 - start;
        return this.length;
      }
      if (listKind === ReplyKind.VALUES) {
        return this.#invalid(buf, pos, e, "unexpected line in get reply");
      }
      this.#ensureItems(count);
      const it = this.items;
      const b = count * ITEM_STRIDE;
      it[b] = pos;
      it[b + 1] = e;
      it[b + 2] = 0;
      it[b + 3] = e;
      it[b + 4] = e;
      it[b + 5] = -1;
      it[b + 6] = -1;
      count++;
      pos = lf + 1;
    }
  }

  /**
   * The common case of a get reply's item, in one pass over its line:
   * `VALUE <key> <flags> <bytes>[ <cas>]\r\n` (or `\n`) with plain digits,
   * and its data block. Records item `count` and returns where the next line
   * starts; 0 when the data block is not all in yet; -1 for anything else
   * (an incomplete or unusual line: the general path of #parseList, which
   * accepts exactly these lines too, handles it).
   */
  #valueItem(buf: Uint8Array, pos: number, end: number, count: number): number {
    if (
      pos + 6 > end || buf[pos + 1] !== 0x41 || buf[pos + 2] !== 0x4c ||
      buf[pos + 3] !== 0x55 || buf[pos + 4] !== 0x45 || buf[pos + 5] !== SP
    ) return -1;
    const keyStart = pos + 6;
    let p = keyStart;
    for (; p < end; p++) {
      const c = buf[p];
      if (c === SP) break;
      if (c === LF) return -1;
    }
    if (p >= end || p === keyStart) return -1;
    const keyEnd = p++;
    // flags: 1 to 16 digits, then a space.
    let flags = 0;
    const flagsStart = p;
    for (; p < end; p++) {
      const d = buf[p] - 0x30;
      if (d < 0 || d > 9) break;
      flags = flags * 10 + d;
    }
    if (p >= end || buf[p] !== SP || p === flagsStart || p - flagsStart > 16) return -1;
    if (flags > Number.MAX_SAFE_INTEGER) return -1;
    // bytes: 1 to 16 digits, then a space (a CAS follows) or the line end.
    let size = 0;
    const sizeStart = ++p;
    for (; p < end; p++) {
      const d = buf[p] - 0x30;
      if (d < 0 || d > 9) break;
      size = size * 10 + d;
    }
    if (p >= end || p === sizeStart || p - sizeStart > 16 || size > Number.MAX_SAFE_INTEGER) {
      return -1;
    }
    let casStart = -1, casEnd = -1;
    if (buf[p] === SP) {
      casStart = ++p;
      while (p < end && buf[p] >= 0x30 && buf[p] <= 0x39) p++;
      if (p >= end || p === casStart) return -1;
      casEnd = p;
    }
    if (buf[p] === CR) p++;
    if (p >= end || buf[p] !== LF) return -1;
    const dataStart = p + 1;
    const next = dataStart + size + 2;
    if (next > end) return 0;
    if (buf[next - 2] !== CR || buf[next - 1] !== LF) return -1;
    this.#putItem(count, keyStart, keyEnd, flags, dataStart, size, casStart, casEnd);
    return next;
  }

  /** Records VALUE item `count` (growing the table as needed). */
  #putItem(
    count: number,
    keyStart: number,
    keyEnd: number,
    flags: number,
    dataStart: number,
    size: number,
    casStart: number,
    casEnd: number,
  ): void {
    this.#ensureItems(count);
    const it = this.items;
    const b = count * ITEM_STRIDE;
    it[b] = keyStart;
    it[b + 1] = keyEnd;
    it[b + 2] = flags;
    it[b + 3] = dataStart;
    it[b + 4] = dataStart + size;
    it[b + 5] = casStart;
    it[b + 6] = casEnd;
  }

  #saveProgress(op: OpCode, start: number, pos: number, count: number): void {
    this.#resumeOp = op;
    this.#resumeRel = pos - start;
    this.#resumeCount = count;
    this.#resumeStart = start;
  }

  #shiftItems(count: number, delta: number): void {
    const it = this.items;
    for (let i = 0; i < count; i++) {
      const b = i * ITEM_STRIDE;
      it[b] += delta;
      it[b + 1] += delta;
      it[b + 3] += delta;
      it[b + 4] += delta;
      if (it[b + 5] >= 0) {
        it[b + 5] += delta;
        it[b + 6] += delta;
      }
    }
    this.#resumeStart += delta;
  }
}
