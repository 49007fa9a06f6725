/**
 * What every routing concern shares: the backends, the key's primary, the
 * request plumbing (reply frames in place, promise form, pipelined pairs),
 * the flush epoch and the delete counters that guard copies, the order of
 * writes per key slot, and counters. The writes being retried and the
 * requests held behind them are slots.ts's {@linkcode SlotHolds}.
 *
 * Nothing here knows the client's wire syntax: requests to backends are
 * byte parts and replies come back as parsed frames, so another client
 * protocol only needs its own entry points in front of the same core.
 * @module
 */

import { Client, type FrameHandler, Reply, ReplyKind } from "../../client/mod.ts";
import { carveCopy, Op, type OpCode, REPLY } from "../../protocol/mod.ts";
import { log } from "../../log.ts";
import type { Distribution } from "../ketama.ts";
import { FLUSH_LINE } from "../lines.ts";
import type { Backend } from "../pool.ts";
import type { ProxyStats } from "../stats.ts";
import type { ZoneRing } from "../zones.ts";
import { DELETE_SLOTS, keySlot, SlotHolds } from "./slots.ts";
import { CopyTokens } from "./tokens.ts";

/** Ordered reply slots of one client connection. */
export interface ReplySink {
  /** Reserve the next reply position; returns its ticket. */
  reserve(): number;
  /** Fill a reserved position (an empty array for no reply). */
  fill(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void;
  /** Fill a reserved position with `buf[start, start + length)`, copied now. */
  fillFrame(ticket: number, buf: Uint8Array, start: number, length: number): void;
  /** Reply now, after everything reserved before. */
  reply(bytes: Uint8Array): void;
  /** Close the connection once every reply reserved so far is written. */
  closeAfterReplies(): void;
  /**
   * A reply written in parts (a large multi-get), optional: `go` runs once
   * every reply before `ticket` is out and the connection's unsent output is
   * under its bound (maybe at once); until `ticket` is filled, each
   * {@linkcode fillPart} then adds to its reply at once (copied).
   */
  whenRoom?(ticket: number, go: () => void): void;
  /** Part of `ticket`'s reply, after {@linkcode whenRoom}'s `go` ran; fill/fillFrame ends it. */
  fillPart?(ticket: number, part: Uint8Array | readonly Uint8Array[]): void;
  /**
   * Optional: true when a multi-get of `nkeys` keys (at most SINGLE_KEYS),
   * its reply at `ticket`, should be written in parts too, as a longer one
   * is (its reply could add to others the connection holds without bound).
   */
  partsFor?(nkeys: number, ticket: number): boolean;
  /**
   * Optional: run `go`, a request held in the router (its reply at
   * `ticket`), once no reply before it is being written in parts (at once
   * when none is). Such a multi-get fetches its keys as its turn comes,
   * so a request read after it must not reach the backends before that.
   */
  afterParts?(ticket: number, go: () => void): void;
}

/** Routing policy. */
export interface RouterOptions {
  /** Look in the backups when a primary answers a miss (default on). */
  missFallback: boolean;
  /**
   * Answer a write only once every backup that is up acknowledged (or
   * failed) its copy, instead of as soon as the primary answered.
   */
  syncBackups?: boolean;
  /**
   * The other zones' copies (see lib/proxy/zones.ts): a key's server in
   * each is one more backup of it, tried before the `backups` (none: no zones).
   */
  zones?: readonly ZoneRing[];
  /** The proxy's (local) zone, whose servers are the primaries; for stats. */
  zone?: string;
}

/** What the connection should do after a request. */
export const Next = {
  CONTINUE: 0,
  CLOSE: 1,
} as const;

/** No reply parts (a silenced noreply/q answer). */
export const EMPTY_PARTS: readonly Uint8Array[] = [];

/** Thrown into fallbacks when a backend is marked down (no request was sent). */
export const DOWN: Error = new Error("backend down");

/**
 * When a copy from one server to another is still right: no flush_all and
 * no delete of the key (by slot) since the source was read.
 */
export interface RepairGuard {
  /** {@linkcode RouterCore.epoch} when the source was read. */
  epoch: number;
  /** The key's delete-counter slot. */
  slot: number;
  /** The slot's count when the source was read. */
  deletes: number;
}

/** A copy that outlives the read buffer (carved: far cheaper than a slice per request). */
export function copyOf(p: Uint8Array): Uint8Array {
  return carveCopy(p, 0, p.length);
}

/** The shared state and request plumbing of the router. */
export class RouterCore {
  /** Primaries (-s), in order (swapped by a config reload). */
  servers: readonly Backend[];
  /** Backups (-b), in order (swapped by a config reload). */
  backups: readonly Backend[];
  /** Counters. */
  readonly stats: ProxyStats;
  /** Look in the backups when a primary answers a miss. */
  missFallback: boolean;
  /** Writes are answered after their copies (see {@linkcode RouterOptions.syncBackups}). */
  syncBackups: boolean;
  /** The other zones' rings (empty: no zones). */
  zones: readonly ZoneRing[] = [];
  /** The local zone's name (undefined: no zones). */
  zone: string | undefined;
  /** Every backend that holds copies: the other zones' servers, then the backups. */
  copies: readonly Backend[] = [];
  /** True when writes have copies to make (backups or other zones). */
  hasCopies = false;
  #dist: Distribution;
  /**
   * Bumped by every immediate flush_all. Backups are flushed when the
   * request arrives, so copies of writes made before it (issued later, on
   * the primaries' replies) are dropped rather than sent after the flush.
   */
  epoch = 0;
  /**
   * Deletes seen per key slot: a repair (an add on the primary) made after a
   * delete of the same key would bring the deleted item back.
   */
  readonly deletes: Uint32Array = new Uint32Array(DELETE_SLOTS);
  /**
   * Deletes per key slot sent to the primary and not answered yet. A repair
   * read from a backup meanwhile lands on the primary after the delete (the
   * backups get it only once the primary answered), so none is made.
   */
  readonly deleting: Uint32Array = new Uint32Array(DELETE_SLOTS);
  /** Client writes that store a value, sent so far (see {@linkcode writtenSince}). */
  writeSeq = 0;
  /** Per key slot: {@linkcode writeSeq} of its last client write. */
  readonly #lastWrite: Float64Array = new Float64Array(DELETE_SLOTS);
  /** Per key slot: the latest {@linkcode writeSeq} sent to a copy (see {@linkcode copiedSince}). */
  readonly #lastCopy: Float64Array = new Float64Array(DELETE_SLOTS);
  /** Conditional writes being retried per key slot, and the requests held behind them. */
  readonly slotHolds: SlotHolds = new SlotHolds();
  /** CAS tokens the copies handed out: a cas goes only where its token came from. */
  readonly copyTokens: CopyTokens = new CopyTokens();

