/**
 * One client connection: read into a reused buffer, parse every complete
 * request, execute, and send all replies of the batch with one write.
 * @module
 */

import { PARSE_CLOSE, parseRequest, Request, Writer } from "../protocol/mod.ts";
import { Action, type Engine, type Session } from "./commands.ts";

const INITIAL_BUFFER = 16384;

/** Serve one accepted connection until it closes. Returns the last action. */
export async function serveConnection(
  conn: Deno.Conn,
  engine: Engine,
  session: Session,
  maxValue: number,
  barrier?: () => Promise<void> | null,
): Promise<number> {
  let buf = new Uint8Array(INITIAL_BUFFER);
  let start = 0, end = 0;
  let swallow = 0;
  const req = new Request();
  const out = new Writer();
  const stats = engine.stats;
  let action: number = Action.CONTINUE;
  try {
    while (action === Action.CONTINUE) {
      if (end === buf.length) {
        // Full: move pending bytes to the front, or grow for a large request.
        const pending = end - start;
        const need = Math.max(req.need, pending + 1);
        if (need > buf.length || start === 0) {
          const next = new Uint8Array(Math.max(buf.length * 2, need));
          next.set(buf.subarray(start, end));
          buf = next;
        } else buf.copyWithin(0, start, end);
        start = 0;
        end = pending;
      }
      const n = await conn.read(buf.subarray(end));
      if (n === null) break;
      end += n;
      stats.bytesRead += n;
      engine.beginBatch();
      try {
        while (action === Action.CONTINUE) {
          if (swallow > 0) {
            const take = Math.min(swallow, end - start);
            swallow -= take;
            start += take;
            if (swallow > 0) break;
          }
          if (start === end) break;
          const used = parseRequest(buf, start, end, req, maxValue);
          if (used === 0) break;
          if (used === PARSE_CLOSE) {
            action = Action.CLOSE;
            break;
          }
          start += used;
          action = engine.execute(req, out, session);
          if (req.swallow > 0) swallow = req.swallow;
        }
      } finally {
        engine.endBatch();
      }
      if (start === end) start = end = 0;
      if (out.length > 0) {
        const wait = barrier?.();
        if (wait) await wait;
        await writeAll(conn, out.view());
        stats.bytesWritten += out.length;
        out.reset();
      }
    }
  } catch (err) {
    if (!isDisconnect(err)) throw err;
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  return action;
}

/** Write every byte (Deno writes may be partial). */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Errors that just mean the peer went away. */
export function isDisconnect(err: unknown): boolean {
  return err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.NotConnected || err instanceof Deno.errors.ConnectionAborted;
}
