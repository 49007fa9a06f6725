/**
 * Copies of an item back onto a server that lost it (read repair): an add,
 * so a newer value there is never overwritten, and skipped when a flush_all
 * or a delete of the key came since the item was read ({@linkcode RepairGuard}).
 * @module
 */

import { type Client, type Reply, ReplyKind } from "../../client/mod.ts";
import {
  ascii,
  base64Decode,
  base64Key,
  isTextKey,
  MAX_KEY_LENGTH,
  Op,
} from "../../protocol/mod.ts";
import { log } from "../../log.ts";
import type { Backend } from "../pool.ts";
import {
  BINARY_FLAG,
  CRLF,
  decimal,
  fetchLine,
  FLAGS_PREFIX,
  REPAIR_FLAGS,
  TTL_PREFIX,
  ttlToExptime,
  W_MS,
} from "../lines.ts";
import type { RepairGuard, RouterCore } from "./core.ts";

/**
 * Copy an item to its primary, unless the primary got one meanwhile
 * (`ms` mode E is an add). Resolves with the primary's reply (HD c<cas>)
 * or null when it failed or was not needed. `counted`: a repair in the
 * stats (a refill's copies count as refill items instead).
 */
export function repair(
  core: RouterCore,
  guard: RepairGuard,
  primary: Backend,
  keyToken: Uint8Array,
  binary: boolean,
  value: Uint8Array,
  flags: number,
  exptime: number,
  counted = true,
): Promise<Reply | null> {
  // A flush_all or a delete since the item was read: copying it would resurrect it.
  if (!core.guardHolds(guard)) {
    return Promise.resolve(null);
  }
  const parts = addParts(keyToken, binary, value, flags, exptime);
  return core.ask(primary, Op.MS, parts).then((r) => {
    if (r.kind === ReplyKind.HD) {
      if (counted) core.stats.repairs++;
      log.debug(`proxy: repaired ${primary.name} from backup`);
      return r;
    }
    if (r.kind !== ReplyKind.NS) core.stats.repairErrors++;
    return null;
  }, () => {
    // Timed out or cut: the add may still land there late, after a delete of the key sent
    // since on another connection, and bring the item back. The key is lost there, as a
    // write's would be, so it is cleaned once such bytes can no longer arrive.
    primary.lost(keyOf(keyToken, binary));
    core.stats.repairErrors++;
    return null;
  });
}

/** The add (`ms <key> <len> ME c F<flags> T<exptime>`, value) a repair sends. */
function addParts(
  keyToken: Uint8Array,
  binary: boolean,
  value: Uint8Array,
  flags: number,
  exptime: number,
): Uint8Array[] {
  const parts = [
    W_MS,
    keyToken,
    ascii(" "),
    decimal(value.length),
    REPAIR_FLAGS,
    FLAGS_PREFIX,
    decimal(flags),
    TTL_PREFIX,
    decimal(exptime),
  ];
  if (binary) parts.push(BINARY_FLAG);
  parts.push(CRLF, value, CRLF);
  return parts;
}

/**
 * The item to put back on `server` once the cleaning delete of `key`
 * there (it changed elsewhere) is answered: the first of the key's primary
 * and copies that is up, clean for it and holds it, read now. Without it a
 * primary answers a miss for a key only the copies hold, and a conditional
 * write or read of it pipelined ahead of another write of the key can only
 * be answered with that miss (the fallback cannot run behind the later
 * write: writes.ts repairThenRetry); a copy (whose refill skips a key its
 * primary lacks) would answer a miss as the first clean copy, and an add
 * checked there would be stored (writes.ts checkAdd). Resolves with the
 * function that sends the add on the cleaning's connection, just before
 * the key is forgotten (so every later request there comes after it), or
 * null when none holds the key.
 */
export async function restoreFrom(
  core: RouterCore,
  server: Backend,
  key: Uint8Array,
): Promise<((client: Client) => void) | null> {
  const guard = core.guard(key);
  const since = core.writeSeq;
  const binary = !isTextKey(key);
  const token = binary ? base64Key(key) : key;
  const sources = [core.primaryOf(key, 0, key.length), ...core.copiesOf(key, 0, key.length)];
  let item: Reply | undefined;
  for (const b of sources) {
    if (b === server || !b.up || b.isDirty(key) || b.restoring(key)) continue;
    const r = await core.ask(b, Op.MG, fetchLine(token, binary)).catch(() => null);
    if (r !== null && r.kind === ReplyKind.VA) {
      item = r;
      break;
    }
  }
  if (item === undefined) return null;
  const parts = addParts(
    token,
    binary,
    item.value as Uint8Array,
    item.flags,
    ttlToExptime(item.ttl),
  );
  return (client: Client) => {
    // A flush_all, a delete or a write since the item was read: it must not come back (a
    // write that skipped the primary while the key was dirty there does not keep it dirty).
    if (!core.guardHolds(guard) || core.writtenSince(key, since)) return;
    // Onto a copy, it is a copy of every write sent so far (see copiedSince).
    if (!core.servers.includes(server)) core.copied(key, since);
    client.requestFrame(Op.MS, parts, (_buf, _start, _length, parser) => {
      if (parser.kind === ReplyKind.HD) core.stats.repairs++;
    }, () => server.lost(key)); // it may still land late, as a repair's (above)
  };
}

/** The key a (meta, maybe base64) key token names. */
function keyOf(keyToken: Uint8Array, binary: boolean): Uint8Array {
  if (!binary) return keyToken;
  const out = new Uint8Array(MAX_KEY_LENGTH);
  return out.subarray(0, base64Decode(keyToken, 0, keyToken.length, out));
}

/** Copy a key from a backup to its primary (after a touch found it only on the backup). */
export function repairFrom(
  core: RouterCore,
  backup: Backend,
  primary: Backend,
  key: Uint8Array,
): void {
  const guard = core.guard(key);
  core.ask(backup, Op.MG, fetchLine(key, false)).then((item) => {
    if (item.kind !== ReplyKind.VA) return;
    repair(
      core,
      guard,
      primary,
      key,
      false,
      item.value as Uint8Array,
      item.flags,
      ttlToExptime(item.ttl),
    );
  }, () => {});
}
