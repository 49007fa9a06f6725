/**
 * A multi-get of more than {@linkcode SINGLE_KEYS} keys, fetched and
 * written in parts paced by the client: see {@linkcode Stream}.
 * @module
 */

import { carveCopy, Op, type OpCode, REPLY, type Request } from "../../protocol/mod.ts";
import type { ReplySink, RouterCore } from "./core.ts";
import { fanOut, type PartSink, SINGLE_KEYS } from "./multiget.ts";

/** Keys of a long multi-get's first part (its values' size is not known yet). */
const FIRST_PART_KEYS = 32;
/** Bytes a part of a long multi-get aims at once its largest value is known. */
const PART_BYTES = 1048576;

/** True when `sink` writes replies in parts (a client connection does). */
export function writesParts(sink: ReplySink): sink is StreamSink {
  return sink.whenRoom !== undefined && sink.fillPart !== undefined;
}

/** get/gets with `nkeys` (more than {@linkcode SINGLE_KEYS}) keys, in parts; the reply fills `ticket`. */
export function getInParts(
  core: RouterCore,
  req: Request,
  nkeys: number,
  ticket: number,
  sink: StreamSink,
): void {
  const buf = req.buf;
  const ts = req.tokStart, te = req.tokEnd;
  const first = req.firstKey;
  const op = req.op;
  const touch = op === Op.GAT || op === Op.GATS;
  const exptime = touch ? req.exptime : null;
  // The keys outlive the request buffer as offsets into one copy of them.
  const base = ts[first];
  const line = carveCopy(buf, base, te[req.ntokens - 1]);
  const keyStart = new Int32Array(nkeys), keyEnd = new Int32Array(nkeys);
  for (let i = 0; i < nkeys; i++) {
    keyStart[i] = ts[first + i] - base;
    keyEnd[i] = te[first + i] - base;
  }
  // The command word (and gat's exptime) start every per-server line.
  const head = carveCopy(buf, ts[0], touch ? te[1] : te[0]);
  const stream = new Stream(core, op, exptime, head, line, keyStart, keyEnd, ticket, sink);
  sink.whenRoom(ticket, stream.next);
}

/** A sink that writes replies in parts. */
export type StreamSink = ReplySink & Required<Pick<ReplySink, "whenRoom" | "fillPart">>;

/**
 * A multi-get of more than {@linkcode SINGLE_KEYS} keys, fetched and
 * written in parts so that a client that reads slowly (or never) cannot
 * make the proxy hold its whole reply (a get line may be 64 MB, its reply
 * without limit): a part's keys are fetched only once every earlier reply
 * is out and the connection's unsent output is under its bound
 * ({@linkcode ReplySink.whenRoom}), its VALUE blocks go out at once, the
 * last part adds END. Parts start at {@linkcode FIRST_PART_KEYS} keys and
 * double up to {@linkcode SINGLE_KEYS}, but hold no more than
 * {@linkcode PART_BYTES} of the largest value seen. Each part is matched,
 * looked up in the backups and repaired as a whole multi-get is.
 */
class Stream implements PartSink {
  readonly #core: RouterCore;
  readonly #op: OpCode;
  readonly #exptime: number | null;
  readonly #head: Uint8Array;
  readonly #line: Uint8Array;
  readonly #keyStart: Int32Array;
  readonly #keyEnd: Int32Array;
  readonly #ticket: number;
  readonly #sink: StreamSink;
  /** Keys fetched so far (the next part starts there). */
  #at = 0;
  #partKeys = FIRST_PART_KEYS;
  /** The largest VALUE block seen (bytes). */
  #largest = 0;
  /** Hits written so far. */
  #hits = 0;
  /** A part had keys no server could be asked for. */
  #unreachable = false;

  constructor(
    core: RouterCore,
    op: OpCode,
    exptime: number | null,
    head: Uint8Array,
    line: Uint8Array,
    keyStart: Int32Array,
    keyEnd: Int32Array,
    ticket: number,
    sink: StreamSink,
  ) {
    this.#core = core;
    this.#op = op;
    this.#exptime = exptime;
    this.#head = head;
    this.#line = line;
    this.#keyStart = keyStart;
    this.#keyEnd = keyEnd;
    this.#ticket = ticket;
    this.#sink = sink;
  }

  /** Fetch the next part (the connection has room for it). */
  readonly next = (): void => {
    const at = this.#at;
    const n = Math.min(this.#partKeys, this.#keyStart.length - at);
    this.#at = at + n;
    const keys = { buf: this.#line, ts: this.#keyStart, te: this.#keyEnd, first: at, base: 0 };
    const head = this.#head;
    fanOut(
      this.#core,
      this.#op,
      this.#exptime,
      head,
      0,
      head.length,
      this.#line,
      keys,
      n,
      this.#ticket,
      this.#sink,
      this,
    );
  };

  /**
   * A part is in: its `hits` VALUE blocks (`reply`, in key order; copied by
   * the sink at once), the largest of them `largest` bytes; `unreachable`:
   * some of its keys could be asked of no server.
   */
  part(
    reply: Uint8Array | readonly Uint8Array[],
    hits: number,
    largest: number,
    unreachable: boolean,
  ): void {
    const sink = this.#sink;
    if (hits > 0) sink.fillPart(this.#ticket, reply);
    this.#hits += hits;
    if (unreachable) this.#unreachable = true;
    if (largest > this.#largest) this.#largest = largest;
    if (this.#at < this.#keyStart.length) {
      let keys = Math.min(this.#partKeys * 2, SINGLE_KEYS);
      if (this.#largest > 0) {
        keys = Math.min(keys, Math.max(1, Math.floor(PART_BYTES / this.#largest)));
      }
      this.#partKeys = keys;
      sink.whenRoom(this.#ticket, this.next);
      return;
    }
    // As a whole multi-get: no backend at all for it is an error, else END after the hits.
    if (this.#hits === 0 && this.#unreachable) this.#core.noBackend(sink, this.#ticket);
    else sink.fill(this.#ticket, REPLY.END);
  }
}
