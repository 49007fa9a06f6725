/**
 * What one status line of a memcached reply is: its keyword's kind (and
 * where its text starts), and which kinds are a valid answer to which
 * request. Split from response.ts so that the frame parser there holds the
 * framing (lists, data blocks, resuming) and this file the line vocabulary.
 * @module
 */

import { ascii, bytesEqual, parseDecimal, parseDecimalBigInt, SP, startsWith } from "./bytes.ts";
import { Op, type OpCode } from "./ops.ts";
import { isErrorKind, ReplyKind, type ReplyKindCode } from "./reply_kind.ts";

/** `END`: the last line of list replies (get, stats, lru_crawler dumps). */
export const W_END = ascii("END");
const W_STORED = ascii("STORED");
const W_NOT_STORED = ascii("NOT_STORED");
const W_EXISTS = ascii("EXISTS");
const W_NOT_FOUND = ascii("NOT_FOUND");
const W_DELETED = ascii("DELETED");
const W_TOUCHED = ascii("TOUCHED");
const W_OK = ascii("OK");
const W_RESET = ascii("RESET");
const W_VERSION = ascii("VERSION");
const W_ERROR = ascii("ERROR");
const W_CLIENT_ERROR = ascii("CLIENT_ERROR");
const W_SERVER_ERROR = ascii("SERVER_ERROR");
const W_BUSY = ascii("BUSY");
const W_BADCLASS = ascii("BADCLASS");

/** True when the line `buf[s, e)` is `word` alone or `word` followed by a space. */
function isWord(buf: Uint8Array, s: number, e: number, word: Uint8Array): boolean {
  return startsWith(buf, s, e, word) && (s + word.length === e || buf[s + word.length] === SP);
}

/** Where the text after `word ` starts (clamped to the line end). */
function after(s: number, e: number, word: Uint8Array): number {
  return Math.min(e, s + word.length + 1);
}

/** Classification of one status line: kind, plus where its text starts. */
export interface LineClass {
  /** Kind of the line (NONE for END, LINE when unknown). */
  kind: ReplyKindCode;
  /** Where the text after the keyword starts. */
  text: number;
}

/**
 * Classify the status line `buf[s, e)` into `line`. END yields NONE
 * (callers that accept END handle it); unknown lines yield LINE.
 */
export function classifyLine(buf: Uint8Array, s: number, e: number, line: LineClass): void {
  line.text = e;
  let kind: ReplyKindCode = ReplyKind.LINE;
  const n = e - s;
  switch (buf[s]) {
    case 0x45: // E
      if (bytesEqual(buf, s, e, W_END)) kind = ReplyKind.NONE;
      else if (n >= 2 && buf[s + 1] === 0x4e && (n === 2 || buf[s + 2] === SP)) {
        kind = ReplyKind.EN; // a miss echoes the O and k flags: "EN Oabc kfoo"
        line.text = Math.min(e, s + 3);
      } else if (n >= 2 && buf[s + 1] === 0x58 && (n === 2 || buf[s + 2] === SP)) {
        kind = ReplyKind.EX;
        line.text = s + 3;
      } else if (bytesEqual(buf, s, e, W_EXISTS)) kind = ReplyKind.EXISTS;
      else if (isWord(buf, s, e, W_ERROR)) {
        kind = ReplyKind.ERROR;
        line.text = after(s, e, W_ERROR);
      } else if (startsWith(buf, s, e, W_ERROR)) {
        // memcached writes "ERROR: shutdown not enabled" etc.
        kind = ReplyKind.ERROR;
        line.text = s + W_ERROR.length;
      }
      break;
    case 0x53: // S
      if (bytesEqual(buf, s, e, W_STORED)) kind = ReplyKind.STORED;
      else if (isWord(buf, s, e, W_SERVER_ERROR)) {
        kind = ReplyKind.SERVER_ERROR;
        line.text = after(s, e, W_SERVER_ERROR);
      }
      break;
    case 0x43: // C
      if (isWord(buf, s, e, W_CLIENT_ERROR)) {
        kind = ReplyKind.CLIENT_ERROR;
        line.text = after(s, e, W_CLIENT_ERROR);
      }
      break;
    case 0x4e: // N
      if (n >= 2 && (n === 2 || buf[s + 2] === SP)) {
        if (buf[s + 1] === 0x53) kind = ReplyKind.NS;
        else if (buf[s + 1] === 0x46) kind = ReplyKind.NF;
        line.text = Math.min(e, s + 3);
      } else if (bytesEqual(buf, s, e, W_NOT_STORED)) kind = ReplyKind.NOT_STORED;
      else if (bytesEqual(buf, s, e, W_NOT_FOUND)) kind = ReplyKind.NOT_FOUND;
      break;
    case 0x48: // H
      if (n >= 2 && buf[s + 1] === 0x44 && (n === 2 || buf[s + 2] === SP)) {
        kind = ReplyKind.HD;
        line.text = Math.min(e, s + 3);
      }
      break;
    case 0x4d: // M
      if (n === 2 && buf[s + 1] === 0x4e) kind = ReplyKind.MN;
      else if (n >= 3 && buf[s + 1] === 0x45 && buf[s + 2] === SP) {
        kind = ReplyKind.ME;
        line.text = s + 3;
      }
      break;
    case 0x44: // D
      if (bytesEqual(buf, s, e, W_DELETED)) kind = ReplyKind.DELETED;
      break;
    case 0x54: // T
      if (bytesEqual(buf, s, e, W_TOUCHED)) kind = ReplyKind.TOUCHED;
      break;
    case 0x4f: // O
      if (bytesEqual(buf, s, e, W_OK)) kind = ReplyKind.OK;
      break;
    case 0x52: // R
      if (bytesEqual(buf, s, e, W_RESET)) kind = ReplyKind.RESET;
      break;
    case 0x56: // V
      if (isWord(buf, s, e, W_VERSION)) {
        kind = ReplyKind.VERSION;
        line.text = after(s, e, W_VERSION);
      }
      break;
    case 0x42: // B
      if (isWord(buf, s, e, W_BUSY)) {
        kind = ReplyKind.BUSY;
        line.text = after(s, e, W_BUSY);
      } else if (isWord(buf, s, e, W_BADCLASS)) {
        kind = ReplyKind.BADCLASS;
        line.text = after(s, e, W_BADCLASS);
      }
      break;
    default:
      if (n > 0 && parseDecimal(buf, s, e) >= 0) kind = ReplyKind.NUMBER;
      else if (n > 0 && n <= 20 && parseDecimalBigInt(buf, s, e) !== undefined) {
        kind = ReplyKind.NUMBER;
      }
      if (kind === ReplyKind.NUMBER) line.text = s;
  }
  line.kind = kind;
}

