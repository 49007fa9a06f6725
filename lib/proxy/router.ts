/**
 * Where each request goes and what the client gets back: the key's primary
 * (ketama or modula), its backups, fallback on failure or miss, read
 * repair, write copies to backups, multi-get fan-out, and the commands the
 * proxy answers itself.
 *
 * Rules:
 * - Reads go to the key's primary. A primary that is down, fails or times
 *   out, or (unless `--no-miss-fallback`) answers a miss, is backed by the
 *   backups in order; a backup hit is returned and copied back to a primary
 *   that is up (`ms ... ME`: an add, so a newer value is never overwritten).
 * - gets/gats/mg-with-`c` answered from a backup while the primary is up:
 *   the primary is repaired first and the CAS returned is the primary's, so
 *   a following `cas` (which goes to the primary) works. With the primary
 *   down the backup's CAS is returned; writes then go to that backup too.
 * - Writes go to the primary (or, when it is down or fails, to the first
 *   backup that is up, and the primary is told to forget the key). After
 *   success the resulting item is written to every other backup: a plain
 *   set of the value for set/add/replace/cas/ms, the value read back with
 *   `mg v f t` right after the write for append/prepend/incr/decr/ma (so a
 *   delta is never applied twice). delete/touch/md reach the backups once
 *   the primary answered. Copies are issued in the primary's reply order,
 *   so a backup sees the writes to a key in the order the primary did.
 * - flush_all goes to every backend at once; copies of earlier writes still
 *   on their way are dropped, and a server that was down is flushed before
 *   it serves again.
 * - Writes that need an existing item (replace, append, prepend, incr,
 *   decr, ms MR/MA/MP, ma) and miss on the primary look in the backup: on a
 *   hit the primary is repaired and the write retried once.
 * - `noreply` and meta `q` are removed before forwarding (every backend
 *   request gets a reply) and applied here.
 * @module
 */

import { Client, type FrameHandler, Reply, ReplyKind } from "../client/mod.ts";
import {
  ascii,
  carveCopy,
  decodeAscii,
  isErrorKind,
  Op,
  type OpCode,
  REPLY,
  type Request,
} from "../protocol/mod.ts";
import { log } from "../log.ts";
import { errorText } from "../transport/mod.ts";
import type { Distribution } from "./ketama.ts";
import type { Backend } from "./pool.ts";
import {
  BINARY_FLAG,
  CRLF,
  decimal,
  deleteLine,
  FETCH_FLAGS,
  FETCH_FLAGS_CAS,
  fetchLine,
  FLAGS_PREFIX,
  hasData,
  matchItems,
  metaSetLine,
  patchCode,
  REPAIR_FLAGS,
  textSetLine,
  TTL_PREFIX,
  ttlToExptime,
  valueBlock,
  W_MG,
  W_MS,
  withoutToken,
} from "./lines.ts";
import { agentStats, type ProxyStats, proxyStats } from "./stats.ts";

/** A copy that outlives the read buffer (carved: far cheaper than a slice per request). */
function copyOf(p: Uint8Array): Uint8Array {
  return carveCopy(p, 0, p.length);
}

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
}

/** Routing policy. */
export interface RouterOptions {
  /** Look in the backups when a primary answers a miss (default on). */
  missFallback: boolean;
}

/** What the connection should do after a request. */
export const Next = {
  CONTINUE: 0,
  CLOSE: 1,
} as const;

const EMPTY_PARTS: readonly Uint8Array[] = [];

/** Thrown into fallbacks when a backend is marked down (no request was sent). */
const DOWN = new Error("backend down");

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
  /** The flush epoch the write was made in (see Router.#epoch). */
  epoch: number;
}

/**
 * When a copy from a backup back to a primary is still right: no flush_all
 * and no delete of the key (by slot) since the backup was read.
 */
interface RepairGuard {
  epoch: number;
  slot: number;
  deletes: number;
}

/** Slots of the delete counters that guard repairs. */
const DELETE_SLOTS = 4096;

