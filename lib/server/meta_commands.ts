/**
 * The meta commands (mg, ms, md, ma, me): flags parsed by lib/protocol,
 * semantics and reply flags as memcached 1.6.18's proto_text.c.
 * @module
 */

import {
  base64Encode,
  META_MAX_OPAQUE,
  Op,
  REPLY,
  type Request,
  type Writer,
} from "../protocol/mod.ts";
import { ALLOC_TOO_LARGE } from "../store/mod.ts";
import type { EngineBase } from "./engine.ts";
import { ITEM_KEY_BINARY, ITEM_STALE, ITEM_TOKEN_SENT } from "./items.ts";
import { SlabStat } from "./stats.ts";
import { allocValue, storeFailed, storeItem } from "./storage.ts";

const M = {
  b: 98,
  c: 99,
  f: 102,
  h: 104,
  k: 107,
  l: 108,
  O: 79,
  q: 113,
  s: 115,
  t: 116,
  u: 117,
  v: 118,
  N: 78,
  R: 82,
  T: 84,
  I: 73,
  E: 69,
  C: 67,
};

/** Append " k<key>" (base64 + " b" for binary keys). */
function metaKey(out: Writer, src: Uint8Array, start: number, end: number, binary: boolean): void {
  out.text(" k");
  if (binary) {
    out.reserve(((end - start + 2) / 3) * 4 + 8);
    out.length = base64Encode(src, start, end, out.buf, out.length);
    out.text(" b");
  } else out.bytes(src, start, end);
}

/** Append " O<opaque>" for token i. */
function opaque(out: Writer, req: Request, i: number): void {
  out.byte(32);
  out.bytes(req.buf, req.tokStart[i], req.tokEnd[i]);
}

/**
 * An `O` token longer than memcached takes: mg and ma (whose parse lets it
 * through) refuse it where they reach it in the reply, the command done.
 */
function opaqueTooLong(req: Request, i: number): boolean {
  return req.tokenLength(i) > META_MAX_OPAQUE;
}

/**
 * Flags echoed on misses and failures: O and k, in request order. False
 * (and the reply replaced by the error, noreply or not) at a too-long O.
 */
function missFlags(req: Request, out: Writer, from: number, mark = out.length): boolean {
  for (let i = from; i < req.ntokens; i++) {
    const c = req.buf[req.tokStart[i]];
    if (c === M.O) {
      if (opaqueTooLong(req, i)) return opaqueRefused(out, mark);
      opaque(out, req, i);
    } else if (c === M.k) metaKey(out, req.keyBuf, req.keyStart, req.keyEnd, req.keyBinary);
  }
  return true;
}

function opaqueRefused(out: Writer, mark: number): false {
  out.length = mark;
  out.bytes(REPLY.META_OPAQUE_TOO_LONG);
  return false;
}

/** `mg <key> <flags>*`. */
export function metaGet(e: EngineBase, req: Request, out: Writer): void {
  const store = e.store;
  const now = e.clock.now();
  const locked = req.has(M.l) || req.has(M.h) || req.has(M.T) || req.has(M.N) || req.has(M.R);
  let h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
  let created = false;
  if (h < 0 && req.has(M.N)) {
    h = store.alloc(req.keyBuf, req.keyStart, req.keyEnd, 0, 0, 0);
    if (h >= 0) {
      // No binary-key mark, as memcached's mg N: its `k` shows the key's bytes as they are.
      store.link(h, req.explicitCas >= 0 ? req.explicitCas : undefined);
      created = true;
    }
  }
  const ttlSet = req.has(M.T);
  if (h < 0) {
    const mark = out.length;
    out.bytes(REPLY.EN, 0, 2);
    // memcached counts the miss only once its reply is made (a too-long O refused first).
    if (!missFlags(req, out, 2, mark)) return;
    if (ttlSet) e.stats.cmdTouch++, e.stats.touchMisses++;
    else e.stats.cmdGet++, e.stats.getMisses++;
    if (req.noreply) out.length = mark;
    else out.crlf();
    return;
  }
  if (!locked && !req.has(M.u)) store.bump(h);
  const mark = out.length;
  const vlen = store.valueLength(h);
  if (req.has(M.v)) {
    out.text("VA ");
    out.uint(vlen);
  } else out.text("HD");
  let won = false;
  let changed = created;
  let bits = store.userBits(h);
  const buf = req.buf;
  for (let i = 2; i < req.ntokens; i++) {
    switch (buf[req.tokStart[i]]) {
      case M.T:
        store.setExptime(h, e.absoluteExptime(req.exptime));
        changed = true;
        break;
      case M.N:
        if (created) {
          store.setExptime(h, e.absoluteExptime(req.vivify));
          won = true;
        }
        break;
      case M.R: {
        const exp = store.exptime(h);
        if (
          (bits & ITEM_TOKEN_SENT) === 0 && !created && exp !== 0 &&
          exp < e.absoluteExptime(req.recache)
        ) {
          won = true;
        }
        break;
      }
      case M.s:
        out.text(" s");
        out.uint(vlen);
        break;
      case M.t: {
        out.text(" t");
        const exp = store.exptime(h);
        if (exp === 0) out.text("-1");
        else out.uint(toU32(exp - now));
        break;
      }
      case M.c:
        out.text(" c");
        out.uint(e.clientCas(h));
        break;
      case M.f:
        out.text(" f");
        out.uint(store.flags(h));
        break;
      case M.l:
        out.text(" l");
        out.uint(Math.max(0, now - store.lastAccess(h)));
        break;
      case M.h:
        out.text(store.fetched(h) ? " h1" : " h0");
        break;
      case M.O:
        if (opaqueTooLong(req, i)) {
          // Refused in memcached's reply loop: what the flags before it did stays, unbumped.
          opaqueRefused(out, mark);
          if (changed) e.observer?.stored(h);
          return;
        }
        opaque(out, req, i);
        break;
      case M.k: {
        const ko = store.keyOffset(h);
        metaKey(
          out,
          store.buffer(h),
          ko,
          ko + store.keyLength(h),
          (bits & ITEM_KEY_BINARY) !== 0,
        );
        break;
      }
    }
  }
  if (bits & ITEM_TOKEN_SENT) out.text(" Z");
  if (bits & ITEM_STALE) {
    out.text(" X");
    if ((bits & ITEM_TOKEN_SENT) === 0) won = true;
  }
  if (won) {
    out.text(" W");
    // A replicated node tells its peer, whose clients then get Z (not a second W).
    changed = true;
    bits |= ITEM_TOKEN_SENT;
    store.setUserBits(h, bits);
  }
  out.crlf();
  if (req.has(M.v)) {
    const vo = store.valueOffset(h);
    out.bytes(store.buffer(h), vo, vo + vlen + 2);
  }
  if (ttlSet) e.stats.cmdTouch++, e.stats.touchHits++;
  else e.stats.cmdGet++, e.stats.getHits++;
  e.stats.slab(ttlSet ? SlabStat.TOUCH_HITS : SlabStat.GET_HITS, store.slabClass(h));
  if (locked && !req.has(M.u)) store.bump(h);
  e.pin(h); // memcached's reply holds the item until it is written
  if (changed) e.observer?.stored(h);
}

