/**
 * Writes: storage commands, arithmetic and ms/ma. The primary answers (or,
 * when it is down or fails, the first of the key's copies that is up, and
 * the primary is told to forget the key); the resulting item is then
 * written to every other copy (the key's server in each other zone, then
 * every backup): a plain set of the value for set/add/replace/cas/ms, the
 * value read back with `mg v f t` right after the write for
 * append/prepend/incr/decr/ma (so a delta is never applied twice). Copies
 * are issued in the primary's reply order, so a backup sees the writes to
 * a key in the order the primary did. Writes that need an existing item
 * and miss on the primary look in the backups: on a hit the primary is
 * repaired and the write retried once.
 * @module
 */

import { Reply, ReplyKind } from "../../client/mod.ts";
import {
  carveCopy,
  decodeAscii,
  isErrorKind,
  Op,
  type OpCode,
  type Request,
} from "../../protocol/mod.ts";
import { errorText } from "../../transport/mod.ts";
import type { Backend } from "../pool.ts";
import {
  CRLF,
  deleteLine,
  fetchLine,
  hasData,
  metaSetLine,
  textSetLine,
  ttlToExptime,
  withoutToken,
} from "../lines.ts";
import {
  copyOf,
  EMPTY_PARTS,
  isSuccess,
  type ReplySink,
  type RouterCore,
  silenced,
} from "./core.ts";
import { repair } from "./repair.ts";
import { unmatchable } from "./tokens.ts";

/** How replicas learn the result of a write. */
const Copy = {
  /** The request carries the final value (set, add, replace, cas, ms). */
  VALUE: 0,
  /** Read the item back right after the write (append, prepend, incr, decr, ma). */
  FETCH: 1,
} as const;

/** Everything a write needs after the request buffer has moved on. */
interface WriteCtx {
  op: OpCode;
  ticket: number;
  sink: ReplySink;
  primary: Backend;
  /** The key's copies: its server in each other zone, then the backups. */
  copies: readonly Backend[];
  /** The request as forwarded: line(s) without noreply/q, value block. */
  parts: Uint8Array[];
  /** What backups get for VALUE copies: a set (or ms) of the request's value. */
  copyParts: readonly Uint8Array[] | null;
  copy: number;
  /** Needs an existing item: a miss may be repaired from a backup and retried. */
  conditional: boolean;
  /** Key token as sent (base64 for meta `b`). */
  keyToken: Uint8Array;
  /** Decoded key. */
  key: Uint8Array;
  binary: boolean;
  /** text noreply: drop every reply. */
  noreply: boolean;
  /** meta q: drop success replies. */
  quiet: boolean;
  retried: boolean;
  /** The flush epoch the write was made in (see RouterCore.epoch). */
  epoch: number;
  /** The core's write count once this write was counted (see RouterCore.writtenSince). */
  since: number;
  /** An add stored on the primary is checked on this backup (see checkAdd), else -1. */
  check: number;
  /** The compare-and-swap token (`cas`, meta `C`), else -1. */
  cas: number;
}

