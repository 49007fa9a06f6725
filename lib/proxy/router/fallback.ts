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
): Promise<Uint8Array[]> {
  const lookups: Promise<void>[] = [];
  let unreachable = false;
  for (let i = 0; i < keys.length; i++) {
    if (items[i] !== null) continue;
    if (!failed[i] && (!core.missFallback || !core.hasCopies)) continue;
    lookups.push(
      getFromBackups(core, op, [keys[i]], exptime, owner[i], !failed[i]).then((found) => {
        items[i] = found[0];
      }, () => {
        if (failed[i]) unreachable = true;
      }),
    );
  }
  await Promise.all(lookups);
  if (unreachable && items.every((x) => x === null)) throw DOWN;
  const parts: Uint8Array[] = [];
  let hits = 0;
  for (const it of items) {
    if (it !== null) {
      parts.push(it);
      hits++;
    }
  }
  core.countHits(hits, keys.length);
  parts.push(REPLY.END);
  return parts;
}

/**
 * Look keys up in the backups, in order. Returns a VALUE block (line,
 * data, CRLF) or null per key; rejects when no backup could be asked.
 * `primaryUp`: the primary answered (a miss), so it is repaired.
 */
export async function getFromBackups(
  core: RouterCore,
  op: OpCode,
  keys: Uint8Array[],
  exptime: number | null,
  primary: Backend,
  primaryUp: boolean,
): Promise<(Uint8Array | null)[]> {
  const withCas = op === Op.GETS || op === Op.GATS;
  const out: (Uint8Array | null)[] = [];
  for (const key of keys) {
    const guard = core.guard(key);
    let asked = false;
    let found: Uint8Array | null = null;
    for (const b of core.copiesOf(key, 0, key.length)) {
      if (!b.up || b.isDirty(key)) continue;
      const parts = [W_MG, key, withCas ? FETCH_FLAGS_CAS : FETCH_FLAGS];
      if (exptime !== null) parts.push(TTL_PREFIX, decimal(exptime));
      parts.push(CRLF);
      let r: Reply;
      try {
        r = await core.ask(b, Op.MG, parts);
      } catch {
        continue;
      }
      asked = true;
      if (r.kind !== ReplyKind.VA) continue;
      core.stats.fallbacks++;
      const value = r.value as Uint8Array;
      let cas = r.cas;
      if (primaryUp && primary.up) {
        // gat's new exptime, else the remaining TTL (mg's t reports the old one under T).
        const exp = exptime ?? ttlToExptime(r.ttl);
        const repaired = repair(core, guard, primary, key, false, value, r.flags, exp);
        // A CAS the client can use with the primary: wait for the repair's.
        if (withCas) cas = (await repaired)?.cas ?? cas;
      }
      found = valueBlock(key, r.flags, value, withCas ? cas : undefined);
      break;
    }
    if (!asked && !primaryUp) throw DOWN;
    out.push(found);
  }
  return out;
}
