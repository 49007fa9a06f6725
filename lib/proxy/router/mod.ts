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
 *
 * - Zones (lib/proxy/zones.ts): the primaries are the local zone's ring;
 *   a key's server in each other zone is one more copy of it, before the
 *   backups, in every rule above (written, read on fallback, refilled).
 *
 * Files: core.ts (backends, request plumbing, guards), slots.ts (key slots,
 * requests held behind a write being retried), reads.ts, writes.ts,
 * fanout.ts (delete/touch/md, flush_all), repair.ts (copies back onto a
 * primary), admin.ts (the `stats` family); this module only dispatches.
 * @module
 */

import { ascii, Op, parseRequest, REPLY, Request } from "../../protocol/mod.ts";
import type { Distribution } from "../ketama.ts";
import type { Backend } from "../pool.ts";
import type { ProxyStats } from "../stats.ts";
import { statsCommand } from "./admin.ts";
import { Next, type ReplySink, RouterCore, type RouterOptions } from "./core.ts";
import { fanout, flushAll } from "./fanout.ts";
import { get, metaGet, relay } from "./reads.ts";
import { Refiller } from "./refill.ts";
import { restoreFrom } from "./repair.ts";
import { ALL_SLOTS, type SlotHolds, slotOf } from "./slots.ts";
import { write } from "./writes.ts";

export { Next, type ReplySink, type RouterOptions } from "./core.ts";

/** Routes parsed client requests to backends. */
export class Router {
  /** Counters. */
  readonly stats: ProxyStats;
  readonly #core: RouterCore;
  /** The core's holds, reached in one step on every request. */
  readonly #holds: SlotHolds;
  readonly #version: Uint8Array;
  #refiller: Refiller | undefined;

  /** A router over started backends. */
  constructor(
    servers: readonly Backend[],
    backups: readonly Backend[],
    dist: Distribution,
    stats: ProxyStats,
    options: RouterOptions,
    version: string,
  ) {
    this.stats = stats;
    this.#core = new RouterCore(servers, backups, dist, stats, options);
    this.#holds = this.#core.slotHolds;
    this.#wire();
    this.#version = ascii(`VERSION ${version}\r\n`);
  }

  /** Primaries (-s), in order. */
  get servers(): readonly Backend[] {
    return this.#core.servers;
  }

  /** Backups (-b), in order. */
  get backups(): readonly Backend[] {
    return this.#core.backups;
  }

  /** Every backend: the (local zone's) servers, the other zones' servers, the backups. */
  get backends(): readonly Backend[] {
    return [...this.#core.servers, ...this.#core.copies];
  }

  /** The proxy's zone, when its servers are in zones. */
  get zone(): string | undefined {
    return this.#core.zone;
  }

  /**
   * Swap the backends and the placement (a config reload, see pools.ts):
   * new requests use them, requests in flight finish where they were sent.
   */
  reconfigure(
    servers: readonly Backend[],
    backups: readonly Backend[],
    dist: Distribution,
    options: RouterOptions,
  ): void {
    this.#core.reconfigure(servers, backups, dist, options);
    this.#wire();
  }

  /**
   * Returning backends start the refills of the copies; with zones, of a
   * local server too (restarted, or cleaned of keys changed elsewhere).
   */
  #wire(): void {
    const core = this.#core;
    if (!core.hasCopies) return;
    const refiller = this.#refiller ??= new Refiller(core);
    const zones = core.zones.length > 0;
    for (const b of core.copies) {
      b.onReturn = (b, info) => refiller.backupReturned(b, info);
      b.restore = (key) => restoreFrom(core, b, key);
    }
    for (const s of core.servers) {
      s.watchRestarts = zones;
      s.onReturn = (s, info) => refiller.primaryReturned(zones ? s : undefined, info);
      s.restore = (key) => restoreFrom(core, s, key);
    }
  }

  /**
   * Handle one parsed request; `raw` is its bytes (line and value block).
   * Everything needed later is copied before returning.
   */
  handle(req: Request, raw: Uint8Array, sink: ReplySink): number {
    this.#core.stats.requests++;
    if (this.#holds.holding && this.#heldBack(req, raw, sink)) return Next.CONTINUE;
    return this.#dispatch(req, raw, sink);
  }

  /**
   * A request of a key whose earlier write is being retried or checked
   * (see SlotHolds.retryStarted) waits for it, in its place among the
   * connection's replies: memcached runs it after that write, and the
   * write's backends could otherwise see it first. flush_all waits for
   * every such write.
   */
  #heldBack(req: Request, raw: Uint8Array, sink: ReplySink): boolean {
    if (req.tooLarge || req.badChunk) return false;
    const holds = this.#holds;
    const slots: number[] = [];
    switch (req.op) {
      case Op.GET:
      case Op.GETS:
      case Op.GAT:
      case Op.GATS:
        for (let i = req.firstKey; i < req.ntokens; i++) {
          const slot = slotOf(req.buf, req.tokStart[i], req.tokEnd[i]);
          if (!slots.includes(slot)) slots.push(slot);
        }
        if (slots.length === 0) return false;
        break;
      case Op.FLUSH_ALL:
        slots.push(ALL_SLOTS);
        break;
      default:
        // One key: set .. touch and mg .. ma (Op's order).
        if (!((req.op >= Op.SET && req.op <= Op.TOUCH) || (req.op >= Op.MG && req.op <= Op.MA))) {
          return false;
        }
        slots.push(slotOf(req.keyBuf, req.keyStart, req.keyEnd));
    }
    if (!holds.mustWait(slots)) return false;
    const copy = raw.slice();
    // Its place among the connection's replies is taken now.
    const ticket = sink.reserve();
    const held = heldSink(sink, ticket);
    holds.hold(slots, (recheck) => {
      const run = () => {
        const again = new Request();
        parseRequest(copy, 0, copy.length, again, Number.MAX_SAFE_INTEGER);
        if (!recheck || !holds.holding || !this.#heldBack(again, copy, held)) {
          this.#dispatch(again, copy, held);
        }
      };
      // Released right behind a held multi-get of its keys that went in parts (its keys are
      // fetched as its turn comes), it would reach the backends first: it waits for that get.
      if (sink.afterParts === undefined) run();
      else sink.afterParts(ticket, run);
    });
    return true;
  }

