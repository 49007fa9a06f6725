/**
 * Reads from the backups: the per-key fallback of get/gets/gat/gats when a
 * primary is down, failed, or (unless `--no-miss-fallback`) missed, with
 * the hit repaired onto a primary that is up.
 * @module
 */

import { type Reply, ReplyKind } from "../../client/mod.ts";
import { Op, type OpCode, REPLY } from "../../protocol/mod.ts";
import type { Backend } from "../pool.ts";
import {
  CRLF,
  decimal,
  FETCH_FLAGS,
  FETCH_FLAGS_CAS,
  TTL_PREFIX,
  ttlToExptime,
  valueBlock,
  W_MG,
} from "../lines.ts";
import { DOWN, type RouterCore } from "./core.ts";
import { repair } from "./repair.ts";

/** Per-key fallback for a multi-get, then the reply in key order. */
export async function finishMany(
  core: RouterCore,
  op: OpCode,
  keys: Uint8Array[],
  owner: Backend[],
  items: (Uint8Array | null)[],
  failed: boolean[],
  exptime: number | null,
  since: number,
  early?: readonly (Promise<Uint8Array | null | undefined> | undefined)[],
): Promise<Uint8Array[]> {
  const found = await lookupMany(core, op, keys, owner, items, failed, exptime, since, early);
  if (found.unreachable && found.hits.length === 0) throw DOWN;
  core.countHits(found.hits.length, keys.length);
  found.hits.push(REPLY.END);
  return found.hits;
}

/** What {@linkcode lookupMany} found. */
export interface Lookups {
  /** The VALUE blocks of the hits, in key order. */
  hits: Uint8Array[];
  /** A key whose primary failed could not be looked up in any backup either. */
  unreachable: boolean;
}

/**
 * The misses of a multi-get (or of one of its parts) looked up in the
 * backups when their primary failed (or, with miss fallback, missed);
 * `items` holds the primaries' hits and gets the backups'. Counts nothing.
 * `since`: the core's write count when the multi-get was sent. `early`:
 * lookups already under way, per key (see {@linkcode lookUp}).
 */
export async function lookupMany(
  core: RouterCore,
  op: OpCode,
  keys: Uint8Array[],
  owner: Backend[],
  items: (Uint8Array | null)[],
  failed: boolean[],
  exptime: number | null,
  since: number,
  early?: readonly (Promise<Uint8Array | null | undefined> | undefined)[],
): Promise<Lookups> {
  const lookups: Promise<void>[] = [];
  let unreachable = false;
  for (let i = 0; i < keys.length; i++) {
    if (items[i] !== null) continue;
    if (!failed[i] && (!core.missFallback || !core.hasCopies)) continue;
    const found = early?.[i] ??
      lookUp(core, op, keys[i], exptime, owner[i], !failed[i], since);
    lookups.push(found.then((item) => {
      if (item !== undefined) items[i] = item;
      else if (failed[i]) unreachable = true;
    }));
  }
  await Promise.all(lookups);
  const hits: Uint8Array[] = [];
  for (const it of items) if (it !== null) hits.push(it);
  return { hits, unreachable };
}

/**
 * One key looked up in the backups ({@linkcode getFromBackups}): its VALUE
 * block, null, or undefined when no backup could be asked. Never rejects.
 */
export function lookUp(
  core: RouterCore,
  op: OpCode,
  key: Uint8Array,
  exptime: number | null,
  primary: Backend,
  primaryUp: boolean,
  since: number,
): Promise<Uint8Array | null | undefined> {
  return getFromBackups(core, op, [key], exptime, primary, primaryUp, since).then(
    (found) => found[0],
    () => undefined,
  );
}

/**
 * Look keys up in the backups, in order. Returns a VALUE block (line,
 * data, CRLF) or null per key; rejects when no backup could be asked.
 * `primaryUp`: the primary answered (a miss), so it is repaired.
 * `since`: the core's write count when the read was sent; a key written
 * after it is a miss (see {@linkcode RouterCore.writtenSince}).
 */