/** A storage or arithmetic command, its copies to the backups included. */
export function write(core: RouterCore, req: Request, raw: Uint8Array, sink: ReplySink): void {
  core.stats.writes++;
  const primary = core.primaryOf(req.keyBuf, req.keyStart, req.keyEnd);
  const op = req.op;
  const meta = op >= Op.MG;
  const noreply = !meta && req.noreply;
  const quiet = meta && req.noreply;
  const ticket = sink.reserve();
  if (!core.hasCopies) {
    // No copies to make: relay (asking for the reply, so the client's turn is kept in order).
    const quietParts = noreply || quiet;
    const sent = quietParts
      ? withoutToken(req, noreply ? req.ntokens - 1 : req.flagToken(113 /* q */))
      : [raw];
    core.callFrame(primary, op, sent, (rbuf, start, length, parser) => {
      if (quietParts && silenced(op, noreply, parser.kind)) sink.fill(ticket, EMPTY_PARTS);
      else sink.fillFrame(ticket, rbuf, start, length);
    }, () => core.noBackend(sink, ticket));
    return;
  }
  // Keep the request: it may be retried on a backup and copied to backups.
  let parts: Uint8Array[];
  let data: Uint8Array | null = null;
  if (noreply || quiet) {
    parts = withoutToken(req, noreply ? req.ntokens - 1 : req.flagToken(113 /* q */));
    parts = parts.map(copyOf);
    if (hasData(op)) data = parts[parts.length - 1];
  } else {
    const copy = copyOf(raw);
    parts = [copy];
    if (hasData(op)) {
      data = copy.subarray(req.dataStart - req.lineStart, req.dataEnd + 2 - req.lineStart);
    }
  }
  let copy: number = Copy.VALUE;
  let conditional = false;
  let copyParts: readonly Uint8Array[] | null = null;
  const keyToken = carveCopy(req.buf, req.tokStart[1], req.tokEnd[1]);
  switch (op) {
    case Op.SET:
      // The request as forwarded is the copy itself.
      copyParts = parts;
      break;
    case Op.ADD:
      copyParts = [textSetLine(req), data as Uint8Array];
      break;
    case Op.CAS:
      copyParts = [textSetLine(req), data as Uint8Array];
      // A miss on a primary that lost the item (restarted empty) is not memcached's NOT_FOUND
      // while a copy holds it: repaired, the retry answers EXISTS (its token is not the item's).
      conditional = true;
      break;
    case Op.REPLACE:
      copyParts = [textSetLine(req), data as Uint8Array];
      conditional = true;
      break;
    case Op.APPEND:
    case Op.PREPEND:
    case Op.INCR:
    case Op.DECR:
      copy = Copy.FETCH;
      conditional = true;
      break;
    case Op.MS: {
      const mode = req.mode;
      if (mode === 65 /* A */ || mode === 80 /* P */) {
        copy = Copy.FETCH;
        conditional = true;
      } else {
        copyParts = [
          metaSetLine(keyToken, req.vlen, req.flags, req.exptime, req.keyBinary),
          data as Uint8Array,
        ];
        conditional = mode === 82 /* R */ || req.cas >= 0; // C: a cas (above)
      }
      break;
    }
    case Op.MA:
      copy = Copy.FETCH;
      conditional = !req.has(78 /* N */);
      break;
  }
  const ctx: WriteCtx = {
    op,
    ticket,
    sink,
    primary,
    copies: core.copiesOf(req.keyBuf, req.keyStart, req.keyEnd),
    parts,
    copyParts,
    copy,
    conditional,
    keyToken,
    key: carveCopy(req.keyBuf, req.keyStart, req.keyEnd),
    binary: req.keyBinary,
    noreply,
    quiet,
    retried: false,
    epoch: core.epoch,
    since: 0,
    check: -1,
    cas: op === Op.CAS || op === Op.MS ? req.cas : -1,
  };
  core.wrote(ctx.key);
  ctx.since = core.writeSeq;
  // A key not cleaned on the primary yet, or cleaned and its item not put back there yet (an
  // append would miss), is written where its truth is: the backup.
  if (!primary.up || primary.isDirty(ctx.key)) {
    writeToBackup(core, ctx, 0, false);
    return;
  }
  if ((op === Op.ADD || (op === Op.MS && req.mode === 69 /* E */)) && core.missFallback) {
    ctx.check = core.upBackup(ctx.copies, 0, ctx.key);
    // Until checked, the key's later requests wait: they must not see the add's item early.
    if (ctx.check >= 0) {
      ctx.sink = endingWith(ctx.sink, core.slotHolds.retryStarted(ctx.key, ctx.since));
    }
  }
  writeTo(core, ctx, primary, -1);
}

/**
 * An add the primary stored is sent, as an add, to the first clean backup
 * too: a primary that lost the key (restarted empty, cleaned) stores it,
 * while the backup still holds the item reads were returning, and memcached
 * answers NOT_STORED. The backup's NOT_STORED is the answer then, and its
 * item goes back onto the primary over the add's. `reply`: the primary's.
 */