/** True when `k` may end a streamed `lru_crawler metadump` (END is NONE here). */
export function isDumpFinal(k: number): boolean {
  return k === ReplyKind.NONE || k === ReplyKind.BUSY || k === ReplyKind.BADCLASS ||
    k === ReplyKind.OK || isErrorKind(k);
}

/** True when a status line of kind `k` is a valid reply to a request of kind `op`. */
export function answersStatus(op: OpCode, k: ReplyKindCode): boolean {
  let ok = isErrorKind(k);
  if (!ok) {
    switch (op) {
      case Op.SET:
      case Op.ADD:
      case Op.REPLACE:
      case Op.APPEND:
      case Op.PREPEND:
      case Op.CAS:
        ok = k === ReplyKind.STORED || k === ReplyKind.NOT_STORED ||
          k === ReplyKind.EXISTS || k === ReplyKind.NOT_FOUND;
        break;
      case Op.DELETE:
        ok = k === ReplyKind.DELETED || k === ReplyKind.NOT_FOUND;
        break;
      case Op.INCR:
      case Op.DECR:
        ok = k === ReplyKind.NUMBER || k === ReplyKind.NOT_FOUND;
        break;
      case Op.TOUCH:
        ok = k === ReplyKind.TOUCHED || k === ReplyKind.NOT_FOUND;
        break;
      case Op.VERSION:
        ok = k === ReplyKind.VERSION;
        break;
      case Op.FLUSH_ALL:
      case Op.VERBOSITY:
      case Op.CACHE_MEMLIMIT:
      case Op.MISBEHAVE:
        ok = k === ReplyKind.OK;
        break;
      default:
        // Free-form replies (shutdown, the replication verb, ...): any one line.
        ok = true;
    }
  }
  return ok;
}

/** True when a line of kind `k` (not VA) is a valid reply to meta request `op`. */
export function answersMeta(op: OpCode, k: ReplyKindCode): boolean {
  let ok: boolean;
  switch (k) {
    case ReplyKind.HD:
    case ReplyKind.NS:
    case ReplyKind.EX:
    case ReplyKind.NF:
    case ReplyKind.EN:
    case ReplyKind.ME:
      ok = op !== Op.MN;
      break;
    case ReplyKind.MN:
      ok = true;
      break;
    default:
      ok = isErrorKind(k);
  }
  return ok;
}
