/**
 * A multi-key get/gets/gat/gats: one request per primary, sent in parallel,
 * and the reply in the client's key order. The hot path (no fallback
 * needed) works on offsets: the keys stay in one copy of the request line,
 * each server's request is built from the line's bytes, each server's reply
 * is copied into the multi-get's arena and matched to its keys there (no
 * object per key), and the client's reply is assembled in the same arena
 * once the last server answered (native copyWithin per run of blocks: no
 * view per block, no byte loop). Misses that must be looked up in the backups
 * (and keys dirty on their primary) take the per-key path of fallback.ts.
 * A multi-get of more than {@linkcode SINGLE_KEYS} keys is fetched in parts
 * of this fan-out, paced by the client (multiget_parts.ts).
 * @module
 */

import { mark, TRACE } from "../../trace.ts";
import { ReplyKind } from "../../client/mod.ts";
import { carveCopy, Item, ITEM_STRIDE, Op, type OpCode, type Request } from "../../protocol/mod.ts";
import type { Backend } from "../pool.ts";
import type { ReplySink, RouterCore } from "./core.ts";
import { finishMany, lookUp, lookupMany } from "./fallback.ts";
import { touchBackups } from "./fanout.ts";

/** `END\r\n`. */
const END = [69, 78, 68, 13, 10];
/** `VALUE ` precedes the key of an item. */
const VALUE_PREFIX = 6;

/** Bytes of the spare key lines ({@linkcode lineCopy}): a 1,000-key get's line is about 11 KB. */
const LINE_BYTES = 32768;
/** Key lines of finished multi-gets, reused by the next ones (bounded). */
const spareLines: Uint8Array[] = [];
const SPARE_LINES = 8;

/**
 * A copy of `buf[start, end)` at the start of a spare key line when it fits
 * one (given back with the multi-get's table), else carved.
 */
function lineCopy(buf: Uint8Array, start: number, end: number): Uint8Array {
  if (end - start > LINE_BYTES) return carveCopy(buf, start, end);
  const line = spareLines.pop() ?? new Uint8Array(LINE_BYTES);
  line.set(buf.subarray(start, end));
  return line;
}

/**
 * Scratch for the bytes handed on at once (a server's request line, copied
 * by the client; the client's reply, copied by the sink): reused, grown on
 * demand, dropped again when a huge one grew it.
 */
let scratch = new Uint8Array(65536);
const SCRATCH_KEEP = 4 * 1048576;

/** The scratch buffer with room for `n` bytes. */
function scratchFor(n: number): Uint8Array {
  if (n > scratch.length) {
    const big = new Uint8Array(n);
    if (n <= SCRATCH_KEEP) scratch = big;
    return big;
  }
  return scratch;
}

/**
 * Tables and arenas of finished multi-gets, reused by the next ones (a
 * 1,000-key get would otherwise allocate about 150 KB of them). Bounded.
 */
const spareTables: Int32Array[] = [];
const spareArenas: Uint8Array[] = [];
const SPARES = 16;
const SPARE_ARENAS = 8;
/** The smallest arena made; arenas up to {@linkcode ARENA_KEEP} go back to the spares. */
const ARENA_MIN = 4096;
const ARENA_KEEP = 262144;
/** A multi-get's arena before its first reply: none is held while it waits. */
const NO_ARENA = new Uint8Array(0);
/** Runs of blocks shorter than this are copied by hand (a native call costs more). */
const SHORT_RUN = 16;

/**
 * A table of at least `n` entries, zero from `zeroFrom` to `n` (a spare
 * when one is large enough, not much larger; what comes before `zeroFrom`
 * is written before it is read). The whole spare, not a view of it: a
 * typed array costs far more to make than a view, a view more than none.
 */
function takeTable(n: number, zeroFrom: number): Int32Array {
  const t = spareTables.pop();
  if (t === undefined || t.length < n || t.length > 4 * n) return new Int32Array(n);
  t.fill(0, zeroFrom, n);
  return t;
}

/**
 * An arena for at least `n` bytes with the first `used` bytes of `buf`: a
 * spare when `buf` is still empty and a spare is large enough, else a new
 * one of twice the size (at least {@linkcode ARENA_MIN}).
 */
function grown(buf: Uint8Array, used: number, n: number): Uint8Array {
  if (buf.length === 0) {
    const spare = spareArenas.pop();
    if (spare !== undefined) {
      if (spare.length >= n) return spare;
      spareArenas.push(spare);
    }
  }
  let size = Math.max(buf.length * 2, ARENA_MIN);
  while (size < n) size *= 2;
  const next = new Uint8Array(size);
  if (used > 0) next.set(buf.subarray(0, used));
  return next;
}

