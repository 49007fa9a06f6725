/**
 * memcached's storage commands (set, add, replace, append, prepend, cas)
 * for every protocol: do_store_item's rules on the engine's store, the
 * counters and `watch` lines they produce, and the mutation observer told
 * of each stored item. The text, meta and binary commands reply from the
 * results; the new CAS is left in {@linkcode EngineBase.lastCas}.
 * @module
 */

import { Op, REPLY, type Request } from "../protocol/mod.ts";
import { ALLOC_TOO_LARGE } from "../store/mod.ts";
import type { EngineBase } from "./engine.ts";
import { ITEM_STALE, ITEM_TOKEN_SENT } from "./items.ts";
import { SlabStat } from "./stats.ts";

/**
 * A storage command of any protocol: the request's key, flags, exptime
 * (as the client sent it) and value, stored as memcached's do_store_item
 * in `mode` (an Op or "cas") with compare value `reqCas` (0 = none).
 * Returns the text reply naming the result (STORED, NOT_STORED, EXISTS,
 * NOT_FOUND, TOO_LARGE, NO_MEMORY, BAD_CHUNK); `e.lastCas` holds
 * the new CAS. `dropOld`: a failed allocation also unlinks the key (set).
 */
export function storeValue(
  e: EngineBase,
  req: Request,
  mode: number | "cas",
  reqCas: number,
  dropOld: boolean,
): Uint8Array {
  if (!e.watchers.active) return storeRequest(e, req, mode, reqCas, dropOld);
  // memcached's do_store_item looks the key up first: that fetch is logged too.
  const store = e.store;
  const old = store.find(req.keyBuf, req.keyStart, req.keyEnd);
  const oldClass = old >= 0 ? store.slabClass(old) : 0;
  const oldSize = old >= 0 ? store.valueLength(old) : 0;
  const reply = storeRequest(e, req, mode, reqCas, dropOld);
  if (reply !== REPLY.TOO_LARGE && reply !== REPLY.NO_MEMORY && reply !== REPLY.BAD_CHUNK) {
    const k = req.keyBuf;
    e.watchers.fetched(k, req.keyStart, req.keyEnd, old >= 0, oldClass, oldSize);
  }
  logStore(e, req, mode, reply, oldClass);
  return reply;
}

/** A `mutations` log line for a store and its result. */
function logStore(
  e: EngineBase,
  req: Request,
  mode: number | "cas",
  reply: Uint8Array,
  oldClass: number,
): void {
  const status = reply === REPLY.STORED
    ? 1
    : reply === REPLY.EXISTS
    ? 2
    : reply === REPLY.NOT_FOUND
    ? 3
    : reply === REPLY.TOO_LARGE
    ? 4
    : reply === REPLY.NO_MEMORY
    ? 5
    : 0;
  const cmd = mode === "cas" ? "cas" : STORE_CMD[mode] ?? "na";
  const h = status === 1 ? e.store.find(req.keyBuf, req.keyStart, req.keyEnd) : -1;
  e.watchers.stored(
    req.keyBuf,
    req.keyStart,
    req.keyEnd,
    status,
    cmd,
    req.exptime < 0 ? 0 : req.exptime >>> 0,
    h >= 0 ? e.store.slabClass(h) : oldClass,
    req.dataEnd - req.dataStart,
  );
}

/** The store itself, once the `watch` lines are seen to: counted, allocated, linked. */
function storeRequest(
  e: EngineBase,
  req: Request,
  mode: number | "cas",
  reqCas: number,
  dropOld: boolean,
): Uint8Array {
  e.stats.cmdSet++;
  if (e.prefixStats.enabled) e.prefixStats.recordSet(req.keyBuf, req.keyStart, req.keyEnd);
  if (req.tooLarge) return storeFailed(e, req, ALLOC_TOO_LARGE, dropOld);
  if (req.badChunk) return REPLY.BAD_CHUNK;
  const h = allocValue(e, req, req.flags, e.absoluteExptime(req.exptime));
  if (h < 0) return storeFailed(e, req, h, dropOld);
  return storeItem(e, h, mode, reqCas, false, -1);
}

/** Allocate an item for the request's key and copy its value in. */
export function allocValue(e: EngineBase, req: Request, flags: number, exptime: number): number {
  const store = e.store;
  const vlen = req.dataEnd - req.dataStart;
  const h = store.alloc(req.keyBuf, req.keyStart, req.keyEnd, flags, exptime, vlen);
  if (h < 0) return h;
  e.stats.slab(SlabStat.CMD_SET, store.slabClass(h)); // memcached: once the item has memory
  const vo = store.valueOffset(h);
  store.buffer(h).set(req.buf.subarray(req.dataStart, req.dataEnd), vo);
  return h;
}

/** A storage command could not get memory: the reply; for set, drop the stale item. */
export function storeFailed(
  e: EngineBase,
  req: Request,
  code: number,
  dropOld: boolean,
): Uint8Array {
  const reply = code === ALLOC_TOO_LARGE ? REPLY.TOO_LARGE : REPLY.NO_MEMORY;
  if (code === ALLOC_TOO_LARGE) e.stats.storeTooLarge++;
  else e.stats.storeNoMemory++;
  if (dropOld) {
    const old = e.store.find(req.keyBuf, req.keyStart, req.keyEnd);
    if (old >= 0) {
      e.store.unlink(old);
      e.observer?.deleted(req.keyBuf, req.keyStart, req.keyEnd);
    }
  }
  return reply;
}