  #dispatch(req: Request, raw: Uint8Array, sink: ReplySink): number {
    switch (req.op) {
      case Op.GET:
      case Op.GETS:
      case Op.GAT:
      case Op.GATS:
        if (this.#core.copyTokens.size > 0) {
          for (let i = req.firstKey; i < req.ntokens; i++) {
            this.#core.copyTokens.forget(req.buf, req.tokStart[i], req.tokEnd[i]);
          }
        }
        get(this.#core, req, raw, sink);
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
        write(this.#core, req, raw, sink);
        return Next.CONTINUE;
      case Op.INCR:
      case Op.DECR:
      case Op.MA:
        write(this.#core, req, raw, sink);
        return Next.CONTINUE;
      case Op.DELETE:
      case Op.TOUCH:
      case Op.MD:
        fanout(this.#core, req, raw, sink);
        return Next.CONTINUE;
      case Op.MG:
        if (this.#core.copyTokens.size > 0) {
          this.#core.copyTokens.forget(req.keyBuf, req.keyStart, req.keyEnd);
        }
        metaGet(this.#core, req, raw, sink);
        return Next.CONTINUE;
      case Op.ME:
        relay(this.#core, req, raw, sink);
        return Next.CONTINUE;
      case Op.MN:
        sink.reply(REPLY.MN);
        return Next.CONTINUE;
      case Op.FLUSH_ALL:
        flushAll(this.#core, req, raw, sink);
        return Next.CONTINUE;
      case Op.VERSION:
        sink.reply(this.#version);
        return Next.CONTINUE;
      case Op.VERBOSITY:
        if (!req.noreply) sink.reply(REPLY.OK);
        return Next.CONTINUE;
      case Op.STATS:
        statsCommand(this.#core, req, raw, sink);
        return Next.CONTINUE;
      case Op.QUIT:
        return Next.CLOSE;
      case Op.ERROR:
        if (req.close) return Next.CLOSE;
        if (req.longKeyAt > req.firstKey && req.error !== null) {
          refusedGet(this.#core, req, req.error, sink);
          return Next.CONTINUE;
        }
        if (req.error !== null && !req.noreply) sink.reply(req.error);
        return Next.CONTINUE;
      default:
        // shutdown, lru_crawler, cache_memlimit, misbehave: server administration.
        sink.reply(REPLY.NOT_SUPPORTED);
        return Next.CONTINUE;
    }
  }
}

/**
 * A get/gat refused for a too-long key: memcached looked up (a gat
 * touched) the keys before it first. They are fetched as a get of those
 * keys whose reply is the refusal.
 */
function refusedGet(core: RouterCore, req: Request, error: Uint8Array, sink: ReplySink): void {
  // The command (and a gat's exptime) and the keys up to the long one, as sent.
  const end = req.tokEnd[req.longKeyAt - 1];
  const line = new Uint8Array(end - req.tokStart[0] + 2);
  line.set(req.buf.subarray(req.tokStart[0], end));
  line.set([13, 10], line.length - 2);
  const again = new Request();
  parseRequest(line, 0, line.length, again, 0);
  const answer = (ticket: number) => sink.fill(ticket, error);
  get(core, again, line, {
    reserve: () => sink.reserve(),
    fill: answer,
    fillFrame: answer,
    reply: () => sink.reply(error),
    closeAfterReplies: () => sink.closeAfterReplies(),
  });
}

/** `sink` with its next reply position, `ticket`, reserved: the first reserve (or reply) later takes it. */
function heldSink(sink: ReplySink, ticket: number): ReplySink {
  let taken = false;
  const held: ReplySink = {
    reserve() {
      if (taken) return sink.reserve();
      taken = true;
      return ticket;
    },
    fill: (t, reply) => sink.fill(t, reply),
    fillFrame: (t, buf, start, length) => sink.fillFrame(t, buf, start, length),
    reply(bytes) {
      if (taken) return sink.reply(bytes);
      taken = true;
      sink.fill(ticket, bytes);
    },
    closeAfterReplies: () => sink.closeAfterReplies(),
  };
  if (sink.whenRoom) held.whenRoom = (t, go) => sink.whenRoom?.(t, go);
  if (sink.fillPart) held.fillPart = (t, part) => sink.fillPart?.(t, part);
  if (sink.partsFor) held.partsFor = (n, t) => sink.partsFor?.(n, t) ?? false;
  if (sink.afterParts) held.afterParts = (t, go) => sink.afterParts?.(t, go);
  return held;
}
