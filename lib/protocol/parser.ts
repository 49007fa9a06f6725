/**
 * The one request parser of the memcached text and meta protocols, used by
 * the server, the proxy and the copier. Like memcached's proto_text.c it
 * works on bytes in place: tokens are offsets into the read buffer, numbers
 * are parsed from bytes, and client mistakes become a reply in the request
 * (never an exception). Validation order and error texts follow memcached
 * 1.6 exactly, so replies match byte for byte.
 * @module
 */

import { lastBig, parseI32, parseU32, parseU64 } from "./bytes.ts";
import { MAX_KEY_LENGTH } from "./keys.ts";
import { Op, type OpCode } from "./ops.ts";
import { REPLY } from "./replies.ts";
import { PARSE_CLOSE, Request } from "./request.ts";
import { parseMe, parseMeta } from "./meta_parser.ts";

/** memcached's MAX_TOKENS: lines are split into at most 23 tokens + rest. */
const MAX_TOKENS = 24;
/** Bytes without a newline after which a non-get line is junk. */
const MAX_LINE = 2048;
/**
 * Upper bound for a get line still without its newline: memcached has none
 * (it keeps reading a 10 MB line and then answers it); memrep closes the
 * connection past 64 MB to bound memory per connection.
 */
const MAX_GET_LINE = 64 * 1048576;

function tokenize(buf: Uint8Array, start: number, end: number, req: Request): void {
  let s = start;
  for (let i = start; i < end; i++) {
    if (buf[i] === 32) {
      if (i > s) req.pushToken(s, i);
      s = i + 1;
    }
  }
  if (end > s) req.pushToken(s, end);
}

/**
 * Tokenize one line of memrep's replication link (an {@linkcode Op.REPL}
 * frame) with the request tokenizer: `buf[start, end)` is the line without
 * its "\r\n"; tokens land in `req` as for any request. Peers only, never
 * clients: the verbs and data blocks are read by lib/replication/stream.ts.
 */
export function tokenizeReplLine(buf: Uint8Array, start: number, end: number, req: Request): void {
  req.reset(buf);
  req.lineStart = start;
  req.lineEnd = end;
  tokenize(buf, start, end, req);
  req.op = Op.REPL;
}

/** memcached's token count: real tokens capped at 23, plus the terminal token. */
function memcachedTokens(req: Request): number {
  return Math.min(req.ntokens, MAX_TOKENS - 1) + 1;
}

/** Is the last token "noreply"? (memcached's set_noreply_maybe) */
function noreplyMaybe(req: Request): boolean {
  if (req.ntokens > 0 && req.ntokens < MAX_TOKENS && req.tokenIs(req.ntokens - 1, "noreply")) {
    req.noreply = true;
  }
  return req.noreply;
}

function keyTooLong(req: Request, i: number): boolean {
  return req.tokenLength(i) > MAX_KEY_LENGTH;
}

/**
 * Parse one request from buf[start, end).
 *
 * Returns the number of bytes it spans (line and data block), 0 when more
 * bytes are needed (`req.need` then tells how many in all, when known), or
 * {@linkcode PARSE_CLOSE} when memcached would close the connection (a long
 * line without newline that is no multi-get, an HTTP request).
 * `maxValue` bounds the value bytes buffered for storage commands: larger
 * values are swallowed instead (`req.tooLarge`, `req.swallow`).
 */
export function parseRequest(
  buf: Uint8Array,
  start: number,
  end: number,
  req: Request,
  maxValue: number,
): number {
  let nl = buf.indexOf(10, start);
  if (nl >= end) nl = -1;
  if (nl < 0) {
    const pending = end - start;
    if (pending > MAX_LINE) {
      let p = start;
      while (p < end && buf[p] === 32) p++;
      const isGet = (buf[p] === 103 && buf[p + 1] === 101 && buf[p + 2] === 116) &&
        (buf[p + 3] === 32 || (buf[p + 3] === 115 && buf[p + 4] === 32));
      if (p - start > 100 || !isGet) return PARSE_CLOSE;
      const decided = decideLongGet(buf, start, end, req);
      if (decided >= 0) {
        // memcached answers once the newline comes: the connection swallows through it.
        if (decided === end) {
          req.reset(buf);
          req.reject(REPLY.BAD_FORMAT);
        } else parseLine(startLine(buf, start, decided, req), maxValue);
        // The line was incomplete: memcached wrote out what was pending before reading on.
        req.cull = false;
        req.swallowLine = true;
        req.longLine.buf = null;
        return pending;
      }
      if (pending > MAX_GET_LINE) return PARSE_CLOSE;
    }
    req.need = 0;
    return 0;
  }
  if (req.longLine.buf !== null) req.longLine.buf = null; // the long line (if any) is over
  let lineEnd = nl;
  if (nl - start > 1 && buf[nl - 1] === 13) lineEnd--;
  const lineLength = nl + 1 - start;
  const need = parseLine(startCLine(buf, start, lineEnd, req), maxValue);
  if (need === 0) return lineLength;
  // A storage command with its data block.
  const total = lineLength + need;
  if (end - start < total) {
    req.need = total;
    return 0;
  }
  req.dataStart = nl + 1;
  req.dataEnd = nl + 1 + need - 2;
  req.badChunk = buf[req.dataEnd] !== 13 || buf[req.dataEnd + 1] !== 10;
  return total;
}

