/**
 * The binary protocol's reply path for `serve`: a {@linkcode BinaryRequest}
 * from lib/protocol/binary.ts runs on the engine's protocol-neutral
 * operations (fetch, storage.ts's storeValue, remove, delta, flushAll,
 * statsGroup), and the results are framed as memcached 1.6.18's
 * proto_bin.c frames them.
 * @module
 */

import {
  ascii,
  BINARY_HEADER_LENGTH,
  BINARY_PROTOCOL_VERSION,
  BinaryOpcode,
  type BinaryRequest,
  BinaryStatus,
  NO_AUTOVIVIFY,
  Op,
  REPLY,
  writeBinaryError,
  writeBinaryHeader,
  writeBinaryStat,
  writeBinaryStatLines,
  writeBinaryU32,
  writeBinaryU64,
  Writer,
} from "../protocol/mod.ts";
import { type AuthSession, binarySaslRequest } from "../auth/mod.ts";
import type { Engine } from "./commands.ts";
import { Action } from "./session.ts";
import { storeValue } from "./storage.ts";

/** `stat detail dump`: memcached's empty stats_prefix_dump is the text "END\r\n". */
const DETAIL_DUMP = ascii("detailedEND\r\n");

/** What memcached reads of a binary connection at once (its read buffer). */
export const BINARY_READ = 16384;

/** Runs binary requests on one engine; one per connection (it keeps a stats scratch). */
export class BinaryExecutor {
  #engine: Engine;
  #scratch: Writer | null = null;
  /** The last request's reply is one memcached transmits at once (an error, a noop). */
  flushes = false;

  /** An executor over `engine`. */
  constructor(engine: Engine) {
    this.#engine = engine;
  }

  /**
   * Run one parsed request, appending its reply packets to `out`; returns an
   * Action. `auth` is the connection's login state under -S (SASL requests).
   */
  execute(req: BinaryRequest, out: Writer, auth: AuthSession | null = null): number {
    const engine = this.#engine;
    this.flushes = false;
    if (req.sasl && auth !== null) return this.#sasl(req, out, auth);
    switch (req.op) {
      case Op.ERROR:
        // memcached transmits an error at once unless it goes on to skip body bytes.
        this.flushes = req.swallow === 0;
        if (req.error) out.bytes(req.error);
        return req.closeAfter ? Action.CLOSE : Action.CONTINUE;
      case Op.GET:
      case Op.GAT:
      case Op.TOUCH:
        this.#get(req, out);
        return Action.CONTINUE;
      case Op.SET:
      case Op.ADD:
      case Op.REPLACE:
      case Op.APPEND:
      case Op.PREPEND:
        this.#update(req, out);
        return Action.CONTINUE;
      case Op.DELETE: {
        const r = engine.remove(req.keyBuf, req.keyStart, req.keyEnd, req.cas);
        if (r === REPLY.DELETED) ok(out, req, 0);
        else if (r === REPLY.EXISTS) this.#error(out, req, BinaryStatus.KEY_EEXISTS);
        else this.#error(out, req, BinaryStatus.KEY_ENOENT);
        return Action.CONTINUE;
      }
      case Op.INCR:
      case Op.DECR:
        this.#arith(req, out);
        return Action.CONTINUE;
      case Op.FLUSH_ALL:
        // memcached -F: "Auth failure." (quiet or not; not counted in cmd_flush).
        if (!engine.flushEnabled) {
          this.#error(out, req, BinaryStatus.AUTH_ERROR);
          return Action.CONTINUE;
        }
        engine.flushAll(req.exptime);
        ok(out, req, 0);
        return Action.CONTINUE;
      case Op.MN: // noop
        this.flushes = true;
        ok(out, req, 0);
        return Action.CONTINUE;
      case Op.VERSION:
        writeBinaryHeader(
          out,
          req.opcode,
          0,
          req.opaque,
          0,
          0,
          0,
          BINARY_PROTOCOL_VERSION.length,
        );
        out.text(BINARY_PROTOCOL_VERSION);
        return Action.CONTINUE;
      case Op.QUIT:
        ok(out, req, 0);
        return Action.CLOSE;
      case Op.STATS:
        this.#stats(req, out);
        return Action.CONTINUE;
    }
    this.#error(out, req, BinaryStatus.UNKNOWN_COMMAND);
    return Action.CONTINUE;
  }