function checkAdd(core: RouterCore, ctx: WriteCtx, reply: readonly Uint8Array[]): void {
  const b = ctx.copies[ctx.check];
  core.copied(ctx.key, ctx.since);
  const done = (except: number) => {
    const fill = () => ctx.sink.fill(ctx.ticket, reply);
    if (core.syncBackups) copyToBackups(core, ctx, except, null, false, fill);
    else {
      copyToBackups(core, ctx, except, null);
      fill();
    }
  };
  core.call(b, ctx.op, ctx.parts, (r) => {
    const k = r.kind;
    if (k === ReplyKind.NOT_STORED || k === ReplyKind.NS) restore(core, ctx, b, r);
    // Not stored there for another reason (no memory): it gets the copy as every other backup.
    else done(isSuccess(k) ? ctx.check : -1);
  }, () => {
    b.lost(ctx.key);
    done(ctx.check);
  });
}

/** The backup `b` holds the key an add stored on the primary: its item goes back there. */
function restore(core: RouterCore, ctx: WriteCtx, b: Backend, notStored: Reply): void {
  const guard = core.guard(ctx.key, ctx.epoch);
  const primary = ctx.primary;
  core.ask(b, Op.MG, fetchLine(ctx.keyToken, ctx.binary)).then((item) => {
    // A delete or flush_all in flight since: the primary forgets the key instead.
    if (!core.guardHolds(guard)) return false;
    if (item.kind !== ReplyKind.VA) {
      // Gone from the backup meanwhile (expired): the add's item must go too.
      return core.ask(primary, Op.MD, deleteLine(ctx.keyToken, ctx.binary))
        .then((r) => r.kind === ReplyKind.HD || r.kind === ReplyKind.NF);
    }
    const value = item.value as Uint8Array;
    const line = metaSetLine(
      ctx.keyToken,
      value.length,
      item.flags,
      ttlToExptime(item.ttl),
      ctx.binary,
    );
    return core.ask(primary, Op.MS, [line, value, CRLF]).then((r) => r.kind === ReplyKind.HD);
  }).catch(() => false).then((restored) => {
    // Not restored: the add's item may stay there, so the key is cleaned there.
    if (!restored) primary.invalidate(ctx.key);
    answer(ctx, notStored);
  });
}

/**
 * The primary cannot take the write: the first up backup at/after `from`
 * does. `sent`: the primary got the request and failed (its bytes may still
 * land late there), not merely skipped (down, or the key dirty there).
 */
function writeToBackup(core: RouterCore, ctx: WriteCtx, from: number, sent: boolean): void {
  const i = core.upBackup(ctx.copies, from, ctx.key);
  if (from === 0) {
    // A request that was sent may still land there, after newer writes: the key is dirty there
    // for the late-bytes grace period. One merely skipped (down, or the key dirty there) is
    // dirty only if the write goes elsewhere, without the hold (a hot key skipped on every write
    // would otherwise never be cleaned).
    // One that no copy takes either changed nothing elsewhere: the primary keeps its item (its
    // only copy, maybe), and the copies that are down miss what may yet land there.
    if (sent) ctx.primary.lost(ctx.key, i < 0);
    else if (i >= 0) ctx.primary.markDirty(ctx.key);
    if (sent && i < 0) { for (const b of ctx.copies) if (!b.up) b.markDirty(ctx.key); }
  }
  if (i < 0) {
    core.noBackend(ctx.sink, ctx.ticket);
    return;
  }
  if (from === 0) core.stats.writeFallbacks++;
  writeTo(core, ctx, ctx.copies[i], i);
}