/**
 * {@linkcode startLine} for a line read as memcached reads it, as a C
 * string: a NUL byte ends it (the rest up to the newline is ignored, so a key
 * never holds a NUL; binary keys come in base64). The NUL is found in the
 * same pass as the tokens (a 1,000-key get line is 11 KB: one pass, not two).
 */
function startCLine(buf: Uint8Array, start: number, lineEnd: number, req: Request): Request {
  req.reset(buf);
  req.lineStart = start;
  let s = start, i = start;
  while (i < lineEnd) {
    // A token's bytes are above the space (one test per byte); a control byte is one of them.
    while (i < lineEnd && buf[i] > 32) i++;
    if (i === lineEnd) break;
    const c = buf[i];
    if (c === 32) {
      if (i > s) req.pushToken(s, i);
      s = ++i;
    } else if (c === 0) break;
    else i++;
  }
  if (i > s) req.pushToken(s, i);
  req.lineEnd = i;
  return req;
}

/** Reset `req` for the command line buf[start, lineEnd) and tokenize it. */
function startLine(buf: Uint8Array, start: number, lineEnd: number, req: Request): Request {
  req.reset(buf);
  req.lineStart = start;
  req.lineEnd = lineEnd;
  tokenize(buf, start, lineEnd, req);
  return req;
}

/**
 * A get line buf[start, end) still without its newline may be decided
 * already: a NUL ends it (returns the NUL's offset: the line is what comes
 * before), or a token over the key length makes it a format error
 * (returns `end`). Returns -1 while undecided. The scan resumes where the
 * previous call stopped, so a long line costs one pass.
 */
function decideLongGet(buf: Uint8Array, start: number, end: number, req: Request): number {
  const scan = req.longLine;
  if (scan.buf !== buf || scan.start !== start || scan.pos > end) {
    scan.buf = buf;
    scan.start = start;
    scan.pos = start;
    scan.run = 0;
  }
  let run = scan.run;
  for (let i = scan.pos; i < end; i++) {
    const c = buf[i];
    if (c === 0) return i;
    if (c === 32) run = 0;
    else if (++run > MAX_KEY_LENGTH) return end;
  }
  scan.pos = end;
  scan.run = run;
  return -1;
}