/** True when `a[as, ae)` and `b[bs, be)` hold the same bytes. */
function sameBytes(
  a: Uint8Array,
  as: number,
  ae: number,
  b: Uint8Array,
  bs: number,
  be: number,
): boolean {
  const n = ae - as;
  if (be - bs !== n) return false;
  for (let i = 0; i < n; i++) if (a[as + i] !== b[bs + i]) return false;
  return true;
}

/** Copy `src[start, end)` to `dst` at `at`; returns the end. Short runs by hand (no view). */
function put(dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number): number {
  if (end - start < 64) {
    for (let i = start; i < end; i++) dst[at++] = src[i];
    return at;
  }
  dst.set(src.subarray(start, end), at);
  return at + end - start;
}

/**
 * Copy the run `buf[start, end)` to `at` within the same buffer (the
 * reply's place in the arena); returns the end. Short runs by hand.
 */
function copyRun(buf: Uint8Array, at: number, start: number, end: number): number {
  if (end - start < SHORT_RUN) {
    for (let i = start; i < end; i++) buf[at++] = buf[i];
    return at;
  }
  buf.copyWithin(at, start, end);
  return at + end - start;
}

/**
 * Keys a multi-get fetches at once: one with at most this many (the common
 * case) is one fan-out and one reply; a longer one is fetched and written
 * in parts (multiget_parts.ts).
 */
export const SINGLE_KEYS = 1024;

/** Where the parts of a long multi-get go (multiget_parts.ts). */
export interface PartSink {
  /**
   * A part is in: its `hits` VALUE blocks (`reply`, in key order; copied at
   * once), the largest of them `largest` bytes; `unreachable`: some of its
   * keys could be asked of no server.
   */
  part(
    reply: Uint8Array | readonly Uint8Array[],
    hits: number,
    largest: number,
    unreachable: boolean,
  ): void;
}

/** get/gets/gat/gats with `nkeys` (two or more) keys; the reply fills `ticket`. */
export function getMany(
  core: RouterCore,
  req: Request,
  nkeys: number,
  ticket: number,
  sink: ReplySink,
): void {
  const buf = req.buf;
  const ts = req.tokStart, te = req.tokEnd;
  const first = req.firstKey;
  const op = req.op;
  const touch = op === Op.GAT || op === Op.GATS;
  const exptime = touch ? req.exptime : null;
  // The keys outlive the request buffer as offsets into one copy of them.
  if (TRACE) mark("handle");
  const base = ts[first];
  const line = lineCopy(buf, base, te[req.ntokens - 1]);
  // The command word (and gat's exptime) start every per-server line.
  const headStart = ts[0], headEnd = touch ? te[1] : te[0];
  const keys = { buf, ts, te, first, base };
  fanOut(core, op, exptime, buf, headStart, headEnd, line, keys, nkeys, ticket, sink, null);
}

/** Where a multi-get's keys are: key i is `buf[ts[first + i], te[first + i])`, at that less `base` in its line. */
export interface Keys {
  buf: Uint8Array;
  ts: Int32Array;
  te: Int32Array;
  first: number;
  base: number;
}

/**
 * Ask each server for its keys of `nkeys` of `keys` in one request; the
 * replies are matched and the client's reply (or `stream`'s part)
 * assembled by a {@linkcode MultiGet}. `headBuf[headStart, headEnd)` is the
 * command word (and gat's exptime).
 */
