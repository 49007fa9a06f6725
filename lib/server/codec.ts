/**
 * The two request codecs a serve connection can speak (memcached -B): text
 * and meta through the text parser and the engine, binary through
 * lib/protocol/binary.ts and {@linkcode BinaryExecutor}.
 * @module
 */

import {
  BINARY_REQUEST_MAGIC,
  BinaryRequest,
  parseBinaryRequest,
  parseRequest,
  Request,
  textTransmits,
  type Writer,
} from "../protocol/mod.ts";
import type { AuthSession } from "../auth/mod.ts";
import { BinaryExecutor } from "./binary.ts";
import type { Engine } from "./commands.ts";
import type { Session } from "./session.ts";

/** One connection's parser and executor, over its reused request. */
export interface Codec {
  /** The request parse fills (`need`, `swallow` are read by the connection). */
  readonly req: Request;
  /** Text and meta (the -Y login reads these bytes before login). */
  readonly text: boolean;
  /** Parse one request from buf[start, end): bytes used, 0 for more, or PARSE_CLOSE. */
  parse(buf: Uint8Array, start: number, end: number, maxValue: number): number;
  /** Run the parsed request, appending its reply; returns an Action. */
  execute(out: Writer, session: Session): number;
  /** parse said PARSE_CLOSE: drop from `out` what memcached would not have sent yet. */
  closing(out: Writer): void;
  /** The connection wrote its replies out: the next request starts a new read event. */
  wrote(): void;
  /**
   * After the last request run: memcached wrote its replies out at once
   * (text get/gat/mn/quit; binary errors, noop, quit), leaving none pending.
   */
  flushed(op: number): boolean;
  /**
   * The parsed request drops the replies memcached had not sent yet
   * (`req.cull`): cut `out` back to memcached's last write and return
   * that offset.
   */
  cull(out: Writer): number;
  /**
   * The request's body is skipped past the bytes read: memcached's skip
   * reads to its end and no further, so it transmits what `out` holds then.
   */
  skipping(out: Writer): void;
}

/**
 * The codec every connection speaks under -B ascii or -B binary; null under
 * auto. Text codecs parse into `textReq` (one per thread is enough). `auth`
 * is the connection's login state: with -S its binary codec does SASL.
 */
export function fixedCodec(
  engine: Engine,
  textReq: Request = new Request(),
  auth: AuthSession | null = null,
): Codec | null {
  const protocol = engine.protocol;
  if (protocol === "ascii") return textCodec(engine, textReq);
  if (protocol === "binary") return binaryCodec(engine, auth);
  return null;
}

/** -B auto: a connection whose first byte is 0x80 speaks binary, any other text. */
export function pickCodec(
  engine: Engine,
  firstByte: number,
  textReq: Request = new Request(),
  auth: AuthSession | null = null,
): Codec {
  return firstByte === BINARY_REQUEST_MAGIC
    ? binaryCodec(engine, auth)
    : textCodec(engine, textReq);
}

/** Text ops after which memcached writes its replies out at once (conn_mwrite). */

function textCodec(engine: Engine, req: Request): Codec {
  // Where memcached last wrote out in `out`: a too-long get key drops the replies after it.
  // `stacked`: requests have run since (their replies, even noreply ones, are pending).
  let sent = 0, fresh = true, stacked = false;
  return {
    req,
    text: true,
    parse: (buf, start, end, maxValue) => parseRequest(buf, start, end, req, maxValue),
    execute: (out, session) => {
      if (fresh) {
        fresh = false;
        sent = out.length;
        stacked = false;
      }
      req.stacked = stacked;
      const action = engine.execute(req, out, session);
      stacked = !textTransmits(req.op);
      if (!stacked) {
        sent = out.length;
        engine.unpinAll();
      }
      return action;
    },
    closing: () => {},
    wrote: () => {
      fresh = true;
    },
    flushed: textTransmits,
    cull: (out) => {
      if (fresh) return out.length;
      out.length = Math.min(out.length, sent);
      return out.length;
    },
    skipping: () => {},
  };
}

function binaryCodec(engine: Engine, auth: AuthSession | null): Codec {
  const req = new BinaryRequest();
  const executor = new BinaryExecutor(engine);
  // -S: the session says which opcodes may run before login (the parser refuses the others
  // where memcached's dispatch_bin_command does) and the SASL opcodes become requests.
  const sasl = auth !== null && auth.authenticator.sasl ? auth : null;
  const permits = sasl === null ? null : (opcode: number) => sasl.binaryPermits(opcode);
  // memcached transmits at an error reply or a noop, and after -R + 1 requests of one read
  // event (then every -R: its reqs_per_event yield); after a success it goes on parsing. A bad magic
  // byte closes the connection, and the successes queued since are never sent.
  let sent = 0, fresh = true, count = 0, group = 0;
  const perEvent = Math.max(engine.reqsPerEvent, 1);
  return {
    req,
    text: false,
    parse: (buf, start, end, maxValue) =>
      parseBinaryRequest(buf, start, end, req, maxValue, permits),
    execute: (out) => {
      if (fresh) { // the connection wrote out: a new read event
        fresh = false;
        sent = out.length;
        count = 0;
        group = perEvent + 1;
      }
      const action = executor.execute(req, out, sasl);
      if (++count === group) {
        count = 0;
        group = perEvent;
        sent = out.length;
        engine.unpinAll();
      } else if (executor.flushes) {
        sent = out.length;
        engine.unpinAll();
      }
      return action;
    },
    closing: (out) => {
      if (!fresh) out.length = Math.min(out.length, sent);
    },
    wrote: () => {
      fresh = true;
    },
    flushed: () => executor.flushes,
    cull: (out) => out.length,
    skipping: (out) => {
      sent = out.length;
    },
  };
}