  /** The core over started backends. */
  constructor(
    servers: readonly Backend[],
    backups: readonly Backend[],
    dist: Distribution,
    stats: ProxyStats,
    options: RouterOptions,
  ) {
    this.servers = servers;
    this.backups = backups;
    this.#dist = dist;
    this.stats = stats;
    this.missFallback = options.missFallback;
    this.syncBackups = options.syncBackups ?? false;
    this.#setZones(options);
  }

  #setZones(options: RouterOptions): void {
    this.zones = options.zones ?? [];
    this.zone = options.zone;
    this.copies = [...this.zones.flatMap((z) => z.servers), ...this.backups];
    this.hasCopies = this.copies.length > 0;
  }

  /**
   * Swap the backends and the placement (a config reload): requests from
   * now on use the new ones; requests in flight finish on the backends they
   * were sent to.
   */
  reconfigure(
    servers: readonly Backend[],
    backups: readonly Backend[],
    dist: Distribution,
    options: RouterOptions,
  ): void {
    this.servers = servers;
    this.backups = backups;
    this.#dist = dist;
    this.missFallback = options.missFallback;
    this.syncBackups = options.syncBackups ?? false;
    this.#setZones(options);
  }

  /** The primary of the key `buf[start, end)`. */
  primaryOf(buf: Uint8Array, start: number, end: number): Backend {
    const servers = this.servers;
    return servers.length === 1 ? servers[0] : servers[this.#dist.pick(buf, start, end)];
  }

  /**
   * The copies of the key `buf[start, end)` in fallback order: its server
   * in each other zone, then the backups. Writes reach every one of them;
   * reads try them in order when the primary cannot answer.
   */
  copiesOf(buf: Uint8Array, start: number, end: number): readonly Backend[] {
    const zones = this.zones;
    if (zones.length === 0) return this.backups;
    const out: Backend[] = new Array(zones.length);
    for (let i = 0; i < zones.length; i++) {
      const z = zones[i];
      out[i] = z.servers.length === 1 ? z.servers[0] : z.servers[z.dist.pick(buf, start, end)];
    }
    for (const b of this.backups) out.push(b);
    return out;
  }

  /**
   * True when `b` should hold `key`: a backup holds every key, a zone's
   * server (local or another zone's) the keys its zone's ring gives it.
   */
  holds(b: Backend, key: Uint8Array): boolean {
    if (this.zones.length > 0 && this.servers.includes(b)) {
      return this.primaryOf(key, 0, key.length) === b;
    }
    for (const z of this.zones) {
      const i = z.servers.indexOf(b);
      if (i >= 0) return z.servers.length === 1 || z.dist.pick(key, 0, key.length) === i;
    }
    return true;
  }

  /**
   * The indexes in {@linkcode servers} of the primaries of `n` keys, key i
   * being `buf[starts[from + i], ends[from + i])`, into `out` (a multi-get).
   */
  primaryIndexes(
    buf: Uint8Array,
    starts: Int32Array,
    ends: Int32Array,
    from: number,
    n: number,
    out: Int32Array,
  ): void {
    const dist = this.#dist;
    if (this.servers.length === 1) out.fill(0, 0, n);
    else if (dist.pickMany !== undefined) dist.pickMany(buf, starts, ends, from, n, out);
    else for (let i = 0; i < n; i++) out[i] = dist.pick(buf, starts[from + i], ends[from + i]);
  }

  /**
   * Send one request on a backend; the reply frame goes to `onFrame` in
   * place (valid during the call only), or `fail` runs (at once when the
   * backend is down). The hot paths use this: no Promise, no copy.
   */
  callFrame(
    b: Backend,
    op: OpCode,
    parts: readonly Uint8Array[],
    onFrame: FrameHandler,
    fail: (e: unknown) => void,
  ): void {
    const c = b.acquire();
    if (c === null) {
      fail(DOWN);
      return;
    }
    b.requests++;
    const onOk: FrameHandler = (buf, start, length, parser) => {
      b.succeeded();
      onFrame(buf, start, length, parser);
    };
    const onFail = (e: unknown) => {
      this.stats.backendErrors++;
      try {
        fail(e);
      } catch (err) {
        bug(err);
      }
    };
    if (c instanceof Client) c.requestFrame(op, parts, onOk, onFail);
    else {
      const copies = parts.map(copyOf);
      c.then((client) => client.requestFrame(op, copies, onOk, onFail), onFail);
    }
  }

  /** {@linkcode callFrame} with the reply copied into a {@linkcode Reply}. */
  call(
    b: Backend,
    op: OpCode,
    parts: readonly Uint8Array[],
    ok: (r: Reply) => void,
    fail: (e: unknown) => void,
  ): void {
    this.callFrame(b, op, parts, (buf, start, length, parser) => {
      try {
        ok(new Reply(parser, buf, start, length));
      } catch (err) {
        bug(err);
      }
    }, fail);
  }

  /**
   * Two requests pipelined on one connection (a write and the read-back of
   * its result), then `mn` (see {@linkcode FLUSH_LINE}: the read-back must
   * not change how memcached applies the next command); ok gets both
   * replies when MN arrives, so copies to backups keep the primary's order.
   */
  call2(
    b: Backend,
    op1: OpCode,
    parts1: readonly Uint8Array[],
    op2: OpCode,
    parts2: readonly Uint8Array[],
    ok: (r1: Reply, r2: Reply) => void,
    fail: (e: unknown) => void,
  ): void {
    const c = b.acquire();
    if (c === null) {
      fail(DOWN);
      return;
    }
    b.requests += 3;
    let first: Reply | undefined;
    const onFail = (e: unknown) => {
      this.stats.backendErrors++;
      try {
        fail(e);
      } catch (err) {
        bug(err);
      }
    };
    const send = (client: Client, p1: readonly Uint8Array[], p2: readonly Uint8Array[]) => {
      client.requestFrame(op1, p1, (buf, start, length, parser) => {
        first = new Reply(parser, buf, start, length);
      }, () => {});
      let second: Reply | undefined;
      const done = () => {
        try {
          ok(first as Reply, second as Reply);
        } catch (err) {
          bug(err);
        }
      };
      client.requestFrame(op2, p2, (buf, start, length, parser) => {
        b.succeeded();
        second = new Reply(parser, buf, start, length);
      }, onFail);
      // Answered at MN: the client's next command, maybe on another connection to this
      // backend, then finds the item released. Without MN the write still happened.
      client.requestFrame(Op.MN, FLUSH_LINE, done, () => {
        if (second !== undefined) done();
      });
    };
    if (c instanceof Client) send(c, parts1, parts2);
    else {
      const p1 = parts1.map(copyOf), p2 = parts2.map(copyOf);
      c.then((client) => send(client, p1, p2), onFail);
    }
  }

  /** Promise form of {@linkcode call} for the rare paths (fallback, repair). */
  ask(b: Backend, op: OpCode, parts: readonly Uint8Array[]): Promise<Reply> {
    return new Promise((resolve, reject) => this.call(b, op, parts, resolve, reject));
  }

  /**
   * Index of the first of `copies` at or after `from` that is up and, with
   * `key`, not dirty for it (its item may be old or already cleaned away:
   * no write may build on it) nor waiting for its item to be put back, or -1.
   */
  upBackup(copies: readonly Backend[], from = 0, key?: Uint8Array): number {
    for (let i = from; i < copies.length; i++) {
      const b = copies[i];
      if (b.up && (key === undefined || !b.isDirty(key))) return i;
    }
    return -1;
  }

  /** A client write that stores a value for `key` (not a delete or touch) is being sent. */
  wrote(key: Uint8Array): void {
    this.#lastWrite[keySlot(key)] = ++this.writeSeq;
  }

  /**
   * True when a client write of `key` (or of a key in its slot) was sent
   * after a request that took {@linkcode writeSeq} `since`: it may be on
   * the key's primary by now, ahead of anything sent there for the request
   * from here on (a retry, a repair, a re-read), which memcached ran first.
   * Reads of the copies ask {@linkcode copiedSince} instead.
   */
  writtenSince(key: Uint8Array, since: number): boolean {
    return this.#lastWrite[keySlot(key)] > since;
  }

  /**
   * A value of `key` is being sent to a copy: client write `seq` (see
   * {@linkcode writeSeq}) that failed over or is copied, or (no `seq`) an
   * item read from a primary now, which may hold any write counted so far.
   */
  copied(key: Uint8Array, seq: number = this.writeSeq): void {
    const slot = keySlot(key);
    if (seq > this.#lastCopy[slot]) this.#lastCopy[slot] = seq;
  }

  /**
   * True when a value of `key` (or of a key in its slot) from a client
   * write sent after a read that took {@linkcode writeSeq} `since` was sent
   * to a copy already. Such a read answers a miss rather than ask the
   * copies: it could return that later write, which memcached never does
   * (the read ran first). Otherwise its request to a copy goes ahead of any
   * later write there, on the copy's one connection (sent to it directly,
   * or copied on the primary's reply, which comes after the read's), so the
   * copy answers the item from before the write, as memcached does.
   */
  copiedSince(key: Uint8Array, since: number): boolean {
    return this.#lastCopy[keySlot(key)] > since;
  }

  /** The guard of a copy of `key` read now (or in flush epoch `epoch`). */
  guard(key: Uint8Array, epoch: number = this.epoch): RepairGuard {
    const slot = keySlot(key);
    return { epoch, slot, deletes: this.deletes[slot] };
  }

  /** True while nothing invalidated a copy guarded by `g` and no delete in its slot is under way. */
  guardHolds(g: RepairGuard): boolean {
    return g.epoch === this.epoch && this.deletes[g.slot] === g.deletes &&
      this.deleting[g.slot] === 0;
  }

  /** Answer "no backend available" in the reserved slot. */
  noBackend(sink: ReplySink, ticket: number): void {
    this.stats.noBackend++;
    sink.fill(ticket, REPLY.NO_BACKEND);
  }

  /** Count a lookup of `keys` keys with `hits` found. */
  countHits(hits: number, keys: number): void {
    this.stats.hits += hits;
    this.stats.misses += keys - hits;
  }

  /** Count and log a copy to a backup that failed. */
  backupWriteFailed(b: Backend, why: string): void {
    this.stats.backupWriteErrors++;
    log.debug(`proxy: copy to backup ${b.name} failed: ${why}`);
  }
}

/** Log an internal error (a bug) without taking the proxy down. */
export function bug(err: unknown): void {
  log.warn(`proxy: internal error: ${err instanceof Error ? err.stack : String(err)}`);
}

/** A write sent with noreply (text) or q (meta) gets no answer for this reply kind. */
export function silenced(op: OpCode, noreply: boolean, kind: number): boolean {
  return noreply || kind === ReplyKind.HD || (op === Op.MA && kind === ReplyKind.VA);
}

/** The reply kinds of a write that took effect. */
export function isSuccess(kind: number): boolean {
  return kind === ReplyKind.STORED || kind === ReplyKind.HD || kind === ReplyKind.NUMBER ||
    kind === ReplyKind.VA;
}