export async function getFromBackups(
  core: RouterCore,
  op: OpCode,
  keys: Uint8Array[],
  exptime: number | null,
  primary: Backend,
  primaryUp: boolean,
  since: number,
): Promise<(Uint8Array | null)[]> {
  const withCas = op === Op.GETS || op === Op.GATS;
  const out: (Uint8Array | null)[] = [];
  for (const key of keys) {
    const retry = primaryUp ? core.slotHolds.retrying(key, since) : undefined;
    if (retry !== undefined) {
      const again = await afterRetry(core, retry, key, primary, since, withCas, exptime);
      if (again !== undefined) {
        out.push(again);
        continue;
      }
    }
    const guard = core.guard(key);
    let asked = false;
    let found: Uint8Array | null = null;
    for (const b of core.copiesOf(key, 0, key.length)) {
      if (core.copiedSince(key, since)) {
        asked = true;
        break;
      }
      if (!b.up || b.isDirty(key)) continue;
      let r: Reply;
      try {
        r = await core.ask(b, Op.MG, fetchParts(key, withCas, exptime));
      } catch {
        continue;
      }
      asked = true;
      if (r.kind !== ReplyKind.VA) continue;
      core.stats.fallbacks++;
      const value = r.value as Uint8Array;
      let cas = r.cas;
      // A write sent since the read (checked above, just before the mg was sent) reaches `b`
      // behind it, so this is the item from before it; the primary may hold that write already
      // (not repaired over it).
      if (primaryUp && primary.up && !core.writtenSince(key, since)) {
        // gat's new exptime, else the remaining TTL (mg's t reports the old one under T).
        const exp = exptime ?? ttlToExptime(r.ttl);
        const repaired = repair(core, guard, primary, key, false, value, r.flags, exp);
        // A CAS the client can use with the primary: wait for the repair's.
        if (withCas) cas = (await repaired)?.cas ?? cas;
      }
      // The copy's own CAS: a cas with it must go to this copy (tokens.ts).
      if (withCas && cas !== undefined && cas === r.cas) core.copyTokens.gave(key, b, cas);
      found = valueBlock(key, r.flags, value, withCas ? cas : undefined);
      break;
    }
    if (!asked && !primaryUp) throw DOWN;
    out.push(found);
  }
  return out;
}

/**
 * A read that missed on the primary behind a conditional write of its key
 * being repaired and retried there: the backups still hold the item from
 * before that write, which memcached ran first. Once the retry is in, the
 * primary answers (a write sent after the read meanwhile: a miss, see
 * {@linkcode RouterCore.writtenSince}); undefined: ask the backups as usual
 * (the primary missed again, failed, or the key went dirty there).
 */
async function afterRetry(
  core: RouterCore,
  retry: Promise<void>,
  key: Uint8Array,
  primary: Backend,
  since: number,
  withCas: boolean,
  exptime: number | null,
): Promise<Uint8Array | null | undefined> {
  await retry;
  if (core.writtenSince(key, since)) return null;
  if (!primary.up || primary.isDirty(key)) return undefined;
  const r = await core.ask(primary, Op.MG, fetchParts(key, withCas, exptime)).catch(() => null);
  if (r === null || r.kind !== ReplyKind.VA) return undefined;
  return valueBlock(key, r.flags, r.value as Uint8Array, withCas ? r.cas : undefined);
}

/** The `mg` that fetches `key` as a get/gets (gat/gats with `exptime`) reply needs. */
function fetchParts(key: Uint8Array, withCas: boolean, exptime: number | null): Uint8Array[] {
  const parts = [W_MG, key, withCas ? FETCH_FLAGS_CAS : FETCH_FLAGS];
  if (exptime !== null) parts.push(TTL_PREFIX, decimal(exptime));
  parts.push(CRLF);
  return parts;
}
