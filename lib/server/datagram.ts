/**
 * memcached's UDP protocol (`-U`): every datagram starts with an 8-byte
 * frame header (request id, sequence number, datagram count, reserved; each
 * a big-endian 16-bit number), then text or binary requests exactly as over
 * TCP, parsed and run by the same codecs and engine as a TCP connection's.
 *
 * What memcached 1.6.18 does, and this does too:
 * - a datagram of 8 bytes or fewer, or whose header does not say "1
 *   datagram", is dropped unanswered (a request must fit one datagram);
 * - the first payload byte picks text or binary, whatever -B says;
 * - every reply (one per request; a text multi-key get has one per key)
 *   is its own message, cut into datagrams of at most 1400 bytes with the
 *   request id, its sequence number and the message's datagram count;
 *   a reply memcached leaves empty (text quit, a missed key of a
 *   multi-get, a quiet binary reply; not a text noreply) is one bare header
 *   with count 0 when it is the first of a write, and nothing after another
 *   reply of the same write;
 * - a request cut off in its line is dropped; one whose value (binary:
 *   body) is incomplete takes the next datagrams whole, header included,
 *   as its remaining bytes (memcached reads them straight into the item),
 *   and so does the swallowing of a refused value; the reply goes to the
 *   request's sender with its id.
 * - `quit` or a bad binary magic byte ends the datagram (the socket stays).
 * @module
 */

import {
  BINARY_HEADER_LENGTH,
  BINARY_REQUEST_MAGIC,
  Op,
  PARSE_CLOSE,
  Request,
  Writer,
} from "../protocol/mod.ts";
import { isDisconnect, ReadBuffer } from "../transport/mod.ts";
import { type Codec, pickCodec } from "./codec.ts";
import type { Engine } from "./commands.ts";
import type { ConnectionHooks } from "./connection.ts";
import { Action, type Session } from "./session.ts";
import { SyncReplies } from "./sync_replies.ts";

/** Bytes of the frame header. */
export const UDP_HEADER_SIZE = 8;
/** Largest datagram memcached sends, header included (UDP_MAX_PAYLOAD_SIZE). */
export const UDP_MAX_DATAGRAM = 1400;
/** Reply bytes per datagram. */
const UDP_DATA_SIZE = UDP_MAX_DATAGRAM - UDP_HEADER_SIZE;
/** memcached's UDP read buffer: a longer datagram is cut there. */
const UDP_READ_SIZE = 65536;

/** What a UDP socket shows in `stats conns` (memcached's UDP "connection"). */
export interface DatagramSession extends Session {
  /** The sender whose request is under way (nread, swallow); null while idle. */
  peer: Deno.NetAddr | null;
  /** memcached's state while a request waits for more datagrams. */
  waiting: "conn_nread" | "conn_swallow" | null;
}

/** A fresh session for one UDP socket. */
export function datagramSession(): DatagramSession {
  return {
    more: null,
    auth: null,
    lastCmd: undefined,
    nread: false,
    watcher: null,
    id: 0,
    error: false,
    peer: null,
    waiting: null,
  };
}

/** One reply: where it sits in the output, and whether memcached sends it even empty. */
interface Reply {
  start: number;
  end: number;
  /** Sent as a bare header when empty and first of its write (memcached's non-skip resp: text quit, binary). */
  bare: boolean;
  /** The reply ends a write (memcached's conn_mwrite after it). */
  flush: boolean;
}

const VALUE = [86, 65, 76, 85, 69, 32]; // "VALUE "

/**
 * A text get of several keys: memcached gives each key its own reply (a
 * miss an empty one), END on the last. Cuts [start, end) of `out` so;
 * null when the reply is not hits then END (an error: one reply).
 */