export function fanOut(
  core: RouterCore,
  op: OpCode,
  exptime: number | null,
  headBuf: Uint8Array,
  headStart: number,
  headEnd: number,
  line: Uint8Array,
  keys: Keys,
  nkeys: number,
  ticket: number,
  sink: ReplySink,
  stream: PartSink | null,
): void {
  const servers = core.servers;
  const nservers = servers.length;
  const backups = core.hasCopies;
  const { ts, te, first, base } = keys;
  // One table for the whole multi-get (see Col), then per server its key count, its request's
  // key bytes and where its keys start in the order column. Only the blocks' ends (0: no
  // hit), the failed flags and the per-server counts need zeros.
  const perKey = takeTable(Col.COUNT * nkeys + 3 * nservers + 1, Col.BLOCK_END * nkeys);
  const keyStart = Col.KEY_START * nkeys, keyEnd = Col.KEY_END * nkeys;
  const owner = Col.OWNER * nkeys, failed = Col.FAILED * nkeys;
  const count = Col.COUNT * nkeys, size = count + nservers, groupAt = size + nservers;
  /** Some key is dirty on its primary (read from the backups; marked failed). */
  let dirty = false;
  core.primaryIndexes(keys.buf, ts, te, first, nkeys, perKey.subarray(owner, owner + nkeys));
  if (TRACE) mark("hashed");
  for (let i = 0; i < nkeys; i++) {
    const s = ts[first + i] - base, e = te[first + i] - base;
    perKey[keyStart + i] = s;
    perKey[keyEnd + i] = e;
    const o = perKey[owner + i];
    const b = servers[o];
    if (backups && b.anyDirty && b.isDirty(line.subarray(s, e))) {
      // Not cleaned on the primary yet: read from the backups.
      perKey[failed + i] = 1;
      dirty = true;
    } else {
      perKey[count + o]++;
      perKey[size + o] += e - s + 1;
    }
  }
  // Each server's keys, in the client's order, grouped by server (a counting sort; the
  // counts become each group's fill position).
  const orderAt = Col.ORDER * nkeys;
  perKey[groupAt] = orderAt;
  for (let o = 0; o < nservers; o++) {
    const at = perKey[groupAt + o];
    perKey[groupAt + o + 1] = at + perKey[count + o];
    perKey[count + o] = at;
  }
  for (let i = 0; i < nkeys; i++) {
    if (perKey[failed + i] === 0) perKey[perKey[count + perKey[owner + i]]++] = i;
  }

  const state = new MultiGet(
    core,
    op,
    exptime,
    line,
    perKey,
    nkeys,
    dirty,
    ticket,
    stream,
    core.writeSeq,
  );
  // Keys dirty on their primary are looked up in the backups now, not once the primaries
  // answered: a write or delete of one pipelined after this get goes to the backups
  // directly, and must reach them behind this read (see RouterCore.copiedSince).
  if (dirty) state.lookUpDirty();
  let groups = 0;
  for (let o = 0; o < nservers; o++) if (perKey[groupAt + o + 1] > perKey[groupAt + o]) groups++;
  state.waiting = groups;
  const head = headEnd - headStart;
  for (let o = 0; o < nservers; o++) {
    const from = perKey[groupAt + o], to = perKey[groupAt + o + 1];
    if (from === to) continue;
    // Per server: the head, " key" for each of its keys, CRLF (the client copies it at once).
    const n = head + perKey[size + o] + 2;
    const out = scratchFor(n);
    let w = put(out, 0, headBuf, headStart, headEnd);
    for (let k = from; k < to; k++) {
      const i = perKey[k];
      out[w++] = 32;
      w = put(out, w, line, perKey[keyStart + i], perKey[keyEnd + i]);
    }
    out[w++] = 13;
    out[w] = 10;
    core.callFrame(servers[o], op, [out.subarray(0, n)], (rbuf, start, length, parser) => {
      if (TRACE) mark("reply");
      if (parser.kind === ReplyKind.VALUES) {
        state.matched(rbuf, start, length, parser.items, parser.count, from, to);
      } else state.failedGroup(from, to);
      state.groupDone(sink);
    }, () => {
      state.failedGroup(from, to);
      state.groupDone(sink);
    });
  }
  if (TRACE) mark("built");
  // Every request is built: they leave now, not after the rest of this read is parsed. (The
  // table is still this multi-get's: only a reply, never a failure at once, gives it back.)
  for (let o = 0; o < nservers; o++) {
    if (perKey[groupAt + o + 1] > perKey[groupAt + o]) servers[o].flush();
  }
  if (groups === 0) state.finish(sink);
}

/**
 * The columns of a multi-get's per-key table, `n` entries each (key i of
 * column c at `c * n + i`): where the key is in the line, its server, the
 * keys grouped by server (the order they are asked in), its VALUE block in
 * the arena (end 0: no hit), failed (its primary failed, or it is dirty
 * there). The per-server counts follow the columns.
 */
const Col = {
  KEY_START: 0,
  KEY_END: 1,
  OWNER: 2,
  ORDER: 3,
  BLOCK_START: 4,
  BLOCK_END: 5,
  FAILED: 6,
  COUNT: 7,
} as const;