/** Classify the tokenized line; returns the data block length to read (0 for none). */
function parseLine(req: Request, maxValue: number): number {
  const n = req.ntokens;
  if (n < 1 || req.tokenLength(0) < 2) {
    req.reject(REPLY.ERROR);
    return 0;
  }
  const buf = req.buf;
  const c0 = buf[req.tokStart[0]];
  const len0 = req.tokenLength(0);
  const nt = memcachedTokens(req);
  if (c0 === 109 /* m */ && len0 === 2) {
    switch (buf[req.tokStart[0] + 1]) {
      case 103: /* g */
        return parseMeta(req, Op.MG, nt, maxValue);
      case 115: /* s */
        return parseMeta(req, Op.MS, nt, maxValue);
      case 100: /* d */
        return parseMeta(req, Op.MD, nt, maxValue);
      case 97: /* a */
        return parseMeta(req, Op.MA, nt, maxValue);
      case 110: /* n */
        req.op = Op.MN;
        return 0;
      case 101: /* e */
        parseMe(req, nt);
        return 0;
    }
    req.reject(REPLY.ERROR);
    return 0;
  }
  switch (c0) {
    case 103: /* g */
      if (nt < 3) break;
      if (req.tokenIs(0, "get")) return parseGet(req, Op.GET);
      if (req.tokenIs(0, "gets")) return parseGet(req, Op.GETS);
      if (req.tokenIs(0, "gat")) return parseGet(req, Op.GAT);
      if (req.tokenIs(0, "gats")) return parseGet(req, Op.GATS);
      break;
    case 115: /* s */
      if (req.tokenIs(0, "set")) {
        return nt === 6 || nt === 7 ? parseStorage(req, Op.SET, maxValue) : wrong(req);
      }
      if (req.tokenIs(0, "stats")) return simple(req, Op.STATS);
      if (req.tokenIs(0, "shutdown")) return simple(req, Op.SHUTDOWN);
      if (req.tokenIs(0, "slabs")) return simple(req, Op.SLABS);
      break;
    case 97: /* a */
      if (req.tokenIs(0, "add")) {
        return nt === 6 || nt === 7 ? parseStorage(req, Op.ADD, maxValue) : wrong(req);
      }
      if (req.tokenIs(0, "append")) {
        return nt === 6 || nt === 7 ? parseStorage(req, Op.APPEND, maxValue) : wrong(req);
      }
      break;
    case 99: /* c */
      if (req.tokenIs(0, "cas")) {
        return nt === 7 || nt === 8 ? parseStorage(req, Op.CAS, maxValue) : wrong(req);
      }
      if (req.tokenIs(0, "cache_memlimit")) {
        return nt === 3 || nt === 4 ? simple(req, Op.CACHE_MEMLIMIT) : wrong(req);
      }
      break;
    case 105: /* i */
      if (req.tokenIs(0, "incr")) {
        return nt === 4 || nt === 5 ? parseArith(req, Op.INCR) : wrong(req);
      }
      break;
    case 100: /* d */
      if (req.tokenIs(0, "delete")) return nt >= 3 && nt <= 5 ? parseDelete(req) : wrong(req);
      if (req.tokenIs(0, "decr")) {
        return nt === 4 || nt === 5 ? parseArith(req, Op.DECR) : wrong(req);
      }
      break;
    case 116: /* t */
      if (req.tokenIs(0, "touch")) return nt === 4 || nt === 5 ? parseTouch(req) : wrong(req);
      break;
    default:
      if (req.tokenIs(0, "replace")) {
        return nt === 6 || nt === 7 ? parseStorage(req, Op.REPLACE, maxValue) : wrong(req);
      }
      if (req.tokenIs(0, "prepend")) {
        return nt === 6 || nt === 7 ? parseStorage(req, Op.PREPEND, maxValue) : wrong(req);
      }
      if (req.tokenIs(0, "bget")) return nt >= 3 ? parseGet(req, Op.GET) : wrong(req);
      if (req.tokenIs(0, "flush_all")) return nt >= 2 && nt <= 4 ? parseFlush(req) : wrong(req);
      if (req.tokenIs(0, "version")) return simple(req, Op.VERSION);
      if (req.tokenIs(0, "quit")) return simple(req, Op.QUIT);
      if (req.tokenIs(0, "lru_crawler")) return simple(req, Op.LRU_CRAWLER);
      if (req.tokenIs(0, "verbosity")) {
        return nt === 3 || nt === 4 ? parseVerbosity(req) : wrong(req);
      }
      if (req.tokenIs(0, "misbehave")) return simple(req, Op.MISBEHAVE);
      if (req.tokenIs(0, "lru")) return simple(req, Op.LRU);
      if (req.tokenIs(0, "watch")) return simple(req, Op.WATCH);
      if (isHttp(req)) {
        req.reject(REPLY.ERROR);
        req.close = true;
        return 0;
      }
      break;
  }
  req.reject(REPLY.ERROR);
  return 0;
}

/** memcached closes connections that look like HTTP requests. */
function isHttp(req: Request): boolean {
  const last = Math.min(req.ntokens, MAX_TOKENS - 1) - 1;
  const s = req.tokStart[last];
  const b = req.buf;
  return req.tokenLength(last) >= 5 && b[s] === 72 && b[s + 1] === 84 && b[s + 2] === 84 &&
    b[s + 3] === 80 && b[s + 4] === 47;
}

function wrong(req: Request): number {
  req.reject(REPLY.ERROR);
  return 0;
}

function simple(req: Request, op: OpCode): number {
  req.op = op;
  return 0;
}