/** `ms <key> <datalen> <flags>*` with its data. */
export function metaSet(e: EngineBase, req: Request, out: Writer): void {
  e.stats.cmdSet++;
  const store = e.store;
  let mode: number | "cas" = Op.SET;
  switch (req.mode) {
    case 69: /* E */
      mode = Op.ADD;
      break;
    case 65: /* A */
      mode = Op.APPEND;
      break;
    case 80: /* P */
      mode = Op.PREPEND;
      break;
    case 82: /* R */
      mode = Op.REPLACE;
      break;
  }
  const hasCas = req.cas >= 0;
  if (hasCas && (mode === Op.SET || mode === Op.REPLACE)) mode = "cas";
  if (req.tooLarge) {
    out.bytes(storeFailed(e, req, ALLOC_TOO_LARGE, true));
    return;
  }
  const exptime = req.has(M.T) ? e.absoluteExptime(req.exptime) : 0;
  const h = req.badChunk ? -1 : allocValue(e, req, req.flags, exptime);
  if (req.badChunk) {
    out.bytes(REPLY.BAD_CHUNK);
    return;
  }
  if (h < 0) {
    out.bytes(storeFailed(e, req, h, true));
    return;
  }
  if (req.keyBinary) store.setUserBits(h, ITEM_KEY_BINARY);
  const result = storeItem(
    e,
    h,
    mode,
    hasCas ? req.cas : 0,
    req.has(M.I) && mode === "cas",
    req.explicitCas,
  );
  let code: string;
  if (result === REPLY.STORED) {
    if (req.noreply) return;
    code = "HD";
  } else if (result === REPLY.EXISTS) code = "EX";
  else if (result === REPLY.NOT_FOUND) code = "NF";
  else code = "NS";
  out.text(code);
  for (let i = 3; i < req.ntokens; i++) {
    const c = req.buf[req.tokStart[i]];
    if (c === M.O) opaque(out, req, i);
    else if (c === M.k) metaKey(out, req.keyBuf, req.keyStart, req.keyEnd, req.keyBinary);
    else if (c === M.c) {
      out.text(" c");
      out.uint(e.lastCas);
    }
  }
  out.crlf();
}

/** `md <key> <flags>*`. */
export function metaDelete(e: EngineBase, req: Request, out: Writer): void {
  const store = e.store;
  const h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
  let code: string;
  if (h < 0) {
    e.stats.deleteMisses++;
    code = "NF";
  } else if (req.cas >= 0 && e.clientCas(h) !== req.cas) {
    e.stats.deleteMisses++;
    code = "EX";
  } else if (req.has(M.I)) {
    if (req.has(M.T)) store.setExptime(h, e.absoluteExptime(req.exptime));
    store.setUserBits(h, (store.userBits(h) | ITEM_STALE) & ~ITEM_TOKEN_SENT);
    store.setCas(h, req.explicitCas >= 0 ? req.explicitCas : store.nextCas());
    e.observer?.stored(h);
    if (req.noreply) return;
    code = "HD";
  } else {
    e.stats.deleteHits++;
    e.stats.slab(SlabStat.DELETE_HITS, store.slabClass(h));
    store.unlink(h);
    e.observer?.deleted(req.keyBuf, req.keyStart, req.keyEnd);
    if (req.noreply) return;
    code = "HD";
  }
  out.text(code);
  missFlags(req, out, 2);
  out.crlf();
}

