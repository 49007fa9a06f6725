/**
 * One client connection: read into a reused buffer, parse every complete
 * request with the connection's codec (text or binary), execute, and send
 * the replies with as few writes as possible.
 *
 * Memory per connection is bounded: requests already read are executed only
 * while the unsent replies stay under {@linkcode OUTPUT_LIMIT}; above it the
 * replies are written out first (a client that pipelines large gets and
 * never reads stalls on its own socket, as with memcached, and nothing more
 * is read from it meanwhile). An idle connection holds only a small receive
 * buffer: output buffers and large receive buffers are lent from per-thread
 * pools for the time of a batch.
 *
 * memcached's `-R` (reqs_per_event): after that many requests of one read
 * the connection yields, writing what it has so far (other connections
 * run meanwhile), and counts `conn_yields` as memcached's state machine
 * does; a counter decremented per request, nothing more below the limit.
 * `-o read_buf_mem_limit`: a connection holding unparsed bytes holds one
 * of its thread's read buffers (see {@linkcode ReadBudget}).
 * @module
 */

import { Op, PARSE_CLOSE, Request, type Writer, WriterPool } from "../protocol/mod.ts";
import {
  BufferPool,
  closeQuietly,
  isDisconnect,
  rawIo,
  ReadBuffer,
  topUp,
  writeAll,
} from "../transport/mod.ts";
import { AUTH_CLOSE } from "../auth/mod.ts";
import { BINARY_READ } from "./binary.ts";
import { type Codec, fixedCodec, pickCodec } from "./codec.ts";
import type { Engine } from "./commands.ts";
import { Action, type Session } from "./session.ts";
import type { Watcher } from "./watch.ts";
import { type SyncBarrier, SyncReplies } from "./sync_replies.ts";
import type { ReadBudget } from "./read_budget.ts";
import { PRESSED_OUTPUT } from "./output_budget.ts";

/**
 * Unsent reply bytes above which a connection writes before it executes
 * its next request (memcached stops processing a connection whose output
 * does not drain, too).
 */
export const OUTPUT_LIMIT: number = 1048576;
/** Receive buffer an idle connection keeps (most requests fit in one). */
const IDLE_READ = 1024;
/**
 * First size of an output buffer: thousands of connections answered at once
 * each hold one until their write completes; it grows for larger batches
 * (and a pooled one keeps its size).
 */
const WRITER_INITIAL = 1024;
/** Output buffers grown past this are dropped after their batch (a large reply must not stay). */
const WRITER_KEEP = 262144;
/** Bytes of idle output buffers a thread keeps for its connections. */
const WRITERS_KEPT_BYTES = 4194304;
/** Idle 16 KB receive buffers a thread keeps. */
const READS_KEPT = 64;
/** How long the rest of a first binary write may take to be read (ms; it is queued already). */
const TOP_UP_MS = 5;

/**
 * Per-thread state every connection borrows: requests are parsed and run
 * one at a time, synchronously, so text connections share one Request.
 */
const shared = {
  req: new Request(),
  reads: new BufferPool(16384, READS_KEPT),
  writers: new WriterPool(WRITER_INITIAL, WRITER_KEEP, WRITERS_KEPT_BYTES),
};

function takeWriter(): Writer {
  return shared.writers.take();
}

function giveWriter(out: Writer): void {
  shared.writers.give(out);
}

/**
 * A `watch` connection: write its log lines as they come, until the client
 * closes (what it sends is read and ignored, as memcached ignores it).
 */
async function streamLog(
  conn: Deno.Conn,
  w: Watcher,
  write: (w: Watcher) => Promise<void>,
): Promise<void> {
  let open = true;
  const closed = (async () => {
    const sink = new Uint8Array(1024);
    try {
      while (await conn.read(sink) !== null);
    } catch { /* reset or closed by stop */ }
    open = false;
    w.cancel();
  })();
  while (open) {
    await w.wait();
    if (!open) break;
    await write(w);
  }
  await closed;
}

/** What a connection needs from its server besides the engine. */
export interface ConnectionHooks {
  /** Set with `--repl-sync`. */
  barrier?: SyncBarrier;
  /** True once the server stops: no request is executed after that. */
  stopped?: () => boolean;
}