/**
 * memcached's do_store_item: link the new unlinked item h according to
 * the mode. Returns the text reply (STORED, NOT_STORED, EXISTS,
 * NOT_FOUND). `reqCas` is the client's compare value (0 = none).
 * `newCas` >= 0 assigns an explicit CAS (meta E).
 */
export function storeItem(
  e: EngineBase,
  h: number,
  mode: number | "cas",
  reqCas: number,
  setStale: boolean,
  newCas: number,
): Uint8Array {
  const store = e.store;
  const buf = store.buffer(h);
  const ko = store.keyOffset(h);
  const old = store.find(buf, ko, ko + store.keyLength(h));
  e.lastCas = 0;
  // -C: the new item carries no CAS to compare (memcached's ITEM_set_cas does nothing).
  if (!e.casEnabled) reqCas = 0;
  if (old >= 0) {
    const oldCas = store.cas(old);
    const casRes = reqCas === 0
      ? "none"
      : reqCas === oldCas
      ? "match"
      : setStale && reqCas < oldCas
      ? "stale"
      : "bad";
    switch (mode) {
      case Op.ADD:
        store.update(old);
        store.free(h);
        return REPLY.NOT_STORED;
      case "cas":
        // memcached: a cas without a CAS to compare (0) counts as a bad value too.
        if (casRes === "match" || casRes === "stale") {
          e.stats.slab(SlabStat.CAS_HITS, store.slabClass(old));
        } else e.stats.slab(SlabStat.CAS_BADVAL, store.slabClass(old));
        if (casRes === "match") {
          e.stats.casHits++;
          return commit(e, h, newCas);
        }
        if (casRes === "stale") {
          e.stats.casHits++;
          store.setExptime(h, store.exptime(old));
          store.setUserBits(
            h,
            ITEM_STALE | (store.userBits(old) & ITEM_TOKEN_SENT) | store.userBits(h),
          );
          return commit(e, h, newCas);
        }
        e.stats.casBadval++;
        store.free(h);
        return REPLY.EXISTS;
      case Op.APPEND:
      case Op.PREPEND: {
        if (casRes !== "none" && casRes !== "match") {
          store.free(h);
          return REPLY.EXISTS;
        }
        const joined = concat(e, old, h, mode === Op.APPEND);
        store.free(h);
        if (joined < 0) return REPLY.NOT_STORED;
        return commit(e, joined, newCas);
      }
      default: // set, replace
        return commit(e, h, newCas);
    }
  }
  switch (mode) {
    case Op.ADD:
    case Op.SET:
      return commit(e, h, newCas);
    case "cas":
      e.stats.casMisses++;
      store.free(h);
      return REPLY.NOT_FOUND;
    default:
      store.free(h);
      return REPLY.NOT_STORED;
  }
}

/** Link a stored item (explicit CAS when newCas >= 0) and tell the observer. */
function commit(e: EngineBase, item: number, newCas: number): Uint8Array {
  const cas = e.store.link(item, newCas >= 0 ? newCas : undefined);
  e.lastCas = e.casEnabled ? cas : 0;
  e.observer?.stored(item);
  return REPLY.STORED;
}

/** New item = old value + the value of h (or h + old), with old's flags and exptime. */
function concat(e: EngineBase, old: number, h: number, append: boolean): number {
  const store = e.store;
  const oldLen = store.valueLength(old), addLen = store.valueLength(h);
  const ob = store.buffer(old), ok = store.keyOffset(old);
  const n = store.alloc(
    ob,
    ok,
    ok + store.keyLength(old),
    store.flags(old),
    store.exptime(old),
    oldLen + addLen,
    old,
  );
  if (n < 0) return n;
  const nb = store.buffer(n), no = store.valueOffset(n);
  // alloc kept old (never evicted), but may have remapped the buffers: re-read them.
  const oldBuf = store.buffer(old), oldVo = store.valueOffset(old);
  const addBuf = store.buffer(h), addVo = store.valueOffset(h);
  const first = append
    ? oldBuf.subarray(oldVo, oldVo + oldLen)
    : addBuf.subarray(addVo, addVo + addLen);
  const second = append
    ? addBuf.subarray(addVo, addVo + addLen)
    : oldBuf.subarray(oldVo, oldVo + oldLen);
  nb.set(first, no);
  nb.set(second, no + first.length);
  // As memcached's do_item_alloc for the joined item: the binary-key mark is not carried over
  // (a later `mg ... k` shows the key's bytes as they are).
  return n;
}

/** memcached's command names in item_store log lines. */
const STORE_CMD: Record<number, string> = {
  [Op.ADD]: "add",
  [Op.SET]: "set",
  [Op.REPLACE]: "replace",
  [Op.APPEND]: "append",
  [Op.PREPEND]: "prepend",
};
