/**
 * The text protocol's classic commands (storage, retrieval, delete, touch,
 * incr/decr, flush_all, shutdown): memcached's replies, written from the
 * engine's protocol-neutral operations.
 * @module
 */

import { Op, REPLY, type Request, type Writer } from "../protocol/mod.ts";
import type { EngineBase } from "./engine.ts";
import { Action, type Session } from "./session.ts";
import { SlabStat } from "./stats.ts";
import { PRESSED_OUTPUT } from "./output_budget.ts";
import { storeValue } from "./storage.ts";

/**
 * Reply bytes after which a multi-key get goes on in a later part (the
 * connection's output bound): one `get` of thousands of large values costs
 * about this much, as memcached, which sends the items themselves, not
 * copies.
 */
const GET_PART = 1048576;

/** A part's size: smaller while the thread's output budget is used up (output_budget.ts). */
function getPart(e: EngineBase): number {
  const b = e.outputBudget;
  return b.bytes > b.limit ? PRESSED_OUTPUT : GET_PART;
}

/**
 * `get`, `gets`, `gat`, `gats`: VALUE lines for the hits, then END. Past
 * {@linkcode GET_PART} of reply (less under pressure) the remaining keys are copied out of the
 * (shared) request and fetched by `session.more` once the reply so far is
 * written, part by part.
 */
export function textGet(e: EngineBase, req: Request, out: Writer, session: Session): void {
  const withCas = req.op === Op.GETS || req.op === Op.GATS;
  const touch = req.op === Op.GAT || req.op === Op.GATS;
  const exptime = touch ? e.absoluteExptime(req.exptime) : 0;
  const buf = req.buf;
  const limit = out.length + getPart(e);
  for (let i = req.firstKey; i < req.ntokens; i++) {
    const h = e.fetch(buf, req.tokStart[i], req.tokEnd[i], touch, exptime);
    if (h >= 0) valueLine(e, out, h, withCas);
    if (out.length > limit && i + 1 < req.ntokens) {
      const rest = buf.slice(req.tokStart[i + 1], req.tokEnd[req.ntokens - 1]);
      let at = 0;
      session.more = (o) => {
        const end = o.length + getPart(e);
        while (at < rest.length && o.length <= end) {
          while (at < rest.length && rest[at] === 32) at++;
          let k = at;
          while (k < rest.length && rest[k] !== 32) k++;
          if (k > at) {
            const h = e.fetch(rest, at, k, touch, exptime);
            if (h >= 0) valueLine(e, o, h, withCas);
          }
          at = k;
        }
        if (at < rest.length) return false;
        o.bytes(REPLY.END);
        return true;
      };
      return;
    }
  }
  out.bytes(REPLY.END);
}

/** "VALUE key flags bytes [cas]\r\n" + data "\r\n". */
function valueLine(e: EngineBase, out: Writer, h: number, withCas: boolean): void {
  const store = e.store;
  const page = store.buffer(h);
  const ko = store.keyOffset(h), vo = store.valueOffset(h), vlen = store.valueLength(h);
  out.text("VALUE ");
  out.bytes(page, ko, ko + store.keyLength(h));
  out.byte(32);
  out.uint(store.flags(h));
  out.byte(32);
  out.uint(vlen);
  if (withCas) {
    out.byte(32);
    out.uint(e.clientCas(h));
  }
  out.crlf();
  out.bytes(page, vo, vo + vlen + 2);
}

/** `set`, `add`, `replace`, `append`, `prepend`, `cas`. */
export function textUpdate(e: EngineBase, req: Request, out: Writer): void {
  const cas = req.op === Op.CAS;
  out.bytes(storeValue(e, req, cas ? "cas" : req.op, cas ? req.cas : 0, req.op === Op.SET));
}

/** `delete <key>`. */
export function textDelete(e: EngineBase, req: Request, out: Writer): void {
  out.bytes(e.remove(req.keyBuf, req.keyStart, req.keyEnd, 0));
}

/** `touch <key> <exptime>`. */
export function textTouch(e: EngineBase, req: Request, out: Writer): void {
  const store = e.store;
  e.stats.cmdTouch++;
  const h = store.find(req.keyBuf, req.keyStart, req.keyEnd);
  if (h < 0) {
    e.stats.touchMisses++;
    out.bytes(REPLY.NOT_FOUND);
    return;
  }
  e.stats.touchHits++;
  e.stats.slab(SlabStat.TOUCH_HITS, store.slabClass(h));
  store.setExptime(h, e.absoluteExptime(req.exptime));
  store.bump(h);
  e.observer?.stored(h);
  out.bytes(REPLY.TOUCHED);
}

/** `incr` / `decr`: the new value, or the failure. */
export function textArith(e: EngineBase, req: Request, out: Writer): void {
  const r = e.delta(req, 0, true);
  if (r === REPLY.STORED) {
    out.text(e.deltaResult);
    out.crlf();
  } else out.bytes(r);
}

/** `flush_all [delay]` (refused under -F). Returns the connection's next action. */
export function flushCommand(e: EngineBase, req: Request, out: Writer): number {
  if (e.options.flushDisabled) {
    e.stats.cmdFlush++; // memcached counts the refused ones too
    out.bytes(REPLY.FLUSH_DISABLED);
    return Action.CONTINUE;
  }
  e.flushAll(req.exptime);
  out.bytes(REPLY.OK);
  return Action.CONTINUE;
}

/** `shutdown [graceful]` (-A). Returns the connection's next action. */
export function shutdownCommand(e: EngineBase, req: Request, out: Writer): number {
  if (!e.options.enableShutdown) {
    out.bytes(REPLY.SHUTDOWN_DISABLED);
    return Action.CONTINUE;
  }
  const graceful = req.ntokens === 2 && req.tokenIs(1, "graceful");
  if (graceful && e.options.gracefulBySignal) {
    Deno.kill(Deno.pid, "SIGUSR1"); // any thread: the main one stops (and saves) on it
    return Action.CLOSE;
  }
  if (req.ntokens === 1 || graceful) return Action.SHUTDOWN;
  out.bytes(REPLY.SHUTDOWN_BAD_MODE);
  return Action.CONTINUE;
}
