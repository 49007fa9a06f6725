/**
 * One client connection: read into a reused buffer, parse every complete
 * request, execute, and send the replies with as few writes as possible.
 *
 * Memory per connection is bounded: requests already read are executed only
 * while the unsent replies stay under {@linkcode OUTPUT_LIMIT}; above it the
 * replies are written out first (a client that pipelines large gets and
 * never reads stalls on its own socket, as with memcached, and nothing more
 * is read from it meanwhile). An idle connection holds only a small receive
 * buffer: output buffers and large receive buffers are lent from per-thread
 * pools for the time of a batch.
 * @module
 */

import { Op, PARSE_CLOSE, parseRequest, Request, Writer } from "../protocol/mod.ts";
import { BufferPool, closeQuietly, isDisconnect, ReadBuffer, writeAll } from "../transport/mod.ts";
import { Action, type Engine, type Session } from "./commands.ts";

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
/** Idle output buffers a thread keeps for its connections (at most 4 MB in all). */
const WRITERS_KEPT = 16;
/** Idle 16 KB receive buffers a thread keeps. */
const READS_KEPT = 64;

/** Per-thread state every connection borrows: requests run one at a time, synchronously. */
const shared = {
  req: new Request(),
  reads: new BufferPool(16384, READS_KEPT),
  writers: [] as Writer[],
};

function takeWriter(): Writer {
  return shared.writers.pop() ?? new Writer(WRITER_INITIAL, WRITER_KEEP);
}

function giveWriter(out: Writer): void {
  out.reset();
  if (shared.writers.length < WRITERS_KEPT) shared.writers.push(out);
}

/** Serve one accepted connection until it closes. Returns the last action. */
export async function serveConnection(
  conn: Deno.Conn,
  engine: Engine,
  session: Session,
  maxValue: number,
  barrier?: () => Promise<void> | null,
): Promise<number> {
  const rb = new ReadBuffer(IDLE_READ, undefined, shared.reads);
  const req = shared.req;
  const stats = engine.stats;
  let out: Writer | null = null;
  let action: number = Action.CONTINUE;
  let need = 0; // bytes the unfinished request at rb.start needs in all (0: unknown)
  let buffered = false; // requests wait in rb behind replies written first
  let refusal = 0; // where the reply to a request whose data is being swallowed starts
  /** Write the replies; with `keep`, only those before it (the rest stays queued). */
  const flush = async (keep = -1) => {
    if (out === null) return;
    const n = keep < 0 ? out.length : keep;
    if (n > 0) {
      const wait = barrier?.();
      if (wait) await wait;
      await writeAll(conn, out.buf.subarray(0, n));
      stats.bytesWritten += n;
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
        const before = rb.end - rb.start;
        if (!await rb.fill(conn, need)) break;
        stats.bytesRead += rb.end - rb.start - before;
      }
      buffered = false;
      need = 0;
      engine.beginBatch();
      try {
        while (action === Action.CONTINUE && rb.settle()) {
          const used = parseRequest(rb.buf, rb.start, rb.end, req, maxValue);
          if (used === 0) {
            need = req.need;
            break;
          }
          if (used === PARSE_CLOSE) {
            action = Action.CLOSE;
            break;
          }
          rb.start += used;
          out ??= takeWriter();
          refusal = out.length;
          action = engine.execute(req, out, session);
          if (req.swallow > 0) rb.skip(req.swallow);
          else if (req.swallowLine) rb.skipLine();
          // `mn` forces memcached to write back what is queued.
          if (session.more !== null || out.length >= OUTPUT_LIMIT || req.op === Op.MN) {
            buffered = true;
            break;
          }
        }
      } finally {
        engine.endBatch();
      }
      // memcached answers a refused storage command only once its data block
      // has been swallowed (the replies before it go now).
      if (rb.swallowing && action === Action.CONTINUE && session.more === null) {
        await flush(refusal);
        refusal = 0;
        buffered = false;
        continue;
      }
      await flush();
      // A long reply (metadump) comes in parts, one per hold of the cache, so
      // other threads and connections run in between and memory stays bounded.
      while (session.more !== null) {
        out ??= takeWriter();
        engine.beginBatch();
        try {
          if (session.more(out)) session.more = null;
        } finally {
          engine.endBatch();
        }
        await flush();
      }
    }
  } catch (err) {
    if (!isDisconnect(err)) throw err;
  } finally {
    if (out !== null) giveWriter(out);
    rb.release();
    closeQuietly(conn);
  }
  return action;
}
