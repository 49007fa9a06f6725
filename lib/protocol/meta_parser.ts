/**
 * The meta commands' part of the text parser (mg, ms, md, ma, me): their
 * token checks and memcached's flag pre-parse (`_meta_flag_preparse`), each
 * command with its own error texts. parser.ts tokenizes the line and hands
 * a meta command here.
 * @module
 */

import { lastBig, parseI32, parseU32, parseU64 } from "./bytes.ts";
import { MAX_KEY_LENGTH } from "./keys.ts";
import { Op, type OpCode } from "./ops.ts";
import { REPLY } from "./replies.ts";
import type { Request } from "./request.ts";

/** Meta commands take at most this many tokens (memcached MFLAG_MAX_OPT_LENGTH). */
const META_MAX_TOKENS = 20;
/** Longest opaque (`O`) token memcached accepts. */
export const META_MAX_OPAQUE = 32;

/** `me <key> [b]`: the key checked (and base64-decoded with `b`); sets `req.op`. */
export function parseMe(req: Request, nt: number): void {
  if (nt < 3 || req.tokenLength(1) > MAX_KEY_LENGTH) {
    req.reject(REPLY.BAD_FORMAT);
    return;
  }
  req.keyFromToken(1);
  if (nt >= 4 && req.tokenIs(2, "b")) {
    if (!req.decodeKey()) {
      req.reject(REPLY.BAD_FORMAT);
      return;
    }
    req.keyBinary = true;
  }
  req.op = Op.ME;
}

/**
 * The meta commands mg/ms/md/ma: memcached's token checks, then its flag
 * pre-parse, with each command's own error texts.
 */
export function parseMeta(req: Request, op: OpCode, nt: number, maxValue: number): number {
  if (nt < 3) {
    req.reject(REPLY.ERROR);
    return 0;
  }
  if (req.tokenLength(1) > MAX_KEY_LENGTH) {
    req.reject(REPLY.BAD_FORMAT, true);
    return 0;
  }
  if (op === Op.MS && nt === 3) {
    req.reject(REPLY.BAD_FORMAT, true);
    return 0;
  }
  if (nt > META_MAX_TOKENS) {
    req.reject(op === Op.MG ? REPLY.META_MG_TOO_LONG : REPLY.META_TOO_LONG, true);
    return 0;
  }
  req.keyFromToken(1);
  let firstFlag = 2;
  if (op === Op.MS) {
    const vlen = parseI32(req.buf, req.tokStart[2], req.tokEnd[2]);
    if (vlen === null || vlen < 0 || vlen > 0x7fffffff - 2) {
      req.reject(REPLY.BAD_FORMAT, true);
      return 0;
    }
    req.vlen = vlen;
    firstFlag = 3;
  }
  const error = preparseFlags(req, firstFlag);
  const swallow = op === Op.MS ? req.vlen + 2 : 0;
  if (error !== null) {
    const reply = op === Op.MD || op === Op.MA ? REPLY.META_INVALID_OR_DUP : error;
    return metaError(req, reply, swallow);
  }
  req.noreply = req.has(113 /* q */);
  const opaqueTooLong = opaqueCheck(req, firstFlag);
  if (op === Op.MS) {
    const m = req.mode;
    if (m !== 0 && m !== 69 && m !== 65 && m !== 80 && m !== 82 && m !== 83) {
      return metaError(req, REPLY.MS_BAD_MODE, swallow);
    }
  } else if (op === Op.MA) {
    const m = req.mode;
    if (m !== 0 && m !== 73 && m !== 43 && m !== 68 && m !== 45) {
      return metaError(req, REPLY.MA_BAD_MODE, 0);
    }
  }
  // mg and ma find the long opaque while they write the reply, after the read or the arithmetic
  // (and the flags before it) took effect: their commands run and refuse it (meta_commands.ts).
  if (opaqueTooLong && op !== Op.MG && op !== Op.MA) {
    return metaError(req, REPLY.META_OPAQUE_TOO_LONG, swallow);
  }
  req.op = op;
  if (op !== Op.MS) return 0;
  if (req.vlen > maxValue) {
    req.tooLarge = true;
    req.swallow = swallow;
    return 0;
  }
  return swallow;
}

function metaError(req: Request, reply: Uint8Array, swallow: number): number {
  req.reject(reply, true);
  req.swallow = swallow;
  return 0;
}

function opaqueCheck(req: Request, from: number): boolean {
  for (let i = from; i < req.ntokens; i++) {
    if (req.buf[req.tokStart[i]] === 79 /* O */ && req.tokenLength(i) > META_MAX_OPAQUE) {
      return true;
    }
  }
  return false;
}

/** memcached's _meta_flag_preparse: returns the error reply or null. */
function preparseFlags(req: Request, from: number): Uint8Array | null {
  const buf = req.buf;
  let error: Uint8Array = REPLY.BAD_FORMAT;
  let failed = false;
  for (let i = from; i < req.ntokens; i++) {
    const s = req.tokStart[i], e = req.tokEnd[i];
    const o = buf[s];
    if (o >= 127 || !req.markFlag(o, i)) return REPLY.META_DUPLICATE;
    switch (o) {
      case 98: /* b */
        if (!req.decodeKey()) {
          error = REPLY.META_BAD_KEY;
          failed = true;
        }
        req.keyBinary = true;
        break;
      case 78: /* N */
      case 84: /* T */
      case 82: /* R */ {
        const t = parseI32(buf, s + 1, e);
        if (t === null) {
          error = REPLY.META_BAD_TOKEN;
          failed = true;
        } else if (o === 78) req.vivify = t;
        else if (o === 84) req.exptime = t;
        else req.recache = t;
        break;
      }
      case 108: /* l */
      case 79: /* O */
      case 80: /* P */
      case 76: /* L */
      case 107: /* k */
      case 115: /* s */
      case 116: /* t */
      case 99: /* c */
      case 102: /* f */
      case 118: /* v */
      case 104: /* h */
      case 117: /* u */
      case 113: /* q */
      case 73: /* I */
        break;
      case 70: /* F */ {
        const f = parseU32(buf, s + 1, e);
        if (f < 0) failed = true;
        else req.flags = f;
        break;
      }
      case 67: /* C */
      case 69: /* E */ {
        if (o === 69 && req.explicitCasMax < 0) return REPLY.META_INVALID_FLAG;
        const v = parseU64(buf, s + 1, e);
        if (v < 0 || (o === 69 && v > req.explicitCasMax)) {
          error = REPLY.META_BAD_TOKEN;
          failed = true;
        } else if (o === 67) req.cas = v;
        else req.explicitCas = v;
        break;
      }
      case 77: /* M */
        if (e - s !== 2) {
          error = REPLY.META_BAD_M;
          failed = true;
        } else req.mode = buf[s + 1];
        break;
      case 74: /* J */
      case 68: /* D */ {
        const v = parseU64(buf, s + 1, e);
        if (v < 0) {
          error = o === 74 ? REPLY.META_BAD_INITIAL : REPLY.META_BAD_DELTA;
          failed = true;
        } else if (o === 74) {
          req.initial = v;
          req.initialBig = lastBig;
        } else {
          req.delta = v;
          req.deltaBig = lastBig;
        }
        break;
      }
      default:
        return REPLY.META_INVALID_FLAG;
    }
  }
  return failed ? error : null;
}