/** `ma <key> <flags>*`. */
export function metaArith(e: EngineBase, req: Request, out: Writer): void {
  const store = e.store;
  const incr = req.mode !== 68 && req.mode !== 45; // D or -
  let h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
  let created = false;
  let code = "";
  // The arithmetic made a new item (a longer result, or the old one held by a reply): memcached's
  // reply flags then read and set the old item's exptime (`t` shows it, `T` is lost).
  let oldExptime: number | null = null;
  if (h >= 0) {
    // An empty value is non-numeric before a CAS is compared (memcached's do_add_delta).
    if (req.cas > 0 && store.valueLength(h) > 0 && e.clientCas(h) !== req.cas) {
      code = "EX";
      h = -1;
    } else {
      const cls = store.slabClass(h);
      const r = e.addDelta(h, incr, req.delta, req.deltaBig);
      if (r === null) {
        out.bytes(REPLY.NON_NUMERIC);
        return;
      }
      if (r < 0) {
        out.bytes(REPLY.OUT_OF_MEMORY);
        return;
      }
      if (r !== h) oldExptime = store.exptime(r);
      h = r;
      if (req.explicitCas >= 0) store.setCas(h, req.explicitCas);
      if (incr) e.stats.incrHits++;
      else e.stats.decrHits++;
      e.stats.slab(incr ? SlabStat.INCR_HITS : SlabStat.DECR_HITS, cls);
    }
  } else if (req.has(M.N)) {
    h = e.createCounter(req, req.initialBig, 0, req.explicitCas);
    if (h < 0) {
      out.bytes(REPLY.VIVIFY_NO_MEMORY);
      return;
    }
    created = true;
  } else {
    if (incr) e.stats.incrMisses++;
    else e.stats.decrMisses++;
    code = "NF";
  }
  const mark = out.length;
  if (h < 0) {
    out.text(code);
    if (missFlags(req, out, 2, mark)) out.crlf();
    return;
  }
  const text = e.deltaResult;
  if (req.has(M.v)) {
    out.text("VA ");
    out.uint(text.length);
  } else out.text("HD");
  let changed = false;
  for (let i = 2; i < req.ntokens; i++) {
    switch (req.buf[req.tokStart[i]]) {
      case M.c:
        out.text(" c");
        out.uint(e.clientCas(h));
        break;
      case M.t: {
        out.text(" t");
        const exp = oldExptime ?? store.exptime(h);
        if (exp === 0) out.text("-1");
        else out.uint(toU32(exp - e.clock.now()));
        break;
      }
      case M.T:
        if (oldExptime !== null) oldExptime = e.absoluteExptime(req.exptime);
        else {
          store.setExptime(h, e.absoluteExptime(req.exptime));
          changed = true;
        }
        break;
      case M.N:
        if (created) {
          store.setExptime(h, e.absoluteExptime(req.vivify));
          changed = true;
        }
        break;
      case M.O:
        if (opaqueTooLong(req, i)) {
          // Refused in memcached's reply loop: the arithmetic (and the flags before it) done.
          opaqueRefused(out, mark);
          if (created || changed) e.observer?.stored(h);
          return;
        }
        opaque(out, req, i);
        break;
      case M.k:
        metaKey(out, req.keyBuf, req.keyStart, req.keyEnd, req.keyBinary);
        break;
    }
  }
  if (req.has(M.v)) {
    out.crlf();
    out.text(text);
  }
  out.crlf();
  if (created || changed) e.observer?.stored(h);
  if (req.noreply && !created) out.length = mark;
}

/** `me <key>`: the item's metadata line. */
export function metaDebug(e: EngineBase, req: Request, out: Writer): void {
  const store = e.store;
  const h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
  if (h < 0) {
    out.bytes(REPLY.EN);
    return;
  }
  const now = e.clock.now();
  out.text("ME ");
  const ko = store.keyOffset(h), kl = store.keyLength(h);
  if (store.userBits(h) & ITEM_KEY_BINARY) {
    out.reserve(((kl + 2) / 3) * 4 + 4);
    out.length = base64Encode(store.buffer(h), ko, ko + kl, out.buf, out.length);
  } else out.bytes(store.buffer(h), ko, ko + kl);
  const exp = store.exptime(h);
  out.text(
    ` exp=${exp === 0 ? -1 : now - exp} la=${now - store.lastAccess(h)} cas=${
      e.clientCas(h)
    } fetch=${store.fetched(h) ? "yes" : "no"} cls=${store.slabClass(h)} size=${
      store.itemSize(h)
    }\r\n`,
  );
}

/** C's unsigned 32-bit wrap of a (possibly negative) difference. */
function toU32(n: number): number {
  return n >>> 0;
}
