/**
 * Commands that reach every copy of a key (delete, touch, md) and every
 * backend (flush_all). A delete reaches the backups once the primary
 * answered, so copies of earlier writes stay ahead of it. flush_all goes
 * to every backend at once; copies of earlier writes still on their way
 * are dropped, and a server that was down is flushed before it serves again.
 * @module
 */

import { type Reply, ReplyKind } from "../../client/mod.ts";
import {
  carveCopy,
  decodeAscii,
  isErrorKind,
  Op,
  REPLY,
  type Request,
} from "../../protocol/mod.ts";
import { errorText } from "../../transport/mod.ts";
import type { Backend } from "../pool.ts";
import {
  BINARY_FLAG,
  CRLF,
  decimal,
  deleteLine,
  EMPTY,
  patchCode,
  TTL_PREFIX,
  W_MG,
  withoutToken,
} from "../lines.ts";
import { copyOf, DOWN, EMPTY_PARTS, type ReplySink, type RouterCore, silenced } from "./core.ts";
import { repairFrom } from "./repair.ts";
import { keySlot } from "./slots.ts";

export function fanout(core: RouterCore, req: Request, raw: Uint8Array, sink: ReplySink): void {
  core.stats.writes++;
  const op = req.op;
  const meta = op === Op.MD;
  const noreply = !meta && req.noreply;
  const quiet = meta && req.noreply;
  const primary = core.primaryOf(req.keyBuf, req.keyStart, req.keyEnd);
  const ticket = sink.reserve();
  let parts: Uint8Array[];
  if (noreply) parts = withoutToken(req, req.ntokens - 1);
  else if (quiet) parts = withoutToken(req, req.flagToken(113 /* q */));
  else parts = [raw];
  if (!core.hasCopies) {
    core.call(primary, op, parts, (r) => {
      const drop = (noreply || quiet) && silenced(op, noreply, r.kind);
      sink.fill(ticket, drop ? EMPTY_PARTS : r.bytes);
    }, () => core.noBackend(sink, ticket));
    return;
  }
  const keyToken = carveCopy(req.buf, req.tokStart[1], req.tokEnd[1]);
  const key = carveCopy(req.keyBuf, req.keyStart, req.keyEnd);
  const binary = req.keyBinary;
  // Bumped when the delete arrives and again when the backups get it: a
  // repair that read a backup in between must not recreate the item. Until
  // the primary answered (or was skipped) no repair is made in the slot at
  // all: one read from a backup now would land on the primary after the
  // delete (RouterCore.deleting).
  const slot = op === Op.TOUCH ? -1 : keySlot(key);
  let underway = slot >= 0;
  /** The primary was not asked (down, or the key dirty there). */
  let skipped = false;
  const answered = () => {
    if (underway) core.deleting[slot]--;
    underway = false;
  };
  if (slot >= 0) {
    core.deletes[slot]++;
    core.deleting[slot]++;
  }
  parts = parts.map(copyOf);
  // md's own flags (C, I, ...) make no sense on a backup: a plain md there.
  const copyParts = meta ? deleteLine(keyToken, binary) : parts;
  const success = op === Op.DELETE
    ? ReplyKind.DELETED
    : op === Op.TOUCH
    ? ReplyKind.TOUCHED
    : ReplyKind.HD;
  // Backups get it once the primary answered: copies of earlier writes to
  // the same key (issued on the primary's replies) stay ahead of it.
  // A copy's answer: an error one (not applied there) leaves the backup's old item until it
  // is cleaned; a lost one may still land there late.
  type Copied = { r: Reply | null; b: Backend };
  const copied = (b: Backend, r: Reply): Copied => {
    if (!isErrorKind(r.kind)) return { r, b };
    b.markDirty(key);
    core.backupWriteFailed(b, decodeAscii(r.bytes, 0, Math.min(r.bytes.length, 200)).trim());
    return { r: null, b };
  };
  // `keep`: it went nowhere else either, so the copy keeps its item (writes.ts writeTo).
  const copyLost = (b: Backend, e: unknown, keep = false): Copied => {
    b.lost(key, keep);
    core.backupWriteFailed(b, errorText(e));
    return { r: null, b };
  };
  // `except`: every copy but that one (by index).
  const toBackups = (except = -1) => {
    answered();
    if (slot >= 0) core.deletes[slot]++;
    const replies: Promise<Copied>[] = [];
    const copies = core.copiesOf(key, 0, key.length);
    for (let i = 0; i < copies.length; i++) {
      if (i === except) continue;
      const b = copies[i];
      if (!b.up) {
        b.markDirty(key);
        continue;
      }
      replies.push(core.ask(b, op, copyParts).then((r) => copied(b, r), (e) => copyLost(b, e)));
    }
    return replies;
  };
  // The primary failed or was skipped: earlier writes of the key that failed over went to
  // the first clean copy, and their results reach the other copies only once it answered.
  // This goes the same way (that copy first, the others on its answer), or it would reach
  // them before such a write's copy, which would then bring the item back there. The others
  // are sent in the answer's callback, before any later reply from that copy is handled: a
  // read answered a miss there next would otherwise ask the others before this reached them.
  const failedOver = (): Promise<Copied[]> => {
    const copies = core.copiesOf(key, 0, key.length);
    const first = core.upBackup(copies, 0, key);
    if (first < 0) {
      // A primary skipped and no clean copy up: it goes nowhere and changes nothing, so no
      // server is marked (a copy that is down may hold the key's only item: its cleaning would
      // delete it). One sent to the primary may still land there: the copies miss it.
      if (!skipped) return Promise.all(toBackups());
      answered();
      return Promise.resolve([]);
    }
    if (skipped) primary.markDirty(key);
    const b = copies[first];
    if (slot >= 0) core.deletes[slot]++;
    return new Promise((resolve) => {
      const rest = (head: Copied) => {
        Promise.all(toBackups(first)).then((got) => resolve([head, ...got]));
      };
      core.call(b, op, copyParts, (r) => rest(copied(b, r)), (e) => {
        rest(copyLost(b, e, core.upBackup(copies, first + 1, key) < 0));
      });
    });
  };
  const answer = (bytes: Uint8Array) => {
    const drop = noreply || (quiet && bytes[0] === 72 && bytes[1] === 68); // HD
    sink.fill(ticket, drop ? EMPTY_PARTS : bytes);
  };
  // The primary missed (restarted empty?) or failed: a backup's success counts.
  const fromBackups = async (r: Reply | null) => {
    // A copy dirty for the key may still hold an item deleted since (its delete was lost):
    // its answer is not the key's state (a touch of a deleted key answered TOUCHED).
    const all = r === null ? await failedOver() : await Promise.all(toBackups());
    const got = all.filter((x) => !x.b.isDirty(key));
    const hit = got.find((x) => x.r !== null && x.r.kind === success);
    if (hit !== undefined) {
      if (op === Op.TOUCH && r !== null && primary.up) {
        repairFrom(core, hit.b, primary, key);
      }
      if (r === null) return (hit.r as Reply).bytes;
      // The primary's words, the backup's outcome (NF -> HD keeps md's flags).
      return op === Op.MD ? patchCode(r.bytes, "HD") : (hit.r as Reply).bytes;
    }
    if (r !== null) return r.bytes;
    const any = got.find((x) => x.r !== null);
    if (any === undefined) throw DOWN;
    return (any.r as Reply).bytes;
  };
  const done = (r: Reply | null) => {
    if (r !== null && r.kind === success) {
      const copies = toBackups();
      // --backup-writes sync: answered once every backup answered too.
      if (core.syncBackups) Promise.all(copies).then(() => answer(r.bytes));
      else answer(r.bytes);
      return;
    }
    // md's CAS did not match: the item stays, on the backups too.
    if (r !== null && r.kind === ReplyKind.EX) {
      answered();
      answer(r.bytes);
      return;
    }
    fromBackups(r).then(answer, () => core.noBackend(sink, ticket));
  };
  if (!primary.up || primary.isDirty(key)) {
    skipped = true; // marked dirty there once a copy takes it (failedOver)
    done(null);
    return;
  }
  core.call(primary, op, parts, done, () => {
    primary.invalidate(key);
    done(null);
  });
}