/** Serve one accepted connection until it closes. Returns the last action. */
export async function serveConnection(
  conn: Deno.Conn,
  engine: Engine,
  session: Session,
  maxValue: number,
  hooks: ConnectionHooks = {},
): Promise<number> {
  const rb = new ReadBuffer(IDLE_READ, undefined, shared.reads);
  const io = rawIo(conn); // Deno's ops without the Conn wrappers' promise per read
  const stats = engine.stats;
  const { stopped } = hooks;
  const sync = hooks.barrier ? new SyncReplies(hooks.barrier) : null;
  // -B auto: the first byte of the connection picks text or binary, for good.
  let codec: Codec | null = fixedCodec(engine, shared.req, session.auth ?? null);
  let out: Writer | null = null;
  let action: number = Action.CONTINUE;
  let need = 0; // bytes the unfinished request at rb.start needs in all (0: unknown)
  let buffered = false; // requests wait in rb behind replies written first
  let refusal = 0; // where the reply to a request whose data is being swallowed starts
  // memcached's reqs_per_event (-R below 1 would stall the connection there: one request).
  const perEvent = Math.max(engine.reqsPerEvent, 1);
  let nreqs = perEvent; // requests this read event may still run
  let yielded = false;
  let last = -1; // op of the last request run since memcached's last write (-1: none)
  const budget: ReadBudget | null = engine.readBudget.units > 0 ? engine.readBudget : null;
  let holding = false; // holds one of the thread's read buffers (-o read_buf_mem_limit)
  let pending: Promise<number | null> | null = null; // a first read's top-up still under way
  // What this thread's connections hold while their writes are under way (output_budget.ts).
  const held = engine.outputBudget;
  /** Write the replies; with `keep`, only those before it (the rest stays queued). */
  const flush = async (keep = -1) => {
    if (out === null) return;
    if (sync) keep = await sync.confirm(out, keep);
    const n = keep < 0 ? out.length : keep;
    if (n > 0) {
      const size = out.length;
      held.bytes += size;
      try {
        await writeAll(conn, out.buf.subarray(0, n));
      } finally {
        held.bytes -= size;
      }
      stats.bytesWritten += n;
      codec?.wrote();
    }
    if (n < out.length) out.shift(n);
    else if (buffered) out.length = 0; // more replies follow at once: keep its grown size
    else {
      giveWriter(out);
      out = null;
    }
  };
  try {
    while (action === Action.CONTINUE) {
      if (!buffered) {
        const auth = session.auth;
        // Binary clients pipeline without waiting: read them as memcached does, 16 KB at once
        // (which replies a bad magic byte loses depends on how much one read took in).
        const want = auth && !auth.authenticated && codec?.text !== false
          ? auth.need
          : codec?.text === false
          ? Math.max(need, BINARY_READ)
          : need;
        if (holding && rb.end === rb.start && !rb.swallowing) {
          (budget as ReadBudget).give(); // memcached's rbuf_release: nothing left unparsed
          holding = false;
        }
        // Straight into the buffer (rb.fill would add a promise per read).
        let n: number;
        if (pending !== null) {
          n = (await pending) ?? 0;
          pending = null;
        } else n = await io.read(rb.space(want));
        if (n === 0) break;
        if (budget !== null && !holding) {
          // memcached's rbuf_alloc: no buffer for the bytes that arrived, the connection closes.
          if (!budget.take()) {
            stats.readBufOom++;
            break;
          }
          holding = true;
        }
        rb.end += n;
        nreqs = perEvent;
        last = -1;
        stats.bytesRead += n;
        session.lastCmd = engine.clock.now(); // stats conns, idle_timeout
      }
      buffered = false;
      need = 0;
      session.nread = false;
      if (codec === null) {
        if (rb.end === rb.start) continue;
        codec = pickCodec(engine, rb.buf[rb.start], shared.req, session.auth ?? null);
        // memcached's first read of a binary client takes up to 16 KB (which replies a bad
        // magic byte loses depends on it); ours filled the 1 KB idle buffer: read the rest.
        if (!codec.text && rb.start === 0 && rb.end === IDLE_READ) {
          pending = (await topUp(conn, rb, BINARY_READ, TOP_UP_MS)).pending;
        }
      }
      const req = codec.req;
      req.explicitCasMax = engine.explicitCasMax; // replication may have set it since
      if (stopped?.()) break; // bytes read as the server stopped: not executed
      engine.watchers.cfd = session.id ?? 0;
      engine.beginBatch();
      try {
        while (action === Action.CONTINUE && rb.settle()) {
          out ??= takeWriter();
          const auth = session.auth;
          if (auth && !auth.authenticated && codec.text) {
            // Before login every byte goes to the login reader (memcached -Y / -S).
            const used = auth.readText(rb.buf, rb.start, rb.end, out);
            if (used === 0) break;
            if (used === AUTH_CLOSE) {
              session.error = true;
              action = Action.CLOSE;
              break;
            }
            rb.start += used;
            continue;
          }
          const used = codec.parse(rb.buf, rb.start, rb.end, maxValue);
          if (used === 0) {
            need = req.need; // the Request is shared: keep what this connection waits for
            session.nread = need > 0; // `stats conns`: conn_nread while a value is incomplete
            break;
          }
          if (used === PARSE_CLOSE) {
            codec.closing(out);
            session.error = true;
            action = Action.CLOSE;
            break;
          }
          rb.start += used;
          if (req.cull) {
            const at = codec.cull(out); // memcached drops the replies it had not sent yet
            sync?.cut(at);
          }
          refusal = out.length;
          sync?.before(out.length);
          action = codec.execute(out, session);
          last = req.op;
          sync?.after(out.length);
          if (req.swallow > 0) {
            if (req.swallow > rb.end - rb.start) codec.skipping(out);
            rb.skip(req.swallow);
          } else if (req.swallowLine) rb.skipLine();
          if (--nreqs < 0 && action === Action.CONTINUE) {
            yielded = true;
            buffered = true;
            break;
          }
          // `mn` forces memcached to write back what is queued. While the thread's output
          // budget is used up, a connection holds about one reply before it writes.
          if (
            session.more !== null || req.op === Op.MN ||
            out.length >= (held.bytes > held.limit ? PRESSED_OUTPUT : OUTPUT_LIMIT)
          ) {
            buffered = true;
            break;
          }
        }
      } finally {
        engine.endBatch();
      }
      if (yielded) {
        // memcached writes what is pending, counts the yield, and its next event starts
        // with a request slot spent (conn_new_cmd).
        stats.connYields++;
        yielded = false;
        nreqs = perEvent - 1;
        last = -1;
      } else if (!buffered && last >= 0 && !codec.flushed(last)) {
        // Replies pending as the batch ends: memcached writes them, which spends a slot.
        if (--nreqs < 0) stats.connYields++;
        last = -1;
      }
      if (rb.swallowing && action === Action.CONTINUE && session.more === null) {
        // memcached answers a refused value only once its bytes are swallowed: in text the
        // replies before it go now, in binary nothing is sent until the swallow ends.
        if (codec.text) await flush(refusal);
        refusal = 0;
        buffered = false;
        continue;
      }
      const o = out;
      if (o !== null && sync === null && !buffered) {
        // The usual end of a batch, inline: one write, no flush/writeAll promises.
        const n = o.length;
        if (n > 0) {
          held.bytes += n;
          try {
            const w = await io.write(o.buf.subarray(0, n));
            if (w < n) await writeAll(conn, o.buf.subarray(w, n));
          } finally {
            held.bytes -= n;
          }
          stats.bytesWritten += n;
          codec.wrote();
        }
        giveWriter(o);
        out = null;
      } else await flush();
      // A long reply (metadump) comes in parts, one per hold of the cache, so
      // other threads and connections run in between and memory stays bounded.
      while (session.more !== null) {
        out ??= takeWriter();
        let next: boolean | Promise<void>;
        engine.beginBatch();
        try {
          next = session.more(out);
        } finally {
          engine.endBatch();
        }
        if (next === true) session.more = null;
        else if (next !== false) await next; // (other threads' answers: not under the lock)
        await flush();
      }
      if (session.watcher) {
        if (holding) {
          (budget as ReadBudget).give();
          holding = false;
        }
        await streamLog(conn, session.watcher, async (w) => {
          out ??= takeWriter();
          w.drain(out);
          await flush();
        });
        break;
      }
    }
  } catch (err) {
    if (!isDisconnect(err)) throw err;
  } finally {
    if (out !== null) giveWriter(out);
    if (holding) (budget as ReadBudget).give();
    if (pending === null) rb.release(); // a pending read still writes into its buffer
    closeQuietly(conn);
  }
  return action;
}