/** What a multi-get gathered so far: per key, where its VALUE block is, or why it has none. */
class MultiGet {
  readonly #core: RouterCore;
  readonly #op: OpCode;
  readonly #exptime: number | null;
  readonly #line: Uint8Array;
  /** The per-key table (see {@linkcode Col}), given back to the spares when done. */
  readonly #t: Int32Array;
  /** Keys. */
  readonly #n: number;
  readonly #servers: readonly Backend[];
  readonly #ticket: number;
  /** The long multi-get this is a part of (null: a whole one). */
  readonly #stream: PartSink | null;
  /**
   * The servers' replies, one after the other as they came, then the
   * client's reply once assembled; {@linkcode #used} bytes are taken.
   */
  #arena: Uint8Array = NO_ARENA;
  #used = 0;
  /** Some key's primary failed (or it is dirty there). */
  #anyFailed: boolean;
  /** Bytes of the hits' VALUE blocks. */
  #bytes = 0;
  #hits = 0;
  /** Groups not answered yet. */
  waiting = 0;
  /** The core's write count when it was sent (see {@linkcode RouterCore.copiedSince}). */
  readonly #since: number;
  /** Per key: its lookup in the backups, when started at once ({@linkcode lookUpDirty}). */
  #early: (Promise<Uint8Array | null | undefined> | undefined)[] | undefined;

  constructor(
    core: RouterCore,
    op: OpCode,
    exptime: number | null,
    line: Uint8Array,
    table: Int32Array,
    n: number,
    dirty: boolean,
    ticket: number,
    stream: PartSink | null,
    since: number,
  ) {
    this.#since = since;
    this.#stream = stream;
    this.#core = core;
    this.#op = op;
    this.#exptime = exptime;
    this.#line = line;
    this.#t = table;
    this.#n = n;
    this.#servers = core.servers;
    this.#ticket = ticket;
    this.#anyFailed = dirty;
  }

