/**
 * One client connection: read into a reused buffer, parse every complete
 * request, execute, and send all replies of the batch with one write.
 * @module
 */

import { PARSE_CLOSE, parseRequest, Request, Writer } from "../protocol/mod.ts";
import { closeQuietly, isDisconnect, ReadBuffer, writeAll } from "../transport/mod.ts";
import { Action, type Engine, type Session } from "./commands.ts";
import { AUTH_CLOSE } from "../auth/mod.ts";

/** Serve one accepted connection until it closes. Returns the last action. */
export async function serveConnection(
  conn: Deno.Conn,
  engine: Engine,
  session: Session,
  maxValue: number,
  barrier?: () => Promise<void> | null,
): Promise<number> {
  const rb = new ReadBuffer();
  const req = new Request();
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
        const auth = session.auth;
        const need = auth && !auth.authenticated ? auth.need : req.need;
        if (!await rb.fill(conn, need)) break;
        stats.bytesRead += rb.end - rb.start - before;
      }
      buffered = false;
      engine.beginBatch();
      try {
        while (action === Action.CONTINUE && rb.settle()) {
          const auth = session.auth;
          if (auth && !auth.authenticated) {
            // Before login every byte goes to the login reader (memcached -Y / -S).
            const used = auth.readText(rb.buf, rb.start, rb.end, out);
            if (used === 0) break;
            if (used === AUTH_CLOSE) {
              action = Action.CLOSE;
              break;
            }
            rb.start += used;
            continue;
          }
          const used = parseRequest(rb.buf, rb.start, rb.end, req, maxValue);
          if (used === 0) break;
          if (used === PARSE_CLOSE) {
            action = Action.CLOSE;
            break;
          }
          rb.start += used;
          action = engine.execute(req, out, session);
          if (req.swallow > 0) rb.skip(req.swallow);
          if (session.more) {
            buffered = true;
            break;
          }
        }
      } finally {
        engine.endBatch();
      }
      await flush();
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
