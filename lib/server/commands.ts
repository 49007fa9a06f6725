/**
 * Command dispatch for `serve`: a parsed request -> the module that runs
 * it (text_commands, meta_commands, stats_commands, admin_commands,
 * tuning) -> reply bytes appended to the connection's output batch. The
 * state and the protocol-neutral operations are {@linkcode EngineBase}'s.
 * @module
 */

import { decodeAscii, Op, REPLY, type Request, type Writer } from "../protocol/mod.ts";
import { EngineBase, VERSION } from "./engine.ts";
import { Action, type Session } from "./session.ts";
import {
  flushCommand,
  shutdownCommand,
  textArith,
  textDelete,
  textGet,
  textTouch,
  textUpdate,
} from "./text_commands.ts";
import { metaArith, metaDebug, metaDelete, metaGet, metaSet } from "./meta_commands.ts";
import { statsCommand, statsGroup } from "./stats_commands.ts";
import { lruCrawlerCommand, watchCommand } from "./admin_commands.ts";
import { cacheMemlimit, lruCommand, slabsCommand } from "./tuning.ts";

/**
 * The cache engine: {@linkcode EngineBase}'s state and operations, and the
 * running of requests. One per serve thread; all connections of the thread
 * share it, and with `EngineShared` several threads share one cache.
 */
export class Engine extends EngineBase {
  /**
   * Run one parsed request, appending its reply to `out`. The request's
   * buffer must stay untouched until this returns.
   */
  execute(req: Request, out: Writer, session: Session): number {
    const mark = out.length;
    const action = this.#run(req, out, session);
    if (req.noreply && req.op < Op.MG) out.length = mark; // text noreply drops everything
    return action;
  }

  #run(req: Request, out: Writer, session: Session): number {
    switch (req.op) {
      case Op.ERROR:
        if (req.close) {
          session.error = true; // watch: conn_close reason=error
          return Action.CLOSE;
        }
        // memcached -F refuses before it parses the delay.
        if (!this.flushEnabled && req.tokenIs(0, "flush_all")) {
          if (req.error === REPLY.BAD_EXPTIME) return flushCommand(this, req, out);
        }
        // memcached looked up a refused get's keys before the too-long one.
        for (let i = req.firstKey; i < req.longKeyAt; i++) {
          const exptime = req.longKeyTouch ? this.absoluteExptime(req.exptime) : 0;
          this.fetch(req.buf, req.tokStart[i], req.tokEnd[i], req.longKeyTouch, exptime);
        }
        if (req.error) out.bytes(req.error);
        return Action.CONTINUE;
      case Op.GET:
      case Op.GETS:
      case Op.GAT:
      case Op.GATS:
        textGet(this, req, out, session);
        return Action.CONTINUE;
      case Op.SET:
      case Op.ADD:
      case Op.REPLACE:
      case Op.APPEND:
      case Op.PREPEND:
      case Op.CAS:
        textUpdate(this, req, out);
        return Action.CONTINUE;
      case Op.DELETE:
        textDelete(this, req, out);
        return Action.CONTINUE;
      case Op.INCR:
      case Op.DECR:
        textArith(this, req, out);
        return Action.CONTINUE;
      case Op.TOUCH:
        textTouch(this, req, out);
        return Action.CONTINUE;
      case Op.FLUSH_ALL:
        return flushCommand(this, req, out);
      case Op.VERSION:
        out.text("VERSION " + VERSION + "\r\n");
        return Action.CONTINUE;
      case Op.VERBOSITY:
        this.verbosity = Math.min(
          Number(decodeAscii(req.buf, req.tokStart[1], req.tokEnd[1])) || 0,
          2,
        );
        out.bytes(REPLY.OK);
        return Action.CONTINUE;
      case Op.QUIT:
        return Action.CLOSE;
      case Op.SHUTDOWN:
        return shutdownCommand(this, req, out);
      case Op.STATS:
        statsCommand(this, req, out, session);
        return Action.CONTINUE;
      case Op.MN:
        out.bytes(REPLY.MN);
        return Action.CONTINUE;
      case Op.ME:
        metaDebug(this, req, out);
        return Action.CONTINUE;
      case Op.MG:
        this.stats.cmdMeta++;
        metaGet(this, req, out);
        return Action.CONTINUE;
      case Op.MS:
        this.stats.cmdMeta++;
        metaSet(this, req, out);
        return Action.CONTINUE;
      case Op.MD:
        this.stats.cmdMeta++;
        metaDelete(this, req, out);
        return Action.CONTINUE;
      case Op.MA:
        this.stats.cmdMeta++;
        metaArith(this, req, out);
        return Action.CONTINUE;
      case Op.LRU_CRAWLER:
        lruCrawlerCommand(this, req, out, session);
        return Action.CONTINUE;
      case Op.CACHE_MEMLIMIT:
        cacheMemlimit(req, out, this.store);
        return Action.CONTINUE;
      case Op.SLABS:
        slabsCommand(req, out, this.tunables, this.store);
        return Action.CONTINUE;
      case Op.LRU:
        lruCommand(req, out, this.tunables);
        return Action.CONTINUE;
      case Op.WATCH:
        watchCommand(this, req, out, session);
        return Action.CONTINUE;
      default:
        out.bytes(REPLY.ERROR);
        return Action.CONTINUE;
    }
  }

  /**
   * The `STAT name value` lines of a stats group ("" = general, settings,
   * items, slabs, sizes, then memrep's own groups), without END. False
   * for an unknown group. The binary protocol re-frames these lines.
   */
  statsGroup(name: string, out: Writer): boolean {
    return statsGroup(this, name, out);
  }
}
