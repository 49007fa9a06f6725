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
import type { PutBack } from "../cleaning.ts";
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
 * {@linkcode PutBack} that sends the add on the cleaning's connection,
 * just before the key is forgotten (so every later request there comes
 * after it). Undecided (false: the pool cleans the key again later) when
 * no copy held the key and one could not be read (it failed, or, unless
 * another answered a miss, it is down or, for a primary, dirty for the key):
 * the server would answer that miss while only that copy holds the key, and
 * an add of it would be stored. A copy does not wait for a dirty primary or
 * copy (two servers restoring a key would wait on each other).
 */
export async function restoreFrom(
  core: RouterCore,
  server: Backend,
  key: Uint8Array,
): Promise<PutBack> {
  const guard = core.guard(key);
  const since = core.writeSeq;
  const binary = !isTextKey(key);
  const token = binary ? base64Key(key) : key;
  const sources = [core.primaryOf(key, 0, key.length), ...core.copiesOf(key, 0, key.length)];
  // A primary waits for its copies, not a copy for the others (two would wait on each other).
  const waits = core.servers.includes(server);
  let item: Reply | undefined, failed = false, unread = false, missed = false;
  for (const b of sources) {
    if (b === server) continue;
    if (!b.up || b.isDirty(key)) {
      unread ||= waits || !b.up;
      continue;
    }
    const r = await core.ask(b, Op.MG, fetchLine(token, binary)).catch(() => null);
    if (r !== null && r.kind === ReplyKind.VA) {
      item = r;
      break;
    }
    if (r !== null && r.kind === ReplyKind.EN) missed = true;
    else failed = true;
  }
  const undecided = item === undefined && (failed || (unread && !missed));
  return (client: Client) => {
    // A write since the item was read: it may predate it (a write that skipped the primary
    // while the key was dirty there does not keep it dirty).
    if (core.writtenSince(key, since)) return reread(core, server, key, client);
    if (undecided) return false;
    // A flush_all or a delete since: it must not come back.
    if (item !== undefined && core.guardHolds(guard)) {
      putBack(core, server, key, client, item, since);
    }
    return true;
  };
}

/** Rounds of {@linkcode reread}, and the pause between two. */
const REREADS = 4, REREAD_MS = 20;

/**
 * A write of `key` came while its item was read for the put-back: every
 * copy clean for it is read again, and the item goes back only when all
 * answer the same and no write was sent meanwhile. One copy alone is not
 * enough: a write failed over to the first clean copy reaches the others
 * only once it answered, so another one read first returns the old item
 * (the pipeline model test read such stale values back). Several rounds,
 * as those copies are on their way; false (undecided) when a copy failed
 * or they still differ, true when nothing is to be put back (none holds
 * the key, or writes kept coming: the next one lands on the server).
 */
async function reread(
  core: RouterCore,
  server: Backend,
  key: Uint8Array,
  client: Client,
): Promise<boolean> {
  const binary = !isTextKey(key);
  const token = binary ? base64Key(key) : key;
  let written = false;
  for (let round = 0; round < REREADS; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, REREAD_MS));
    const guard = core.guard(key);
    const since = core.writeSeq;
    const sources = [core.primaryOf(key, 0, key.length), ...core.copiesOf(key, 0, key.length)]
      .filter((b) => b !== server && b.up && !b.isDirty(key));
    if (sources.length === 0) return false;
    const got = await Promise.all(
      sources.map((b) => core.ask(b, Op.MG, fetchLine(token, binary)).catch(() => null)),
    );
    if (got.some((r) => r === null || (r.kind !== ReplyKind.VA && r.kind !== ReplyKind.EN))) {
      return false;
    }
    const item = got[0] as Reply;
    written = core.writtenSince(key, since);
    if (written || !got.every((r) => sameItem(r as Reply, item))) continue;
    if (item.kind === ReplyKind.VA && core.guardHolds(guard)) {
      putBack(core, server, key, client, item, since);
    }
    return true;
  }
  return written;
}

/** True when `a` and `b` are both misses, or hits with the same flags and value. */
function sameItem(a: Reply, b: Reply): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind !== ReplyKind.VA) return true;
  const x = a.value as Uint8Array, y = b.value as Uint8Array;
  if (a.flags !== b.flags || x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Send `item`, read at write count `since`, to `server` as an add on the cleaning's `client`. */
function putBack(
  core: RouterCore,
  server: Backend,
  key: Uint8Array,
  client: Client,
  item: Reply,
  since: number,
): void {
  if (server.marked(key)) return; // a later cleaning delete puts its own item back
  const binary = !isTextKey(key);
  const parts = addParts(
    binary ? base64Key(key) : key,
    binary,
    item.value as Uint8Array,
    item.flags,
    ttlToExptime(item.ttl),
  );
  // Onto a copy, it is a copy of every write sent so far (see copiedSince).
  if (!core.servers.includes(server)) core.copied(key, since);
  client.requestFrame(Op.MS, parts, (_buf, _start, _length, parser) => {
    if (parser.kind === ReplyKind.HD) core.stats.repairs++;
  }, () => server.lost(key)); // it may still land late, as a repair's (above)
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