  /**
   * SASL list mechs, auth, step (lib/auth answers as memcached -S does): the
   * body alone, no key, no extras, CAS 0. A success is queued as any
   * (write_bin_response); errors and "continue" are transmitted at once,
   * but those memcached answers while skipping the data.
   */
  #sasl(req: BinaryRequest, out: Writer, auth: AuthSession): number {
    const a = binarySaslRequest(auth, req);
    // An answer given while skipping the data goes out at once only when the data went on past
    // memcached's read buffer (the skip then reads the socket to the data's end, no further).
    this.flushes = a.status !== BinaryStatus.SUCCESS &&
      (!a.swallow || BINARY_HEADER_LENGTH + req.bodylen > BINARY_READ);
    writeBinaryHeader(out, req.opcode, a.status, req.opaque, 0, 0, 0, a.body.length);
    out.bytes(a.body);
    return a.close ? Action.CLOSE : Action.CONTINUE;
  }

  /** get/getk/gat/gatk/touch and quiet forms (process_bin_get_or_touch). */
  #get(req: BinaryRequest, out: Writer): void {
    const engine = this.#engine;
    const touch = req.op !== Op.GET;
    const exptime = touch ? engine.absoluteExptime(req.exptime) : 0;
    const h = engine.fetch(req.keyBuf, req.keyStart, req.keyEnd, touch, exptime);
    if (h < 0) {
      if (req.noreply) return;
      if (req.returnKey) {
        const n = req.keyEnd - req.keyStart;
        writeBinaryHeader(out, req.opcode, BinaryStatus.KEY_ENOENT, req.opaque, 0, n, 0, n);
        out.bytes(req.keyBuf, req.keyStart, req.keyEnd);
      } else this.#error(out, req, BinaryStatus.KEY_ENOENT);
      return;
    }
    const store = engine.store;
    const value = req.op !== Op.TOUCH;
    const vlen = value ? store.valueLength(h) : 0;
    const klen = req.returnKey ? req.keyEnd - req.keyStart : 0;
    writeBinaryHeader(
      out,
      req.opcode,
      0,
      req.opaque,
      engine.clientCas(h),
      klen,
      4,
      4 + klen + vlen,
    );
    writeBinaryU32(out, store.flags(h));
    if (klen > 0) out.bytes(req.keyBuf, req.keyStart, req.keyEnd);
    if (value) {
      const vo = store.valueOffset(h);
      out.bytes(store.buffer(h), vo, vo + vlen);
    }
    engine.pin(h); // memcached's reply holds the item until it is written
  }

  /** set/add/replace/append/prepend and quiet forms (complete_update_bin). */
  #update(req: BinaryRequest, out: Writer): void {
    const engine = this.#engine;
    const op = req.op;
    // -C: memcached's item holds no CAS, so a set with one is a plain set.
    const cas = engine.casEnabled ? req.cas : 0;
    const mode = cas !== 0 && op !== Op.APPEND && op !== Op.PREPEND ? "cas" : op;
    const r = storeValue(engine, req, mode, cas, req.command === BinaryOpcode.SET);
    if (r === REPLY.STORED) ok(out, req, engine.lastCas);
    else if (r === REPLY.EXISTS) this.#error(out, req, BinaryStatus.KEY_EEXISTS);
    else if (r === REPLY.NOT_FOUND) this.#error(out, req, BinaryStatus.KEY_ENOENT);
    else if (r === REPLY.TOO_LARGE) this.#error(out, req, BinaryStatus.E2BIG);
    else if (r === REPLY.NO_MEMORY) {
      this.#error(out, req, BinaryStatus.ENOMEM, "Out of memory allocating item");
    } else {
      // NOT_STORED: add of a present key, replace of a missing one, or append/prepend.
      const status = op === Op.ADD
        ? BinaryStatus.KEY_EEXISTS
        : op === Op.REPLACE
        ? BinaryStatus.KEY_ENOENT
        : BinaryStatus.NOT_STORED;
      this.#error(out, req, status);
    }
  }

  /** incr/decr with initial value and expiration (complete_incr_bin). */
  #arith(req: BinaryRequest, out: Writer): void {
    const engine = this.#engine;
    const create = req.arithExptime !== NO_AUTOVIVIFY;
    const r = engine.delta(req, req.cas, !create);
    if (r === REPLY.STORED) {
      this.#counter(req, out, BigInt(engine.deltaResult), engine.lastCas);
    } else if (r === REPLY.NON_NUMERIC) {
      this.#error(out, req, BinaryStatus.DELTA_BADVAL);
    } else if (r === REPLY.OUT_OF_MEMORY) {
      this.#error(out, req, BinaryStatus.ENOMEM, "Out of memory incrementing value");
    } else if (r === REPLY.EXISTS) {
      this.#error(out, req, BinaryStatus.KEY_EEXISTS);
    } else if (!create) {
      this.#error(out, req, BinaryStatus.KEY_ENOENT);
    } else {
      const h = engine.createCounter(req, req.initialBig, engine.absoluteExptime(req.arithExptime));
      if (h < 0) {
        this.#error(out, req, BinaryStatus.ENOMEM, "Out of memory allocating new item");
      } else {
        engine.observer?.stored(h);
        this.#counter(req, out, req.initialBig, engine.lastCas);
      }
    }
  }

  /** An error packet (write_bin_error): memcached transmits it at once. */
  #error(out: Writer, req: BinaryRequest, status: number, text?: string): void {
    this.flushes = true;
    writeBinaryError(out, req, status, text);
  }

  #counter(req: BinaryRequest, out: Writer, value: bigint, cas: number): void {
    if (req.noreply) return;
    writeBinaryHeader(out, req.opcode, 0, req.opaque, cas, 0, 0, 8);
    writeBinaryU64(out, value);
  }

  /** stat with a group key (process_bin_stat): one packet per line, then an empty one. */
  #stats(req: BinaryRequest, out: Writer): void {
    const engine = this.#engine;
    const key = String.fromCharCode(...req.keyBuf.subarray(req.keyStart, req.keyEnd));
    const scratch = this.#scratch ??= new Writer(4096);
    scratch.reset();
    if (key.length === 0) engine.statsGroup("", scratch);
    else if (key.startsWith("reset")) engine.resetStats();
    else if (key.startsWith("settings")) engine.statsGroup("settings", scratch);
    else if (key.startsWith("detail")) {
      const sub = key.slice(6);
      if (sub.startsWith(" dump")) writeBinaryStat(out, req.opaque, DETAIL_DUMP, 0, 8, 8, 13);
      else if (!sub.startsWith(" on") && !sub.startsWith(" off")) {
        this.#error(out, req, BinaryStatus.KEY_ENOENT);
        return;
      }
    } else if (!engine.statsGroup(key, scratch)) {
      this.#error(out, req, BinaryStatus.KEY_ENOENT);
      return;
    }
    writeBinaryStatLines(out, req.opaque, scratch.buf, 0, scratch.length);
    writeBinaryHeader(out, BinaryOpcode.STAT, 0, req.opaque, 0, 0, 0, 0);
  }
}

/** An empty success reply (write_bin_response), unless the request is quiet. */
function ok(out: Writer, req: BinaryRequest, cas: number): void {
  if (req.noreply) return;
  writeBinaryHeader(out, req.opcode, 0, req.opaque, cas, 0, 0, 0);
}