  /** Look the keys marked failed so far (dirty on their primary) up in the backups at once. */
  lookUpDirty(): void {
    const t = this.#t, n = this.#n;
    const ks = Col.KEY_START * n, ke = Col.KEY_END * n, owner = Col.OWNER * n;
    const failed = Col.FAILED * n;
    const early: (Promise<Uint8Array | null | undefined> | undefined)[] = new Array(n);
    for (let i = 0; i < n; i++) {
      if (t[failed + i] === 0) continue;
      const key = this.#line.subarray(t[ks + i], t[ke + i]);
      const primary = this.#servers[t[owner + i]];
      early[i] = lookUp(this.#core, this.#op, key, this.#exptime, primary, false, this.#since);
    }
    this.#early = early;
  }

  /**
   * A server answered the keys at `from` to `to` of the order column with a
   * get reply `rbuf[start, start + length)` of `count` items (offsets in
   * `items`), copied into the arena. The reply lists hits in request order;
   * each is paired with the next key asked that it equals.
   */
  matched(
    rbuf: Uint8Array,
    start: number,
    length: number,
    items: Float64Array,
    count: number,
    from: number,
    to: number,
  ): void {
    const base = this.#used;
    if (base + length > this.#arena.length) this.#arena = grown(this.#arena, base, base + length);
    const frame = this.#arena;
    frame.set(rbuf.subarray(start, start + length), base);
    this.#used = base + length;
    const shift = start - base;
    const line = this.#line, t = this.#t, n = this.#n;
    const ks = Col.KEY_START * n, ke = Col.KEY_END * n;
    const bs = Col.BLOCK_START * n, be = Col.BLOCK_END * n;
    // Every key asked a hit (the common case): memcached answers one VALUE per key, in order,
    // so item m is key m and only the lengths are checked.
    const all = count === to - from;
    let j = from, bytes = 0, hits = 0;
    for (let m = 0; m < count; m++) {
      const at = m * ITEM_STRIDE;
      const kS = items[at + Item.KEY_START] - shift, kE = items[at + Item.KEY_END] - shift;
      if (all) {
        const i = t[j];
        if (kE - kS !== t[ke + i] - t[ks + i]) break;
      } else {
        while (j < to && !sameBytes(frame, kS, kE, line, t[ks + t[j]], t[ke + t[j]])) j++;
      }
      if (j === to) break;
      const i = t[j++];
      const s = kS - VALUE_PREFIX, e = items[at + Item.DATA_END] - shift + 2;
      t[bs + i] = s;
      t[be + i] = e;
      bytes += e - s;
      hits++;
    }
    this.#bytes += bytes;
    this.#hits += hits;
    const exptime = this.#exptime;
    if (exptime !== null && this.#core.hasCopies) {
      // gat's new expiry reaches the backups of every hit.
      for (let k = from; k < to; k++) {
        const i = t[k];
        if (t[be + i] === 0) continue;
        const key = line.slice(t[ks + i], t[ke + i]);
        touchBackups(this.#core, key, key, false, exptime);
      }
    }
  }

  /** The server of the keys at `from` to `to` of the order column failed or answered an error. */
  failedGroup(from: number, to: number): void {
    const t = this.#t, failed = Col.FAILED * this.#n;
    for (let k = from; k < to; k++) t[failed + t[k]] = 1;
    this.#anyFailed = true;
  }

  /** One group is in; the last one finishes. */
  groupDone(sink: ReplySink): void {
    if (--this.waiting === 0) this.finish(sink);
  }

  /** Every group answered: the reply at once, or after the lookups in the backups. */
  finish(sink: ReplySink): void {
    const core = this.#core;
    const n = this.#n;
    const lookups = this.#hits < n &&
      (this.#anyFailed || (core.missFallback && core.hasCopies));
    if (lookups) {
      this.#fallback(sink);
      return;
    }
    // The reply goes after the frames, in the same arena: each run is one copyWithin.
    const outStart = this.#used;
    const need = outStart + this.#bytes + END.length;
    if (need > this.#arena.length) this.#arena = grown(this.#arena, outStart, need);
    const arena = this.#arena;
    const t = this.#t, bs = Col.BLOCK_START * n, be = Col.BLOCK_END * n;
    // Blocks that follow each other in one server's reply go out as one run (one copy); a
    // server's frame ends with END, so a run never spans two frames.
    let w = outStart, runStart = -1, runEnd = -1;
    for (let i = 0; i < n; i++) {
      const e = t[be + i];
      if (e === 0) continue;
      const b = t[bs + i];
      if (b === runEnd) {
        runEnd = e;
        continue;
      }
      w = copyRun(arena, w, runStart, runEnd);
      runStart = b;
      runEnd = e;
    }
    w = copyRun(arena, w, runStart, runEnd);
    core.countHits(this.#hits, n);
    const stream = this.#stream;
    if (stream !== null) {
      let largest = 0;
      for (let i = 0; i < n; i++) {
        if (t[be + i] !== 0) largest = Math.max(largest, t[be + i] - t[bs + i]);
      }
      stream.part(arena.subarray(outStart, w), this.#hits, largest, false);
    } else {
      for (let k = 0; k < END.length; k++) arena[w++] = END[k];
      if (TRACE) mark("assembled");
      sink.fillFrame(this.#ticket, arena, outStart, w - outStart);
    }
    this.#release();
  }

  /**
   * Done: the table, the arena and the key line (a whole multi-get's, see
   * getMany; a part's is its stream's) go back to the spares.
   */
  #release(): void {
    const arena = this.#arena;
    const keep = arena.length > 0 && arena.length <= ARENA_KEEP;
    if (keep && spareArenas.length < SPARE_ARENAS) spareArenas.push(arena);
    if (spareTables.length < SPARES) spareTables.push(this.#t);
    const line = this.#line;
    if (this.#stream === null && line.length === LINE_BYTES && spareLines.length < SPARE_LINES) {
      spareLines.push(line);
    }
  }

  /** The per-key path: hits as views, misses looked up in the backups (fallback.ts). */
  #fallback(sink: ReplySink): void {
    const core = this.#core;
    const n = this.#n;
    const servers = this.#servers;
    const t = this.#t;
    const ks = Col.KEY_START * n, ke = Col.KEY_END * n, owner = Col.OWNER * n;
    const bs = Col.BLOCK_START * n, be = Col.BLOCK_END * n, fail = Col.FAILED * n;
    const keys: Uint8Array[] = new Array(n);
    const owners: Backend[] = new Array(n);
    const items: (Uint8Array | null)[] = new Array(n);
    const failed: boolean[] = new Array(n);
    // The hits stay views of the arena (it is not reused: the lookups outlive this call).
    const arena = this.#arena;
    const line = this.#line;
    for (let i = 0; i < n; i++) {
      keys[i] = line.subarray(t[ks + i], t[ke + i]);
      failed[i] = t[fail + i] === 1;
      owners[i] = servers[t[owner + i]];
      items[i] = t[be + i] === 0 ? null : arena.subarray(t[bs + i], t[be + i]);
    }
    const stream = this.#stream;
    if (stream !== null) {
      const early = this.#early;
      lookupMany(core, this.#op, keys, owners, items, failed, this.#exptime, this.#since, early)
        .then(
          (found) => {
            core.countHits(found.hits.length, n);
            let largest = 0;
            for (const b of found.hits) largest = Math.max(largest, b.length);
            stream.part(found.hits, found.hits.length, largest, found.unreachable);
          },
          () => stream.part([], 0, 0, true),
        );
      return;
    }
    finishMany(core, this.#op, keys, owners, items, failed, this.#exptime, this.#since, this.#early)
      .then(
        (parts) => sink.fill(this.#ticket, parts),
        () => core.noBackend(sink, this.#ticket),
      );
  }
}
