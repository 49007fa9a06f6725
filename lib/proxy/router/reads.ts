/**
 * Reads: get/gets/gat/gats (one key or many, fanned out per primary),
 * mg and me. A primary that is down, fails or times out, or (unless
 * `--no-miss-fallback`) answers a miss, is backed by the key's copies in
 * order (its server in each other zone, then the backups); a copy's hit is returned and repaired onto a primary that is up.
 * gets/gats/mg-with-`c` answered from a backup while the primary is up:
 * the primary is repaired first and the CAS returned is the primary's, so a
 * following `cas` (which goes to the primary) works.
 * @module
 */

import { type Reply, ReplyKind } from "../../client/mod.ts";
import {
  carveCopy,
  isErrorKind,
  Item,
  Op,
  REPLY,
  type ReplyParser,
  type Request,
} from "../../protocol/mod.ts";
import type { Backend } from "../pool.ts";
import { fetchLine, ttlToExptime, withoutToken } from "../lines.ts";
import { copyOf, DOWN, EMPTY_PARTS, type ReplySink, type RouterCore } from "./core.ts";
import { repair } from "./repair.ts";
import { touchBackups } from "./fanout.ts";
import { getFromBackups } from "./fallback.ts";
import { getMany, SINGLE_KEYS } from "./multiget.ts";
import { getInParts, writesParts } from "./multiget_parts.ts";

/** get/gets/gat/gats: one key straight to its primary, several fanned out per primary. */
export function get(core: RouterCore, req: Request, raw: Uint8Array, sink: ReplySink): void {
  const nkeys = req.ntokens - req.firstKey;
  if (nkeys <= 0) {
    sink.reply(REPLY.END); // `gat 10` with no key: memcached answers END
    return;
  }
  core.stats.gets += nkeys;
  const ticket = sink.reserve();
  const buf = req.buf;
  const ts = req.tokStart, te = req.tokEnd;
  if (nkeys === 1) {
    const primary = core.primaryOf(buf, ts[req.firstKey], te[req.firstKey]);
    if (!core.hasCopies) {
      // Nothing to fall back to: a plain relay.
      core.callFrame(primary, req.op, [raw], (rbuf, start, length, parser) => {
        if (parser.kind === ReplyKind.VALUES) core.countHits(parser.count, 1);
        sink.fillFrame(ticket, rbuf, start, length);
      }, () => core.noBackend(sink, ticket));
      return;
    }
    const op = req.op;
    const key = carveCopy(buf, ts[req.firstKey], te[req.firstKey]);
    const exptime = op === Op.GAT || op === Op.GATS ? req.exptime : null;
    const since = core.writeSeq;
    const fromBackups = () => {
      getFromBackups(core, op, [key], exptime, primary, false, since).then((items) => {
        core.countHits(items[0] === null ? 0 : 1, 1);
        sink.fill(ticket, items[0] === null ? REPLY.END : [items[0], REPLY.END]);
      }, () => core.noBackend(sink, ticket));
    };
    const send = (raw: Uint8Array) => {
      // Changed elsewhere and not cleaned on the primary yet: the backups hold the truth.
      if (primary.isDirty(key)) return fromBackups();
      core.callFrame(primary, op, [raw], (rbuf, start, length, parser) => {
        if (parser.kind === ReplyKind.VALUES && !onlyKey(parser, rbuf, key)) {
          // Another key's item (a backend out of step): never relayed, the copies answer.
          core.stats.backendErrors++;
          return fromBackups();
        }
        if (parser.kind === ReplyKind.VALUES && parser.count === 0 && core.missFallback) {
          getFromBackups(core, op, [key], exptime, primary, true, since).then((items) => {
            core.countHits(items[0] === null ? 0 : 1, 1);
            sink.fill(ticket, items[0] === null ? REPLY.END : [items[0], REPLY.END]);
          }, () => sink.fill(ticket, REPLY.END));
          return;
        }
        if (parser.kind === ReplyKind.VALUES) core.countHits(parser.count, 1);
        if (exptime !== null && parser.kind === ReplyKind.VALUES && parser.count > 0) {
          touchBackups(core, key, key, false, exptime);
        }
        sink.fillFrame(ticket, rbuf, start, length);
      }, fromBackups);
    };
    const retry = core.slotHolds.retrying(key, since);
    if (retry !== undefined) {
      // A conditional write of the key is being repaired and retried on the primary: sent now,
      // this read could land between the repair and the retry (the item without the write).
      const copy = copyOf(raw);
      retry.then(() => {
        if (!core.writtenSince(key, since)) return send(copy);
        core.countHits(0, 1); // a write sent after this read is on the primary by now
        sink.fill(ticket, REPLY.END);
      });
      return;
    }
    send(raw);
    return;
  }
  // A long one is written in parts: a client that reads slowly cannot make the proxy hold it whole.
  const parts = nkeys > SINGLE_KEYS || sink.partsFor?.(nkeys, ticket) === true;
  if (parts && writesParts(sink)) getInParts(core, req, nkeys, ticket, sink);
  else getMany(core, req, nkeys, ticket, sink);
}

