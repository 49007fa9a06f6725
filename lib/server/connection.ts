/**
 * One client connection: read into a reused buffer, parse every complete
 * request, execute, and send all replies of the batch with one write.
 * @module
 */

import { PARSE_CLOSE, Writer } from "../protocol/mod.ts";
import { closeQuietly, isDisconnect, ReadBuffer, writeAll } from "../transport/mod.ts";
import { type Codec, fixedCodec, pickCodec } from "./codec.ts";
import { Action, type Engine, type Session } from "./commands.ts";

/** Serve one accepted connection until it closes. Returns the last action. */
export async function serveConnection(
  conn: Deno.Conn,
  engine: Engine,
  session: Session,
  maxValue: number,
  barrier?: () => Promise<void> | null,
): Promise<number> {
  const rb = new ReadBuffer();
  // -B auto: the first byte of the connection picks text or binary, for good.
  let codec: Codec | null = fixedCodec(engine);
  const out = new Writer();
  const stats = engine.stats;
  let action: number = Action.CONTINUE;
  const flush = async () => {
    if (out.length === 0) return;
    const wait = barrier?.();
    if (wait) await wait;
    await writeAll(conn, out.view());
    stats.bytesWritten += out.length;
    out.reset();
  };
  let buffered = false; // requests may wait in rb behind a long reply
  try {
    while (action === Action.CONTINUE) {
      if (!buffered) {
        const before = rb.end - rb.start;
        if (!await rb.fill(conn, codec?.req.need ?? 0)) break;
        stats.bytesRead += rb.end - rb.start - before;
      }
      buffered = false;
      if (codec === null) {
        if (rb.end === rb.start) continue;
        codec = pickCodec(engine, rb.buf[rb.start]);
      }
      const req = codec.req;
      engine.beginBatch();
      try {
        while (action === Action.CONTINUE && rb.settle()) {
          const used = codec.parse(rb.buf, rb.start, rb.end, maxValue);
          if (used === 0) break;
          if (used === PARSE_CLOSE) {
            codec.closing(out);
            action = Action.CLOSE;
            break;
          }
          rb.start += used;
          action = codec.execute(out, session);
          if (req.swallow > 0) rb.skip(req.swallow);
          if (session.more) {
            buffered = true;
            break;
          }
        }
      } finally {
        engine.endBatch();
      }
      // memcached sends nothing while it swallows a refused value: the reply waits for its end.
      if (!rb.swallowing) await flush();
      // A long reply (metadump) comes in parts, one per hold of the cache, so
      // other threads and connections run in between and memory stays bounded.
      while (session.more) {
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
    closeQuietly(conn);
  }
  return action;
}