/** Send the write to `target` (backup index, -1 for the primary). */
function writeTo(core: RouterCore, ctx: WriteCtx, target: Backend, index: number): void {
  if (index >= 0) core.copied(ctx.key, ctx.since);
  // A token from another server (or counter) matches nothing here (tokens.ts).
  const parts = ctx.cas < 0 || core.copyTokens.origin(ctx.key, ctx.cas, ctx.primary) === target
    ? ctx.parts
    : unmatchable(ctx.parts, ctx.op === Op.MS);
  const failed = () => {
    // A copy that took the write and failed may apply it late, too. When no later copy takes it
    // either, it changed nothing elsewhere: the copy keeps its item (it may be the key's only
    // one: the primary was skipped or lost it too), as a primary does (writeToBackup).
    if (index >= 0) target.lost(ctx.key, core.upBackup(ctx.copies, index + 1, ctx.key) < 0);
    writeToBackup(core, ctx, index + 1, true);
  };
  if (ctx.copy === Copy.FETCH) {
    core.call2(
      target,
      ctx.op,
      parts,
      Op.MG,
      fetchLine(ctx.keyToken, ctx.binary),
      (r, item) => written(core, ctx, target, index, r, item),
      failed,
    );
  } else {
    core.callFrame(target, ctx.op, parts, (buf, start, length, parser) => {
      const k = parser.kind;
      if (!isSuccess(k)) {
        written(core, ctx, target, index, new Reply(parser, buf, start, length), null);
        return;
      }
      const quiet = (ctx.noreply || ctx.quiet) && silenced(ctx.op, ctx.noreply, k);
      if (index < 0 && ctx.check >= 0) {
        checkAdd(core, ctx, quiet ? EMPTY_PARTS : [carveCopy(buf, start, start + length)]);
        return;
      }
      if (core.syncBackups) {
        // Answered once the copies are acknowledged: the reply outlives the frame.
        const reply = quiet ? EMPTY_PARTS : carveCopy(buf, start, start + length);
        copyToBackups(core, ctx, index, null, false, () => ctx.sink.fill(ctx.ticket, reply));
        return;
      }
      // The common case without a Reply copy: copy to backups, relay the frame.
      copyToBackups(core, ctx, index, null);
      if (quiet) ctx.sink.fill(ctx.ticket, EMPTY_PARTS);
      else ctx.sink.fillFrame(ctx.ticket, buf, start, length);
    }, failed);
  }
}

function written(
  core: RouterCore,
  ctx: WriteCtx,
  target: Backend,
  index: number,
  r: Reply,
  item: Reply | null,
): void {
  const k = r.kind;
  if (isSuccess(k)) {
    if (core.syncBackups) copyToBackups(core, ctx, index, item, false, () => answer(ctx, r));
    else {
      copyToBackups(core, ctx, index, item);
      answer(ctx, r);
    }
    return;
  }
  if (k === ReplyKind.SERVER_ERROR && (ctx.op === Op.SET || ctx.op === Op.MS)) {
    // memcached drops its old item for a set it cannot store (too large, no memory): the
    // backups must drop theirs too, or a read falling back to them would find it.
    copyToBackups(core, ctx, index, null, true);
  }
  if (
    ctx.conditional && !ctx.retried && index < 0 && core.missFallback &&
    (k === ReplyKind.NOT_STORED || k === ReplyKind.NOT_FOUND || k === ReplyKind.NS ||
      k === ReplyKind.NF)
  ) {
    ctx.retried = true;
    // Reads sent after this write that miss on the primary wait until its reply is in.
    ctx.sink = endingWith(ctx.sink, core.slotHolds.retryStarted(ctx.key, ctx.since));
    repairThenRetry(core, ctx, target).then((retried) => {
      if (!retried) answer(ctx, r);
    }, () => answer(ctx, r));
    return;
  }
  answer(ctx, r);
}

/**
 * A conditional write missed on the primary: copy the item from a backup,
 * then retry. Not when a write of the key (by slot) was sent after this one:
 * it is on the primary by then (and its copy maybe on the backups), so the
 * retry would land after it, and memcached runs this write first. The
 * primary's miss is the answer then.
 */