/** Routes parsed client requests to backends. */
export class Router {
  /** Primaries (-s), in order. */
  servers: readonly Backend[];
  /** Backups (-b), in order. */
  backups: readonly Backend[];
  /** Counters. */
  readonly stats: ProxyStats;
  #dist: Distribution;
  #missFallback: boolean;
  readonly #version: Uint8Array;
  /**
   * Bumped by every immediate flush_all. Backups are flushed when the
   * request arrives, so copies of writes made before it (issued later, on
   * the primaries' replies) are dropped rather than sent after the flush.
   */
  #epoch = 0;
  /**
   * Deletes seen per key slot: a repair (an add on the primary) made after a
   * delete of the same key would bring the deleted item back.
   */
  #deletes = new Uint32Array(DELETE_SLOTS);

  /** A router over started backends. */
  constructor(
    servers: readonly Backend[],
    backups: readonly Backend[],
    dist: Distribution,
    stats: ProxyStats,
    options: RouterOptions,
    version: string,
  ) {
    this.servers = servers;
    this.backups = backups;
    this.#dist = dist;
    this.stats = stats;
    this.#missFallback = options.missFallback;
    this.#version = ascii(`VERSION ${version}\r\n`);
  }

  /**
   * Swap the backends and the placement (a config reload): requests from
   * now on use the new ones; requests in flight finish on the backends they
   * were sent to (the caller closes retired backends only later).
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
    this.#missFallback = options.missFallback;
  }

  /**
   * Handle one parsed request; `raw` is its bytes (line and value block).
   * Everything needed later is copied before returning.
   */
  handle(req: Request, raw: Uint8Array, sink: ReplySink): number {
    this.stats.requests++;
    switch (req.op) {
      case Op.GET:
      case Op.GETS:
      case Op.GAT:
      case Op.GATS:
        this.#get(req, raw, sink);
        return Next.CONTINUE;
      case Op.SET:
      case Op.ADD:
      case Op.REPLACE:
      case Op.APPEND:
      case Op.PREPEND:
      case Op.CAS:
      case Op.MS:
        if (req.tooLarge) {
          if (!req.noreply || req.op === Op.MS) sink.reply(REPLY.TOO_LARGE);
          return Next.CONTINUE;
        }
        if (req.badChunk) {
          if (!req.noreply || req.op === Op.MS) sink.reply(REPLY.BAD_CHUNK);
          return Next.CONTINUE;
        }
        this.#write(req, raw, sink);
        return Next.CONTINUE;
      case Op.INCR:
      case Op.DECR:
      case Op.MA:
        this.#write(req, raw, sink);
        return Next.CONTINUE;
      case Op.DELETE:
      case Op.TOUCH:
      case Op.MD:
        this.#fanout(req, raw, sink);
        return Next.CONTINUE;
      case Op.MG:
        this.#metaGet(req, raw, sink);
        return Next.CONTINUE;
      case Op.ME:
        this.#relay(req, raw, sink);
        return Next.CONTINUE;
      case Op.MN:
        sink.reply(REPLY.MN);
        return Next.CONTINUE;
      case Op.FLUSH_ALL:
        this.#flushAll(req, raw, sink);
        return Next.CONTINUE;
      case Op.VERSION:
        sink.reply(this.#version);
        return Next.CONTINUE;
      case Op.VERBOSITY:
        if (!req.noreply) sink.reply(REPLY.OK);
        return Next.CONTINUE;
      case Op.STATS:
        this.#statsCommand(req, sink);
        return Next.CONTINUE;
      case Op.QUIT:
        return Next.CLOSE;
      case Op.ERROR:
        if (req.close) return Next.CLOSE;
        if (req.error !== null && !req.noreply) sink.reply(req.error);
        return Next.CONTINUE;
      default:
        // shutdown, lru_crawler, cache_memlimit, misbehave: server administration.
        sink.reply(REPLY.NOT_SUPPORTED);
        return Next.CONTINUE;
    }
  }

  // ---- plumbing -------------------------------------------------------

  #primaryOf(buf: Uint8Array, start: number, end: number): Backend {
    const servers = this.servers;
    return servers.length === 1 ? servers[0] : servers[this.#dist.pick(buf, start, end)];
  }

  /**
   * Send one request on a backend; the reply frame goes to `onFrame` in
   * place (valid during the call only), or `fail` runs (at once when the
   * backend is down). The hot paths use this: no Promise, no copy.
   */
  #callFrame(
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

  /** {@linkcode #callFrame} with the reply copied into a {@linkcode Reply}. */
  #call(
    b: Backend,
    op: OpCode,
    parts: readonly Uint8Array[],
    ok: (r: Reply) => void,
    fail: (e: unknown) => void,
  ): void {
    this.#callFrame(b, op, parts, (buf, start, length, parser) => {
      try {
        ok(new Reply(parser, buf, start, length));
      } catch (err) {
        bug(err);
      }
    }, fail);
  }

  /**
   * Two requests pipelined on one connection (a write and the read-back of
   * its result); ok gets both replies when the second arrives, so copies to
   * backups keep the primary's order.
   */
  #call2(
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
    b.requests += 2;
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
      client.requestFrame(op2, p2, (buf, start, length, parser) => {
        b.succeeded();
        try {
          ok(first as Reply, new Reply(parser, buf, start, length));
        } catch (err) {
          bug(err);
        }
      }, onFail);
    };
    if (c instanceof Client) send(c, parts1, parts2);
    else {
      const p1 = parts1.map(copyOf), p2 = parts2.map(copyOf);
      c.then((client) => send(client, p1, p2), onFail);
    }
  }

  /** Promise form of {@linkcode #call} for the rare paths (fallback, repair). */
  #ask(b: Backend, op: OpCode, parts: readonly Uint8Array[]): Promise<Reply> {
    return new Promise((resolve, reject) => this.#call(b, op, parts, resolve, reject));
  }

  /** Index of the first backup that is up at or after `from`, or -1. */
  #upBackup(from = 0): number {
    const backups = this.backups;
    for (let i = from; i < backups.length; i++) if (backups[i].up) return i;
    return -1;
  }

  #guard(keyToken: Uint8Array, epoch = this.#epoch): RepairGuard {
    const slot = keySlot(keyToken);
    return { epoch, slot, deletes: this.#deletes[slot] };
  }

  #noBackend(sink: ReplySink, ticket: number): void {
    this.stats.noBackend++;
    sink.fill(ticket, REPLY.NO_BACKEND);
  }

  // ---- reads ----------------------------------------------------------

  #get(req: Request, raw: Uint8Array, sink: ReplySink): void {
    const nkeys = req.ntokens - req.firstKey;
    if (nkeys <= 0) {
      sink.reply(REPLY.END); // `gat 10` with no key: memcached answers END
      return;
    }
    this.stats.gets += nkeys;
    const ticket = sink.reserve();
    const buf = req.buf;
    const ts = req.tokStart, te = req.tokEnd;
    if (nkeys === 1) {
      const primary = this.#primaryOf(buf, ts[req.firstKey], te[req.firstKey]);
      if (this.backups.length === 0) {
        // Nothing to fall back to: a plain relay.
        this.#callFrame(primary, req.op, [raw], (rbuf, start, length, parser) => {
          if (parser.kind === ReplyKind.VALUES) this.#countHits(parser.count, 1);
          sink.fillFrame(ticket, rbuf, start, length);
        }, () => this.#noBackend(sink, ticket));
        return;
      }
      const op = req.op;
      const key = carveCopy(buf, ts[req.firstKey], te[req.firstKey]);
      const exptime = op === Op.GAT || op === Op.GATS ? req.exptime : null;
      this.#callFrame(primary, op, [raw], (rbuf, start, length, parser) => {
        if (parser.kind === ReplyKind.VALUES && parser.count === 0 && this.#missFallback) {
          this.#getFromBackups(op, [key], exptime, primary, true).then((items) => {
            this.#countHits(items[0] === null ? 0 : 1, 1);
            sink.fill(ticket, items[0] === null ? REPLY.END : [items[0], REPLY.END]);
          }, () => sink.fill(ticket, REPLY.END));
          return;
        }
        if (parser.kind === ReplyKind.VALUES) this.#countHits(parser.count, 1);
        sink.fillFrame(ticket, rbuf, start, length);
      }, () => {
        this.#getFromBackups(op, [key], exptime, primary, false).then((items) => {
          this.#countHits(items[0] === null ? 0 : 1, 1);
          sink.fill(ticket, items[0] === null ? REPLY.END : [items[0], REPLY.END]);
        }, () => this.#noBackend(sink, ticket));
      });
      return;
    }
    this.#getMany(req, nkeys, ticket, sink);
  }

  #countHits(hits: number, keys: number): void {
    this.stats.hits += hits;
    this.stats.misses += keys - hits;
  }

  /** A multi-key get: one request per primary, in parallel; replies in the client's key order. */
  #getMany(req: Request, nkeys: number, ticket: number, sink: ReplySink): void {
    const buf = req.buf;
    const ts = req.tokStart, te = req.tokEnd;
    const op = req.op;
    const touch = op === Op.GAT || op === Op.GATS;
    const exptime = touch ? req.exptime : null;
    const keys: Uint8Array[] = new Array(nkeys);
    const owner: Backend[] = new Array(nkeys);
    const groups = new Map<Backend, number[]>();
    for (let i = 0; i < nkeys; i++) {
      const t = req.firstKey + i;
      keys[i] = carveCopy(buf, ts[t], te[t]);
      const b = this.#primaryOf(buf, ts[t], te[t]);
      owner[i] = b;
      let g = groups.get(b);
      if (g === undefined) groups.set(b, g = []);
      g.push(i);
    }
    // The command word (and gat's exptime) start every per-server line.
    const head = carveCopy(buf, ts[0], touch ? te[1] : te[0]);
    const items: (Uint8Array | null)[] = new Array(nkeys).fill(null);
    const failed: boolean[] = new Array(nkeys).fill(false);
    let waiting = groups.size;
    const groupDone = () => {
      if (--waiting > 0) return;
      this.#finishMany(op, keys, owner, items, failed, exptime).then(
        (parts) => sink.fill(ticket, parts),
        () => this.#noBackend(sink, ticket),
      );
    };
    for (const [b, idx] of groups) {
      const parts: Uint8Array[] = [head];
      for (const i of idx) parts.push(ascii(" "), keys[i]);
      parts.push(CRLF);
      this.#call(b, op, parts, (r) => {
        if (r.kind === ReplyKind.VALUES) matchItems(r, idx, keys, items);
        else for (const i of idx) failed[i] = true;
        groupDone();
      }, () => {
        for (const i of idx) failed[i] = true;
        groupDone();
      });
    }
  }

  /** Per-key fallback for a multi-get, then the reply in key order. */
  async #finishMany(
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
      if (!failed[i] && (!this.#missFallback || this.backups.length === 0)) continue;
      lookups.push(
        this.#getFromBackups(op, [keys[i]], exptime, owner[i], !failed[i]).then((found) => {
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
    this.#countHits(hits, keys.length);
    parts.push(REPLY.END);
    return parts;
  }

  /**
   * Look keys up in the backups, in order. Returns a VALUE block (line,
   * data, CRLF) or null per key; rejects when no backup could be asked.
   * `primaryUp`: the primary answered (a miss), so it is repaired.
   */
  async #getFromBackups(
    op: OpCode,
    keys: Uint8Array[],
    exptime: number | null,
    primary: Backend,
    primaryUp: boolean,
  ): Promise<(Uint8Array | null)[]> {
    const withCas = op === Op.GETS || op === Op.GATS;
    const out: (Uint8Array | null)[] = [];
    for (const key of keys) {
      const guard = this.#guard(key);
      let asked = false;
      let found: Uint8Array | null = null;
      for (const b of this.backups) {
        if (!b.up) continue;
        const parts = [W_MG, key, withCas ? FETCH_FLAGS_CAS : FETCH_FLAGS];
        if (exptime !== null) parts.push(TTL_PREFIX, decimal(exptime));
        parts.push(CRLF);
        let r: Reply;
        try {
          r = await this.#ask(b, Op.MG, parts);
        } catch {
          continue;
        }
        asked = true;
        if (r.kind !== ReplyKind.VA) continue;
        this.stats.fallbacks++;
        const value = r.value as Uint8Array;
        let cas = r.cas;
        if (primaryUp && primary.up) {
          // gat's new exptime, else the remaining TTL (mg's t reports the old one under T).
          const exp = exptime ?? ttlToExptime(r.ttl);
          const repaired = this.#repair(guard, primary, key, false, value, r.flags, exp);
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

  /**
   * Copy an item to its primary, unless the primary got one meanwhile
   * (`ms` mode E is an add). Resolves with the primary's reply (HD c<cas>)
   * or null when it failed.
   */
  #repair(
    guard: RepairGuard,
    primary: Backend,
    keyToken: Uint8Array,
    binary: boolean,
    value: Uint8Array,
    flags: number,
    exptime: number,
  ): Promise<Reply | null> {
    // A flush_all since the item was read: copying it back would resurrect it.
    if (guard.epoch !== this.#epoch || this.#deletes[guard.slot] !== guard.deletes) {
      return Promise.resolve(null);
    }
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
    return this.#ask(primary, Op.MS, parts).then((r) => {
      if (r.kind === ReplyKind.HD) {
        this.stats.repairs++;
        log.debug(`proxy: repaired ${primary.name} from backup`);
        return r;
      }
      if (r.kind !== ReplyKind.NS) this.stats.repairErrors++;
      return null;
    }, () => {
      this.stats.repairErrors++;
      return null;
    });
  }

  /** mg: like get, with the client's own flags kept for the backup's answer. */
  #metaGet(req: Request, raw: Uint8Array, sink: ReplySink): void {
    this.stats.gets++;
    const ticket = sink.reserve();
    const primary = this.#primaryOf(req.keyBuf, req.keyStart, req.keyEnd);
    const quiet = req.noreply;
    const parts = quiet ? withoutToken(req, req.flagToken(113 /* q */)) : [raw];
    if (this.backups.length === 0 || req.has(78 /* N: vivify on miss stays local */)) {
      this.#call(primary, Op.MG, parts, (r) => {
        this.#countHits(r.kind === ReplyKind.VA || r.kind === ReplyKind.HD ? 1 : 0, 1);
        sink.fill(ticket, quiet && r.kind === ReplyKind.EN ? EMPTY_PARTS : r.bytes);
      }, () => this.#noBackend(sink, ticket));
      return;
    }
    const copy = parts.length === 1 ? [copyOf(parts[0])] : parts.map(copyOf);
    const keyToken = carveCopy(req.buf, req.tokStart[1], req.tokEnd[1]);
    const binary = req.keyBinary;
    const wantsCas = req.has(99 /* c */);
    const answer = (r: Reply | null) => {
      // null: a miss everywhere (the primary failed, the backups had nothing).
      const hit = r !== null && r.kind !== ReplyKind.EN;
      this.#countHits(hit ? 1 : 0, 1);
      if (quiet && !hit) sink.fill(ticket, EMPTY_PARTS);
      else sink.fill(ticket, r === null ? REPLY.EN : r.bytes);
    };
    const fromBackups = (primaryUp: boolean, miss: Reply | null) => {
      this.#metaGetFromBackups(copy, keyToken, binary, wantsCas, primary, primaryUp).then(
        (r) => answer(r ?? miss),
        () => miss === null ? this.#noBackend(sink, ticket) : answer(miss),
      );
    };
    this.#call(primary, Op.MG, parts, (r) => {
      if (r.kind === ReplyKind.EN && this.#missFallback) fromBackups(true, r);
      else answer(r);
    }, () => fromBackups(false, null));
  }

  /** The client's mg on the backups; a hit is repaired onto an up primary. */
  async #metaGetFromBackups(
    parts: Uint8Array[],
    keyToken: Uint8Array,
    binary: boolean,
    wantsCas: boolean,
    primary: Backend,
    primaryUp: boolean,
  ): Promise<Reply | null> {
    const guard = this.#guard(keyToken);
    let asked = false;
    for (const b of this.backups) {
      if (!b.up) continue;
      let r: Reply;
      try {
        r = await this.#ask(b, Op.MG, parts);
      } catch {
        continue;
      }
      asked = true;
      if (r.kind === ReplyKind.EN || isErrorKind(r.kind)) continue;
      this.stats.fallbacks++;
      if (!primaryUp || !primary.up) return r;
      // Read what a repair needs (value, flags, TTL), then copy it back.
      const item = await this.#ask(b, Op.MG, fetchLine(keyToken, binary)).catch(() => null);
      if (item === null || item.kind !== ReplyKind.VA) return r;
      const repaired = this.#repair(
        guard,
        primary,
        keyToken,
        binary,
        item.value as Uint8Array,
        item.flags,
        ttlToExptime(item.ttl),
      );
      if (!wantsCas) return r;
      // The CAS must be the primary's: ask the primary again once repaired.
      if ((await repaired) === null) return r;
      const again = await this.#ask(primary, Op.MG, parts).catch(() => null);
      return again !== null && again.kind !== ReplyKind.EN ? again : r;
    }
    if (!asked && !primaryUp) throw DOWN;
    return null;
  }

  /** me (debug): the primary's answer as is. */
  #relay(req: Request, raw: Uint8Array, sink: ReplySink): void {
    const ticket = sink.reserve();
    const primary = this.#primaryOf(req.keyBuf, req.keyStart, req.keyEnd);
    this.#call(primary, req.op, [raw], (r) => sink.fill(ticket, r.bytes), () => {
      this.#noBackend(sink, ticket);
    });
  }

  // ---- writes ---------------------------------------------------------

  #write(req: Request, raw: Uint8Array, sink: ReplySink): void {
    this.stats.writes++;
    const primary = this.#primaryOf(req.keyBuf, req.keyStart, req.keyEnd);
    const op = req.op;
    const meta = op >= Op.MG;
    const noreply = !meta && req.noreply;
    const quiet = meta && req.noreply;
    const ticket = sink.reserve();
    if (this.backups.length === 0) {
      // No copies to make: relay (asking for the reply, so the client's turn is kept in order).
      const quietParts = noreply || quiet;
      const sent = quietParts
        ? withoutToken(req, noreply ? req.ntokens - 1 : req.flagToken(113 /* q */))
        : [raw];
      this.#callFrame(primary, op, sent, (rbuf, start, length, parser) => {
        if (quietParts && silenced(op, noreply, parser.kind)) sink.fill(ticket, EMPTY_PARTS);
        else sink.fillFrame(ticket, rbuf, start, length);
      }, () => this.#noBackend(sink, ticket));
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
      case Op.CAS:
        copyParts = [textSetLine(req), data as Uint8Array];
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
          conditional = mode === 82 /* R */;
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
      epoch: this.#epoch,
    };
    if (primary.up) this.#writeTo(ctx, primary, -1);
    else this.#writeToBackup(ctx, 0);
  }

  /** The primary cannot take the write: the first up backup at/after `from` does. */
  #writeToBackup(ctx: WriteCtx, from: number): void {
    const i = this.#upBackup(from);
    if (from === 0) ctx.primary.invalidate(ctx.key);
    if (i < 0) {
      this.#noBackend(ctx.sink, ctx.ticket);
      return;
    }
    if (from === 0) this.stats.writeFallbacks++;
    this.#writeTo(ctx, this.backups[i], i);
  }

  /** Send the write to `target` (backup index, -1 for the primary). */
  #writeTo(ctx: WriteCtx, target: Backend, index: number): void {
    const failed = () => this.#writeToBackup(ctx, index + 1);
    if (ctx.copy === Copy.FETCH) {
      this.#call2(
        target,
        ctx.op,
        ctx.parts,
        Op.MG,
        fetchLine(ctx.keyToken, ctx.binary),
        (r, item) => this.#written(ctx, target, index, r, item),
        failed,
      );
    } else {
      this.#callFrame(target, ctx.op, ctx.parts, (buf, start, length, parser) => {
        const k = parser.kind;
        if (!isSuccess(k)) {
          this.#written(ctx, target, index, new Reply(parser, buf, start, length), null);
          return;
        }
        // The common case without a Reply copy: copy to backups, relay the frame.
        this.#copyToBackups(ctx, index, null);
        if ((ctx.noreply || ctx.quiet) && silenced(ctx.op, ctx.noreply, k)) {
          ctx.sink.fill(ctx.ticket, EMPTY_PARTS);
        } else ctx.sink.fillFrame(ctx.ticket, buf, start, length);
      }, failed);
    }
  }

  #written(ctx: WriteCtx, target: Backend, index: number, r: Reply, item: Reply | null): void {
    const k = r.kind;
    if (isSuccess(k)) {
      this.#copyToBackups(ctx, index, item);
      this.#answer(ctx, r);
      return;
    }
    if (k === ReplyKind.SERVER_ERROR && (ctx.op === Op.SET || ctx.op === Op.MS)) {
      // memcached drops its old item for a set it cannot store (too large, no memory): the
      // backups must drop theirs too, or a read falling back to them would find it.
      this.#copyToBackups(ctx, index, null, true);
    }
    if (
      ctx.conditional && !ctx.retried && index < 0 && this.#missFallback &&
      (k === ReplyKind.NOT_STORED || k === ReplyKind.NOT_FOUND || k === ReplyKind.NS ||
        k === ReplyKind.NF)
    ) {
      ctx.retried = true;
      this.#repairThenRetry(ctx, target).then((retried) => {
        if (!retried) this.#answer(ctx, r);
      }, () => this.#answer(ctx, r));
      return;
    }
    this.#answer(ctx, r);
  }

  /** A conditional write missed on the primary: copy the item from a backup, then retry. */
  async #repairThenRetry(ctx: WriteCtx, primary: Backend): Promise<boolean> {
    const guard = this.#guard(ctx.keyToken, ctx.epoch);
    for (const b of this.backups) {
      if (!b.up) continue;
      const item = await this.#ask(b, Op.MG, fetchLine(ctx.keyToken, ctx.binary)).catch(() => null);
      if (item === null || item.kind !== ReplyKind.VA) continue;
      this.stats.fallbacks++;
      await this.#repair(
        guard,
        primary,
        ctx.keyToken,
        ctx.binary,
        item.value as Uint8Array,
        item.flags,
        ttlToExptime(item.ttl),
      );
      this.#writeTo(ctx, primary, -1);
      return true;
    }
    return false;
  }

  /**
   * Write the result of a successful write to every backup but the one that
   * took it; with `gone`, delete the key there instead.
   */
  #copyToBackups(ctx: WriteCtx, except: number, item: Reply | null, gone = false): void {
    const backups = this.backups;
    if (backups.length === 0 || ctx.epoch !== this.#epoch) return;
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
    for (let i = 0; i < backups.length; i++) {
      if (i === except) continue;
      const b = backups[i];
      if (!b.up) {
        b.markDirty(ctx.key);
        continue;
      }
      this.#callFrame(b, op, parts, (buf, start, length, parser) => {
        if (isErrorKind(parser.kind)) {
          this.#backupWriteFailed(b, decodeAscii(buf, start, start + Math.min(length, 200)).trim());
        }
      }, (e) => {
        b.markDirty(ctx.key);
        this.#backupWriteFailed(b, errorText(e));
      });
    }
  }

  #backupWriteFailed(b: Backend, why: string): void {
    this.stats.backupWriteErrors++;
    log.debug(`proxy: copy to backup ${b.name} failed: ${why}`);
  }

  #answer(ctx: WriteCtx, r: Reply): void {
    if ((ctx.noreply || ctx.quiet) && silenced(ctx.op, ctx.noreply, r.kind)) {
      ctx.sink.fill(ctx.ticket, EMPTY_PARTS);
    } else ctx.sink.fill(ctx.ticket, r.bytes);
  }

  /**
   * delete, touch, md: sent to the primary and every backup at once. The
   * answer is the primary's, unless it missed (restarted empty) and a
   * backup had the item; a touch found only on a backup repairs the primary.
   */
  #fanout(req: Request, raw: Uint8Array, sink: ReplySink): void {
    this.stats.writes++;
    const op = req.op;
    const meta = op === Op.MD;
    const noreply = !meta && req.noreply;
    const quiet = meta && req.noreply;
    const primary = this.#primaryOf(req.keyBuf, req.keyStart, req.keyEnd);
    const ticket = sink.reserve();
    let parts: Uint8Array[];
    if (noreply) parts = withoutToken(req, req.ntokens - 1);
    else if (quiet) parts = withoutToken(req, req.flagToken(113 /* q */));
    else parts = [raw];
    if (this.backups.length === 0) {
      this.#call(primary, op, parts, (r) => {
        const drop = (noreply || quiet) && silenced(op, noreply, r.kind);
        sink.fill(ticket, drop ? EMPTY_PARTS : r.bytes);
      }, () => this.#noBackend(sink, ticket));
      return;
    }
    const keyToken = carveCopy(req.buf, req.tokStart[1], req.tokEnd[1]);
    const key = carveCopy(req.keyBuf, req.keyStart, req.keyEnd);
    const binary = req.keyBinary;
    // Bumped when the delete arrives and again when the backups get it: a
    // repair that read a backup in between must not recreate the item.
    const slot = op === Op.TOUCH ? -1 : keySlot(keyToken);
    if (slot >= 0) this.#deletes[slot]++;
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
    const toBackups = () => {
      if (slot >= 0) this.#deletes[slot]++;
      const replies: Promise<{ r: Reply | null; b: Backend }>[] = [];
      for (const b of this.backups) {
        if (!b.up) {
          b.markDirty(key);
          continue;
        }
        replies.push(
          this.#ask(b, op, copyParts).then((r) => ({ r, b }), (e) => {
            b.markDirty(key);
            this.#backupWriteFailed(b, errorText(e));
            return { r: null, b };
          }),
        );
      }
      return replies;
    };
    const answer = (bytes: Uint8Array) => {
      const drop = noreply || (quiet && bytes[0] === 72 && bytes[1] === 68); // HD
      sink.fill(ticket, drop ? EMPTY_PARTS : bytes);
    };
    // The primary missed (restarted empty?) or failed: a backup's success counts.
    const fromBackups = async (r: Reply | null) => {
      const got = await Promise.all(toBackups());
      const hit = got.find((x) => x.r !== null && x.r.kind === success);
      if (hit !== undefined) {
        if (op === Op.TOUCH && r !== null && primary.up) this.#repairFrom(hit.b, primary, key);
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
        toBackups();
        answer(r.bytes);
        return;
      }
      fromBackups(r).then(answer, () => this.#noBackend(sink, ticket));
    };
    if (!primary.up) {
      primary.markDirty(key);
      done(null);
      return;
    }
    this.#call(primary, op, parts, done, () => {
      primary.invalidate(key);
      done(null);
    });
  }

  /** Copy a key from a backup to its primary (after a touch found it only on the backup). */
  #repairFrom(backup: Backend, primary: Backend, key: Uint8Array): void {
    const guard = this.#guard(key);
    this.#ask(backup, Op.MG, fetchLine(key, false)).then((item) => {
      if (item.kind !== ReplyKind.VA) return;
      this.#repair(
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

  // ---- proxy's own commands ----------------------------------------------

  /**
   * flush_all: every backend at once; one that is down is flushed when it
   * returns. Copies of earlier writes still on their way are dropped (see
   * {@linkcode #epoch}).
   */
  #flushAll(req: Request, raw: Uint8Array, sink: ReplySink): void {
    const ticket = sink.reserve();
    const noreply = req.noreply;
    const parts = noreply ? withoutToken(req, req.ntokens - 1).map(copyOf) : [copyOf(raw)];
    if (req.exptime <= 0) this.#epoch++;
    const all = [...this.servers, ...this.backups];
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
      this.#noBackend(sink, ticket);
    };
    for (const b of all) {
      if (!b.up) one(null, b);
      else this.#call(b, Op.FLUSH_ALL, parts, (r) => one(r, b), () => one(null, b));
    }
  }

  #statsCommand(req: Request, sink: ReplySink): void {
    if (req.ntokens === 1) {
      sink.reply(ascii(agentStats(this.servers, this.backups)));
    } else if (req.ntokens === 2 && req.tokenIs(1, "proxy")) {
      sink.reply(ascii(proxyStats(this.stats, this.servers, this.backups)));
    } else {
      sink.reply(REPLY.ERROR);
    }
  }
}

// ---- reply kinds and errors ----

/** A write sent with noreply (text) or q (meta) gets no answer for this reply kind. */
function silenced(op: OpCode, noreply: boolean, kind: number): boolean {
  return noreply || kind === ReplyKind.HD || (op === Op.MA && kind === ReplyKind.VA);
}

function isSuccess(kind: number): boolean {
  return kind === ReplyKind.STORED || kind === ReplyKind.HD || kind === ReplyKind.NUMBER ||
    kind === ReplyKind.VA;
}

function bug(err: unknown): void {
  log.warn(`proxy: internal error: ${err instanceof Error ? err.stack : String(err)}`);
}

/** FNV-1a of a key token, folded to a delete-counter slot. */
function keySlot(key: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i], 0x01000193);
  return (h >>> 0) % DELETE_SLOTS;
}