/** A get reply of `key` alone: no item, or one item of that key. */
function onlyKey(parser: ReplyParser, buf: Uint8Array, key: Uint8Array): boolean {
  if (parser.count === 0) return true;
  if (parser.count !== 1) return false;
  const ks = parser.items[Item.KEY_START], ke = parser.items[Item.KEY_END];
  if (ke - ks !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (buf[ks + i] !== key[i]) return false;
  return true;
}

/** mg: like get, with the client's own flags kept for the backup's answer. */
export function metaGet(core: RouterCore, req: Request, raw: Uint8Array, sink: ReplySink): void {
  core.stats.gets++;
  const ticket = sink.reserve();
  const primary = core.primaryOf(req.keyBuf, req.keyStart, req.keyEnd);
  const quiet = req.noreply;
  const parts = quiet ? withoutToken(req, req.flagToken(113 /* q */)) : [raw];
  if (!core.hasCopies || req.has(78 /* N: vivify on miss stays local */)) {
    core.call(primary, Op.MG, parts, (r) => {
      core.countHits(r.kind === ReplyKind.VA || r.kind === ReplyKind.HD ? 1 : 0, 1);
      sink.fill(ticket, quiet && r.kind === ReplyKind.EN ? EMPTY_PARTS : r.bytes);
    }, () => core.noBackend(sink, ticket));
    return;
  }
  const copy = parts.length === 1 ? [copyOf(parts[0])] : parts.map(copyOf);
  const keyToken = carveCopy(req.buf, req.tokStart[1], req.tokEnd[1]);
  const key = carveCopy(req.keyBuf, req.keyStart, req.keyEnd);
  const binary = req.keyBinary;
  const wantsCas = req.has(99 /* c */);
  const answer = (r: Reply | null) => {
    // null: a miss everywhere (the primary failed, the backups had nothing).
    const hit = r !== null && r.kind !== ReplyKind.EN;
    core.countHits(hit ? 1 : 0, 1);
    if (quiet && !hit) sink.fill(ticket, EMPTY_PARTS);
    else sink.fill(ticket, r === null ? REPLY.EN : r.bytes);
  };
  const since = core.writeSeq;
  const fromBackups = (primaryUp: boolean, miss: Reply | null) => {
    metaGetFromBackups(core, copy, keyToken, key, binary, wantsCas, primary, primaryUp, since).then(
      (r) => answer(r ?? miss),
      () => miss === null ? core.noBackend(sink, ticket) : answer(miss),
    );
  };
  const ttl = req.has(84 /* T */) ? req.exptime : null;
  const send = (parts: readonly Uint8Array[]) => {
    // Changed elsewhere and not cleaned on the primary yet: the backups hold the truth.
    if (primary.isDirty(key)) return fromBackups(false, null);
    core.call(primary, Op.MG, parts, (r) => {
      if (r.kind === ReplyKind.EN && core.missFallback) fromBackups(true, r);
      else {
        if (ttl !== null && (r.kind === ReplyKind.VA || r.kind === ReplyKind.HD)) {
          touchBackups(core, keyToken, key, binary, ttl);
        }
        answer(r);
      }
    }, () => fromBackups(false, null));
  };
  const retry = core.slotHolds.retrying(key, since);
  if (retry !== undefined) {
    // As get's: the read must not land between a conditional write's repair and its retry.
    retry.then(() => core.writtenSince(key, since) ? answer(null) : send(copy));
    return;
  }
  send(parts);
}

/**
 * The client's mg on the backups; a hit is repaired onto an up primary.
 * A key written since the mg was sent (`since`) is a miss (see
 * {@linkcode RouterCore.writtenSince}).
 */
async function metaGetFromBackups(
  core: RouterCore,
  parts: Uint8Array[],
  keyToken: Uint8Array,
  key: Uint8Array,
  binary: boolean,
  wantsCas: boolean,
  primary: Backend,
  primaryUp: boolean,
  since: number,
): Promise<Reply | null> {
  const retry = primaryUp ? core.slotHolds.retrying(key, since) : undefined;
  if (retry !== undefined) {
    // Behind a conditional write being retried on the primary: the backups still hold the item
    // from before it (see fallback.ts, afterRetry); the primary answers once the retry is in.
    await retry;
    if (core.writtenSince(key, since)) return null;
    if (primary.up && !primary.isDirty(key)) {
      const again = await core.ask(primary, Op.MG, parts).catch(() => null);
      if (again !== null && again.kind !== ReplyKind.EN && !isErrorKind(again.kind)) return again;
    }
  }
  const guard = core.guard(key);
  let asked = false;
  for (const b of core.copiesOf(key, 0, key.length)) {
    if (core.copiedSince(key, since)) return null;
    if (!b.up || b.isDirty(key)) continue;
    let r: Reply;
    try {
      r = await core.ask(b, Op.MG, parts);
    } catch {
      continue;
    }
    asked = true;
    if (r.kind === ReplyKind.EN || isErrorKind(r.kind)) continue;
    core.stats.fallbacks++;
    // The copy's own CAS, returned: a cas with it must go to this copy (tokens.ts).
    const copyCas = () => {
      const cas = wantsCas ? r.cas : undefined;
      if (cas !== undefined) core.copyTokens.gave(key, b, cas);
      return r;
    };
    // A write sent since this mg (checked above, just before it was sent) reaches `b` behind it
    // on the same connection, directly or copied on its primary's later reply: the reply is the
    // item from before that write, as memcached's. But the primary may hold that write by now,
    // so the old item is not copied there.
    if (!primaryUp || !primary.up || core.writtenSince(key, since)) return copyCas();
    // Read what a repair needs (value, flags, TTL), then copy it back.
    const item = await core.ask(b, Op.MG, fetchLine(keyToken, binary)).catch(() => null);
    if (item === null || item.kind !== ReplyKind.VA) return copyCas();
    const repaired = repair(
      core,
      guard,
      primary,
      keyToken,
      binary,
      item.value as Uint8Array,
      item.flags,
      ttlToExptime(item.ttl),
    );
    if (!wantsCas) return r;
    // The CAS must be the primary's: ask the primary again once repaired, unless a write of
    // the key was sent since the mg (it is on the primary by then: the mg would return it).
    if ((await repaired) === null || core.writtenSince(key, since)) return copyCas();
    const again = await core.ask(primary, Op.MG, parts).catch(() => null);
    return again !== null && again.kind !== ReplyKind.EN ? again : copyCas();
  }
  if (!asked && !primaryUp) throw DOWN;
  return null;
}

/** me (debug): the primary's answer as is. */
export function relay(core: RouterCore, req: Request, raw: Uint8Array, sink: ReplySink): void {
  const ticket = sink.reserve();
  const primary = core.primaryOf(req.keyBuf, req.keyStart, req.keyEnd);
  core.call(primary, req.op, [raw], (r) => sink.fill(ticket, r.bytes), () => {
    core.noBackend(sink, ticket);
  });
}