async function repairThenRetry(
  core: RouterCore,
  ctx: WriteCtx,
  primary: Backend,
): Promise<boolean> {
  const guard = core.guard(ctx.key, ctx.epoch);
  for (const b of ctx.copies) {
    if (core.writtenSince(ctx.key, ctx.since)) return false;
    // A copy dirty for the key lost its latest writes: its item must not come back.
    if (!b.up || b.isDirty(ctx.key)) continue;
    const item = await core.ask(b, Op.MG, fetchLine(ctx.keyToken, ctx.binary)).catch(() => null);
    if (item === null || item.kind !== ReplyKind.VA) continue;
    if (core.writtenSince(ctx.key, ctx.since)) return false;
    core.stats.fallbacks++;
    await repair(
      core,
      guard,
      primary,
      ctx.keyToken,
      ctx.binary,
      item.value as Uint8Array,
      item.flags,
      ttlToExptime(item.ttl),
    );
    if (core.writtenSince(ctx.key, ctx.since)) return false;
    writeTo(core, ctx, primary, -1);
    return true;
  }
  return false;
}

/**
 * Write the result of a successful write to every backup but the one that
 * took it; with `gone`, delete the key there instead. `done` runs once
 * every copy sent was answered or failed (at once when none was sent).
 */
function copyToBackups(
  core: RouterCore,
  ctx: WriteCtx,
  except: number,
  item: Reply | null,
  gone = false,
  done?: () => void,
): void {
  const backups = ctx.copies;
  if (backups.length === 0 || ctx.epoch !== core.epoch) {
    done?.();
    return;
  }
  let parts: readonly Uint8Array[];
  let op: OpCode;
  if (gone) {
    parts = deleteLine(ctx.keyToken, ctx.binary);
    op = Op.MD;
  } else if (ctx.copy === Copy.VALUE) {
    parts = ctx.copyParts as readonly Uint8Array[];
    op = ctx.op >= Op.MG ? Op.MS : Op.SET;
  } else if (item !== null && item.kind === ReplyKind.VA) {
    const value = item.value as Uint8Array;
    parts = [
      metaSetLine(ctx.keyToken, value.length, item.flags, ttlToExptime(item.ttl), ctx.binary),
      value,
      CRLF,
    ];
    op = Op.MS;
  } else {
    // Gone already (evicted, expired): the backups must not keep it either.
    parts = deleteLine(ctx.keyToken, ctx.binary);
    op = Op.MD;
  }
  core.copied(ctx.key, ctx.since);
  // One more than the copies in flight, released after the loop: `done` cannot run early.
  let pending = 1;
  const settled = done === undefined ? undefined : () => {
    if (--pending === 0) done();
  };
  for (let i = 0; i < backups.length; i++) {
    if (i === except) continue;
    const b = backups[i];
    if (!b.up) {
      b.markDirty(ctx.key);
      continue;
    }
    pending++;
    core.callFrame(b, op, parts, (buf, start, length, parser) => {
      if (isErrorKind(parser.kind)) {
        // Not applied there: the backup may keep the old item until the key is cleaned.
        b.markDirty(ctx.key);
        core.backupWriteFailed(b, decodeAscii(buf, start, start + Math.min(length, 200)).trim());
      }
      settled?.();
    }, (e) => {
      b.lost(ctx.key);
      core.backupWriteFailed(b, errorText(e));
      settled?.();
    });
  }
  settled?.();
}

function answer(ctx: WriteCtx, r: Reply): void {
  if ((ctx.noreply || ctx.quiet) && silenced(ctx.op, ctx.noreply, r.kind)) {
    ctx.sink.fill(ctx.ticket, EMPTY_PARTS);
  } else ctx.sink.fill(ctx.ticket, r.bytes);
}

/** `sink`, calling `end` before the (only) reply is filled. */
function endingWith(sink: ReplySink, end: () => void): ReplySink {
  return {
    reserve: () => sink.reserve(),
    fill(ticket, reply) {
      end();
      sink.fill(ticket, reply);
    },
    fillFrame(ticket, buf, start, length) {
      end();
      sink.fillFrame(ticket, buf, start, length);
    },
    reply: (bytes) => sink.reply(bytes),
    closeAfterReplies: () => sink.closeAfterReplies(),
  };
}