function splitGet(req: Request, buf: Uint8Array, start: number, end: number): Reply[] | null {
  const replies: Reply[] = [];
  let at = start;
  for (let k = req.firstKey; k < req.ntokens; k++) {
    const from = at;
    const klen = req.tokEnd[k] - req.tokStart[k];
    let hit = end - at > 6 + klen;
    for (let i = 0; hit && i < 6; i++) hit = buf[at + i] === VALUE[i];
    for (let i = 0; hit && i < klen; i++) hit = buf[at + 6 + i] === req.buf[req.tokStart[k] + i];
    if (hit && buf[at + 6 + klen] === 32) {
      // VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n
      const lf = buf.indexOf(10, at);
      if (lf < 0 || lf >= end) return null;
      const fields = new TextDecoder().decode(buf.subarray(at + 7 + klen, lf)).trim().split(" ");
      const bytes = Number(fields[1]);
      if (!Number.isInteger(bytes)) return null;
      at = lf + 1 + bytes + 2;
      if (at > end) return null;
    }
    replies.push({ start: from, end: at, bare: true, flush: false });
  }
  if (replies.length === 0 || end - at !== 5) return null; // "END\r\n" ends the last one
  replies[replies.length - 1].end = end;
  replies[replies.length - 1].flush = true;
  return replies;
}

/**
 * Serve one bound UDP socket until it closes (server stop) or a request
 * shuts the server down; returns the last action. Its state between
 * datagrams (a request waiting for more) is per socket, as memcached's
 * UDP connection's is.
 */