/**
 * flush_all: every backend at once; one that is down is flushed when it
 * returns. Copies of earlier writes still on their way are dropped (see
 * {@linkcode #epoch}).
 */
export function flushAll(core: RouterCore, req: Request, raw: Uint8Array, sink: ReplySink): void {
  const ticket = sink.reserve();
  const noreply = req.noreply;
  const parts = noreply ? withoutToken(req, req.ntokens - 1).map(copyOf) : [copyOf(raw)];
  if (req.exptime <= 0) core.epoch++;
  const all = [...core.servers, ...core.copies];
  const got: (Reply | null)[] = [];
  let pending = all.length;
  const one = (r: Reply | null, b: Backend) => {
    if (r === null) b.markAllDirty();
    got.push(r);
    if (--pending > 0) return;
    if (noreply) return sink.fill(ticket, EMPTY_PARTS);
    const ok = got.find((x) => x !== null && x.kind === ReplyKind.OK);
    if (ok !== undefined) return sink.fill(ticket, REPLY.OK);
    const any = got.find((x) => x !== null);
    if (any) return sink.fill(ticket, (any as Reply).bytes);
    core.noBackend(sink, ticket);
  };
  for (const b of all) {
    if (!b.up) one(null, b);
    else core.call(b, Op.FLUSH_ALL, parts, (r) => one(r, b), () => one(null, b));
  }
}

/**
 * gat/gats/mg T hit on the primary: the new expiry reaches every backup too
 * (`mg <key> T<exptime>`, issued in the primary's reply order like the
 * copies), or once the primary's copy expires a read would fall back to a
 * backup still holding the item and bring it back. A backup that cannot
 * take it has the key marked dirty.
 */
export function touchBackups(
  core: RouterCore,
  keyToken: Uint8Array,
  key: Uint8Array,
  binary: boolean,
  exptime: number,
): void {
  const parts = [W_MG, keyToken, binary ? BINARY_FLAG : EMPTY, TTL_PREFIX, decimal(exptime), CRLF];
  for (const b of core.copiesOf(key, 0, key.length)) {
    if (!b.up) {
      b.markDirty(key);
      continue;
    }
    core.callFrame(b, Op.MG, parts, (_buf, _start, _length, parser) => {
      if (isErrorKind(parser.kind)) {
        b.markDirty(key);
        core.backupWriteFailed(b, "error reply to a touch");
      }
    }, (e) => {
      b.lost(key);
      core.backupWriteFailed(b, errorText(e));
    });
  }
}