function parseGet(req: Request, op: OpCode): number {
  let first = 1;
  if (op === Op.GAT || op === Op.GATS) {
    const t = parseI32(req.buf, req.tokStart[1], req.tokEnd[1]);
    if (t === null) {
      req.reject(REPLY.BAD_EXPTIME);
      return 0;
    }
    req.exptime = t;
    first = 2;
  }
  for (let i = first; i < req.ntokens; i++) {
    if (keyTooLong(req, i)) {
      req.reject(REPLY.BAD_FORMAT);
      req.cull = true;
      req.firstKey = first;
      req.longKeyAt = i;
      req.longKeyTouch = first === 2;
      return 0;
    }
  }
  req.op = op;
  req.firstKey = first;
  if (first < req.ntokens) req.keyFromToken(first);
  return 0;
}

function parseStorage(req: Request, op: OpCode, maxValue: number): number {
  noreplyMaybe(req);
  if (keyTooLong(req, 1)) {
    req.reject(REPLY.BAD_FORMAT);
    return 0;
  }
  const b = req.buf, s = req.tokStart, e = req.tokEnd;
  const flags = parseU32(b, s[2], e[2]);
  const exptime = flags < 0 ? null : parseI32(b, s[3], e[3]);
  const vlen = exptime === null ? null : parseI32(b, s[4], e[4]);
  if (vlen === null) {
    req.reject(REPLY.BAD_FORMAT);
    return 0;
  }
  if (op === Op.CAS) {
    const cas = parseU64(b, s[5], e[5]);
    if (cas < 0) {
      req.reject(REPLY.BAD_FORMAT);
      return 0;
    }
    req.cas = cas;
  }
  if (vlen < 0 || vlen > 0x7fffffff - 2) {
    req.reject(REPLY.BAD_FORMAT);
    return 0;
  }
  req.op = op;
  req.keyFromToken(1);
  req.flags = flags;
  req.exptime = exptime as number;
  req.vlen = vlen;
  if (vlen > maxValue) {
    req.tooLarge = true;
    req.swallow = vlen + 2;
    return 0;
  }
  return vlen + 2;
}

function parseArith(req: Request, op: OpCode): number {
  noreplyMaybe(req);
  if (keyTooLong(req, 1)) {
    req.reject(REPLY.BAD_FORMAT);
    return 0;
  }
  const delta = parseU64(req.buf, req.tokStart[2], req.tokEnd[2]);
  if (delta < 0) {
    req.reject(REPLY.BAD_DELTA);
    return 0;
  }
  req.op = op;
  req.delta = delta;
  req.deltaBig = lastBig;
  req.keyFromToken(1);
  return 0;
}

function parseTouch(req: Request): number {
  noreplyMaybe(req);
  if (keyTooLong(req, 1)) {
    req.reject(REPLY.BAD_FORMAT);
    return 0;
  }
  const t = parseI32(req.buf, req.tokStart[2], req.tokEnd[2]);
  if (t === null) {
    req.reject(REPLY.BAD_EXPTIME);
    return 0;
  }
  req.op = Op.TOUCH;
  req.exptime = t;
  req.keyFromToken(1);
  return 0;
}

function parseDelete(req: Request): number {
  const n = req.ntokens;
  if (n > 2) {
    const holdIsZero = req.tokenIs(2, "0");
    const setsNoreply = noreplyMaybe(req);
    const valid = (n === 3 && (holdIsZero || setsNoreply)) ||
      (n === 4 && holdIsZero && setsNoreply);
    if (!valid) {
      req.reject(REPLY.DELETE_USAGE);
      return 0;
    }
  }
  if (keyTooLong(req, 1)) {
    req.reject(REPLY.BAD_FORMAT);
    return 0;
  }
  req.op = Op.DELETE;
  req.keyFromToken(1);
  return 0;
}

function parseFlush(req: Request): number {
  noreplyMaybe(req);
  if (req.ntokens !== (req.noreply ? 2 : 1)) {
    const t = parseI32(req.buf, req.tokStart[1], req.tokEnd[1]);
    if (t === null) {
      req.reject(REPLY.BAD_EXPTIME);
      return 0;
    }
    req.exptime = t;
  }
  req.op = Op.FLUSH_ALL;
  return 0;
}

function parseVerbosity(req: Request): number {
  noreplyMaybe(req);
  if (parseU32(req.buf, req.tokStart[1], req.tokEnd[1]) < 0) {
    req.reject(REPLY.BAD_FORMAT);
    return 0;
  }
  req.op = Op.VERBOSITY;
  return 0;
}
