/**
 * One client connection: read into a reused buffer, parse every complete
 * request, execute, and send all replies of the batch with one write.
 * @module
 */

import {
  ascii,
  BINARY_RESPONSE_MAGIC,
  BinaryStatus,
  PARSE_CLOSE,
  REPLY,
  writeBinaryHeader,
  Writer,
} from "../protocol/mod.ts";
import { closeQuietly, isDisconnect, ReadBuffer, writeAll } from "../transport/mod.ts";
import { type Codec, fixedCodec, pickCodec } from "./codec.ts";
import { Action, type Engine, type Session } from "./commands.ts";
import { AUTH_CLOSE } from "../auth/mod.ts";

/**
 * `--repl-sync`: replies to writes wait until the peer applied them.
 * Positions are offsets in the thread's change stream; they grow with
 * every change this thread makes, and only then.
 */
export interface SyncBarrier {
  /** Position just after the changes made so far. */
  position(): number;
  /**
   * Wait (bounded) until the peer applied the changes up to `target`;
   * `writes` replies wait for it. Resolves with the position the peer is
   * known to have applied: a write that ends after it was not confirmed.
   */
  wait(target: number, writes: number): Promise<number> | number;
  /** `writes` replies were answered with an error: the peer did not confirm them. */
  refused(writes: number): void;
}

/** What a connection needs from its server besides the engine. */
export interface ConnectionHooks {
  /** Set with `--repl-sync`. */
  barrier?: SyncBarrier;
  /** True once the server stops: no request is executed after that. */
  stopped?: () => boolean;
}

const SERVER_ERROR = ascii("SERVER_ERROR");

/** Text of the binary error that replaces an unconfirmed --repl-sync write's reply. */
const PEER_UNAVAILABLE = ascii("replication peer unavailable");

/** Replace the binary reply at copy[at] by a "temporary failure" for the same opcode and opaque. */
function refuseBinary(out: Writer, copy: Uint8Array, at: number): void {
  const opaque = ((copy[at + 12] << 24) | (copy[at + 13] << 16) | (copy[at + 14] << 8) |
    copy[at + 15]) >>> 0;
  writeBinaryHeader(
    out,
    copy[at + 1],
    BinaryStatus.ETMPFAIL,
    opaque,
    0,
    0,
    0,
    PEER_UNAVAILABLE.length,
  );
  out.bytes(PEER_UNAVAILABLE);
}

/**
 * The reply at buf[at] is an error (a write's own error, not an
 * acknowledgement): a text SERVER_ERROR or a binary packet with a status.
 */
function isErrorReply(buf: Uint8Array, at: number): boolean {
  if (buf[at] === BINARY_RESPONSE_MAGIC) return buf[at + 6] !== 0 || buf[at + 7] !== 0;
  if (buf.length - at < SERVER_ERROR.length) return false;
  for (let i = 0; i < SERVER_ERROR.length; i++) if (buf[at + i] !== SERVER_ERROR[i]) return false;
  return true;
}

/** Serve one accepted connection until it closes. Returns the last action. */
export async function serveConnection(
  conn: Deno.Conn,
  engine: Engine,
  session: Session,
  maxValue: number,
  hooks: ConnectionHooks = {},
): Promise<number> {
  const rb = new ReadBuffer();
  // -B auto: the first byte of the connection picks text or binary, for good.
  let codec: Codec | null = fixedCodec(engine);
  const out = new Writer();
  const stats = engine.stats;
  const { barrier, stopped } = hooks;
  // With --repl-sync: (reply start, reply end, stream position) of each write of the batch.
  const writes: number[] = [];
  let action: number = Action.CONTINUE;
  const flush = async () => {
    if (writes.length > 0) await confirm();
    if (out.length === 0) return;
    await writeAll(conn, out.view());
    stats.bytesWritten += out.length;
    out.reset();
  };
  // Replies to writes the peer did not confirm become SERVER_ERROR (the item stays stored here).
  const confirm = async () => {
    const target = writes[writes.length - 1];
    const count = writes.length / 3;
    const w = barrier!.wait(target, count);
    const applied = typeof w === "number" ? w : await w;
    if (applied < target) {
      const copy = out.buf.slice(0, out.length);
      let from = 0, refused = 0;
      out.length = 0;
      for (let i = 0; i < writes.length; i += 3) {
        // An error reply stays as it is (a too-large set also dropped the old item).
        if (writes[i + 2] <= applied || isErrorReply(copy, writes[i])) continue;
        out.bytes(copy, from, writes[i]);
        if (copy[writes[i]] === BINARY_RESPONSE_MAGIC) refuseBinary(out, copy, writes[i]);
        else out.bytes(REPLY.REPL_PEER_UNAVAILABLE);
        from = writes[i + 1];
        refused++;
      }
      out.bytes(copy, from, copy.length);
      barrier!.refused(refused);
    }
    writes.length = 0;
  };
  let buffered = false; // requests may wait in rb behind a long reply
  try {
    while (action === Action.CONTINUE) {
      if (!buffered) {
        const before = rb.end - rb.start;
        const auth = session.auth;
        const need = auth && !auth.authenticated && codec?.text !== false
          ? auth.need
          : codec?.req.need ?? 0;
        if (!await rb.fill(conn, need)) break;
        stats.bytesRead += rb.end - rb.start - before;
      }
      buffered = false;
      if (codec === null) {
        if (rb.end === rb.start) continue;
        codec = pickCodec(engine, rb.buf[rb.start]);
      }
      const req = codec.req;
      req.explicitCasMax = engine.explicitCasMax; // replication may have set it since
      if (stopped?.()) break; // bytes read as the server stopped: not executed
      engine.beginBatch();
      try {
        while (action === Action.CONTINUE && rb.settle()) {
          const auth = session.auth;
          if (auth && !auth.authenticated && codec.text) {
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
          const used = codec.parse(rb.buf, rb.start, rb.end, maxValue);
          if (used === 0) break;
          if (used === PARSE_CLOSE) {
            codec.closing(out);
            action = Action.CLOSE;
            break;
          }
          rb.start += used;
          if (barrier) {
            const position = barrier.position(), at = out.length;
            action = codec.execute(out, session);
            // A write that answers (not noreply/quiet) waits for the peer.
            if (barrier.position() !== position && out.length > at) {
              writes.push(at, out.length, barrier.position());
            }
          } else action = codec.execute(out, session);
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