export async function serveDatagrams(
  socket: Deno.DatagramConn,
  engine: Engine,
  session: DatagramSession,
  maxValue: number,
  hooks: ConnectionHooks = {},
): Promise<number> {
  const rb = new ReadBuffer(UDP_READ_SIZE);
  const recv = new Uint8Array(UDP_READ_SIZE);
  const frame = new Uint8Array(UDP_MAX_DATAGRAM);
  const out = new Writer(16384, 1048576);
  const textReq = new Request();
  const text = pickCodec(engine, 0, textReq, null);
  const binary = pickCodec(engine, BINARY_REQUEST_MAGIC, textReq, null);
  const sync = hooks.barrier ? new SyncReplies(hooks.barrier) : null;
  let codec: Codec = text;
  let replies: Reply[] = [];
  let to: Deno.NetAddr | null = null; // the sender of the request(s) in `out`
  let id = 0;
  let need = 0; // bytes in all the request at rb.start waits for (conn_nread)
  let action: number = Action.CONTINUE;
  const stats = () => engine.stats; // (moves into shared memory with serve threads)

  /** memcached's transmit_udp over the replies of one datagram (see the module doc). */
  const send = async () => {
    let folding = false;
    for (const r of replies) {
      const len = r.end - r.start;
      if (len === 0 && (folding || !r.bare)) {
        if (r.flush) folding = false;
        continue;
      }
      const total = Math.min(Math.ceil(len / UDP_DATA_SIZE), 0xffff);
      let seq = 0;
      let at = r.start;
      do {
        const n = Math.min(UDP_DATA_SIZE, r.end - at);
        frame[0] = id >> 8;
        frame[1] = id & 0xff;
        frame[2] = (seq >> 8) & 0xff;
        frame[3] = seq & 0xff;
        frame[4] = total >> 8;
        frame[5] = total & 0xff;
        frame[6] = frame[7] = 0;
        frame.set(out.buf.subarray(at, at + n), UDP_HEADER_SIZE);
        try {
          stats().bytesWritten += await socket.send(
            frame.subarray(0, UDP_HEADER_SIZE + n),
            to as Deno.NetAddr,
          );
        } catch (err) {
          if (err instanceof Deno.errors.BadResource) throw err;
          return; // the rest of this reply is lost, as a datagram may be
        }
        seq++;
        at += n;
      } while (at < r.end);
      folding = !r.flush;
    }
  };

  /** Parse and run what rb holds; false when a request waits for more datagrams. */
  const run = (): boolean => {
    const req = codec.req;
    req.explicitCasMax = engine.explicitCasMax;
    engine.beginBatch();
    try {
      while (action === Action.CONTINUE && rb.settle()) {
        const used = codec.parse(rb.buf, rb.start, rb.end, maxValue);
        if (used === 0) {
          // A value (binary: a body after a whole header) still to come takes the next
          // datagrams; a line cut off is dropped with the datagram.
          const value = codec.text ? req.need > 0 : rb.end - rb.start >= BINARY_HEADER_LENGTH;
          if (value) {
            need = req.need;
            return false;
          }
          rb.start = rb.end;
          break;
        }
        if (used === PARSE_CLOSE) {
          codec.closing(out); // memcached's conn_closing drops what it had not sent
          trim();
          rb.start = rb.end;
          break;
        }
        rb.start += used;
        if (req.cull) {
          codec.cull(out);
          trim();
        }
        const at = out.length;
        sync?.before(at);
        action = codec.execute(out, session);
        sync?.after(out.length);
        const split = codec.text && out.length > at && req.ntokens - req.firstKey > 1 &&
            (req.op === Op.GET || req.op === Op.GETS || req.op === Op.GAT || req.op === Op.GATS)
          ? splitGet(req, out.buf, at, out.length)
          : null;
        if (split) replies.push(...split);
        else {
          replies.push({
            start: at,
            end: out.length,
            bare: !codec.text || req.op === Op.QUIT, // binary: even a quiet reply is a resp
            flush: codec.flushed(req.op),
          });
        }
        if (req.swallow > 0) rb.skip(req.swallow);
        else if (req.swallowLine) rb.skipLine();
        if (session.watcher) { // watch over UDP: nothing to stream to
          engine.watchers.remove(session.watcher);
          session.watcher = null;
        }
      }
    } finally {
      engine.endBatch();
    }
    return !rb.swallowing;
  };

  /** Replies cut back (cull, close): drop those past the output's end. */
  const trim = () => {
    replies = replies.filter((r) => r.start < out.length || (r.start === out.length && r.bare));
    for (const r of replies) r.end = Math.min(r.end, out.length);
  };

  try {
    while (action === Action.CONTINUE && !hooks.stopped?.()) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await socket.receive(recv);
      } catch (err) {
        if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) break;
        continue; // (an ICMP error reported on the socket: nothing to do with the next datagram)
      }
      if (hooks.stopped?.()) break;
      const n = data.length;
      if (session.waiting === null) {
        if (n <= UDP_HEADER_SIZE) continue;
        stats().bytesRead += n;
        if (data[4] !== 0 || data[5] !== 1) continue; // a request of several datagrams
        id = (data[0] << 8) | data[1];
        to = session.peer = from as Deno.NetAddr;
        rb.start = rb.end = 0;
        rb.space(n).set(data.subarray(UDP_HEADER_SIZE));
        rb.end = n - UDP_HEADER_SIZE;
        codec = data[UDP_HEADER_SIZE] === BINARY_REQUEST_MAGIC ? binary : text;
        out.length = 0;
        replies = [];
      } else {
        // memcached reads the datagram, header and all, into what the request waits for.
        stats().bytesRead += n;
        const take = session.waiting === "conn_nread" ? Math.min(n, need - (rb.end - rb.start)) : n;
        rb.space(take).set(data.subarray(0, take));
        rb.end += take;
        if (session.waiting === "conn_swallow") {
          rb.settle();
          if (rb.swallowing) continue;
          rb.start = rb.end; // the rest of that datagram is not read
        }
      }
      session.lastCmd = engine.clock.now();
      const done = run();
      session.waiting = done ? null : rb.swallowing ? "conn_swallow" : "conn_nread";
      session.nread = !done;
      session.peer = done ? null : to;
      if (!done) continue;
      while (session.more !== null) { // a reply in parts (metadump): all of it, one message
        let next: boolean | Promise<void>;
        engine.beginBatch();
        try {
          next = session.more(out);
        } finally {
          engine.endBatch();
        }
        if (next === true) session.more = null;
        else if (next !== false) await next;
        const last = replies[replies.length - 1];
        if (last) last.end = out.length;
      }
      if (sync) {
        const before = out.length;
        await sync.confirm(out, -1);
        // A refused write's reply was rewritten: the replies after the first change shift.
        if (out.length !== before) {
          replies = [{ start: 0, end: out.length, bare: false, flush: true }];
        }
      }
      codec.wrote();
      if (replies.length > 0) await send();
      // quit ends only the datagram (run() sets action).
      if ((action as number) === Action.CLOSE) action = Action.CONTINUE;
    }
  } catch (err) {
    if (!isDisconnect(err)) throw err;
  }
  return action;
}
