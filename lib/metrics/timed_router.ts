/**
 * The proxy's per-request timing hook, used only with `--metrics`: a
 * {@linkcode Router} whose `handle` notes the start of each request and
 * passes the router a per-connection sink that notes when the request's
 * reply is filled. Without `--metrics` the plain Router runs and nothing
 * here costs anything.
 *
 * A request reserves at most one reply ticket; one answered during
 * `handle` (or with no reply) is timed when `handle` returns.
 * @module
 */

import { Op, type Request } from "../protocol/mod.ts";
import { type ReplySink, Router } from "../proxy/mod.ts";
import { Histogram } from "./histogram.ts";

/** Command classes of the latency histogram, by label. */
export const COMMAND_CLASSES = ["get", "set", "delete", "touch", "arith", "other"] as const;

const CLASS_OF = new Uint8Array(64).fill(5);
for (const op of [Op.GET, Op.GETS, Op.GAT, Op.GATS, Op.MG]) CLASS_OF[op] = 0;
for (const op of [Op.SET, Op.ADD, Op.REPLACE, Op.APPEND, Op.PREPEND, Op.CAS, Op.MS]) {
  CLASS_OF[op] = 1;
}
for (const op of [Op.DELETE, Op.MD]) CLASS_OF[op] = 2;
CLASS_OF[Op.TOUCH] = 3;
for (const op of [Op.INCR, Op.DECR, Op.MA]) CLASS_OF[op] = 4;

/** Latency histograms per command class, plus client errors. */
export class RequestTimes {
  /** One histogram per {@linkcode COMMAND_CLASSES} entry. */
  readonly byClass: Histogram[] = COMMAND_CLASSES.map(() => new Histogram());
  /** Requests the parser refused (ERROR / CLIENT_ERROR replies). */
  clientErrors = 0;
}

/** Wraps one client connection's sink: tickets reserved by a request -> its start. */
class TimedSink implements ReplySink {
  readonly #inner: ReplySink;
  readonly #times: RequestTimes;
  /** ticket -> start (µs) * 8 + class. */
  readonly #waiting = new Map<number, number>();
  #start = 0;
  #cls = 0;
  #open = false;
  #reserved = false;

  /** The inner sink's, when it writes replies in parts. */
  readonly whenRoom?: (ticket: number, go: () => void) => void;
  /** The inner sink's, when it writes replies in parts. */
  readonly fillPart?: (ticket: number, part: Uint8Array | readonly Uint8Array[]) => void;

  constructor(inner: ReplySink, times: RequestTimes) {
    this.#inner = inner;
    this.#times = times;
    const whenRoom = inner.whenRoom, fillPart = inner.fillPart;
    if (whenRoom !== undefined && fillPart !== undefined) {
      this.whenRoom = (ticket, go) => whenRoom.call(inner, ticket, go);
      this.fillPart = (ticket, part) => fillPart.call(inner, ticket, part);
    }
  }

  begin(cls: number): void {
    this.#cls = cls;
    this.#start = performance.now();
    this.#open = true;
    this.#reserved = false;
  }

  end(): void {
    this.#open = false;
    if (!this.#reserved) {
      this.#times.byClass[this.#cls].observe((performance.now() - this.#start) / 1000);
    }
  }

  reserve(): number {
    const ticket = this.#inner.reserve();
    if (this.#open && !this.#reserved) {
      this.#reserved = true;
      this.#waiting.set(ticket, Math.round(this.#start * 1000) * 8 + this.#cls);
    }
    return ticket;
  }

  fill(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void {
    this.#done(ticket);
    this.#inner.fill(ticket, reply);
  }

  fillFrame(ticket: number, buf: Uint8Array, start: number, length: number): void {
    this.#done(ticket);
    this.#inner.fillFrame(ticket, buf, start, length);
  }

  reply(bytes: Uint8Array): void {
    this.#inner.reply(bytes);
  }

  closeAfterReplies(): void {
    this.#inner.closeAfterReplies();
  }

  #done(ticket: number): void {
    const packed = this.#waiting.get(ticket);
    if (packed === undefined) return;
    this.#waiting.delete(ticket);
    const cls = packed % 8;
    const start = (packed - cls) / 8000;
    this.#times.byClass[cls].observe(Math.max(0, performance.now() - start) / 1000);
  }
}

/** A {@linkcode Router} that times every request into {@linkcode times}. */
export class TimedRouter extends Router {
  /** The histograms. */
  readonly times: RequestTimes = new RequestTimes();
  #sinks = new WeakMap<ReplySink, TimedSink>();
  // Requests come in batches per connection: the last wrapper is usually the one.
  #lastSink: ReplySink | undefined;
  #lastTimed: TimedSink | undefined;

  /** Route `req` as {@linkcode Router.handle}, timed. */
  override handle(req: Request, raw: Uint8Array, sink: ReplySink): number {
    let timed = this.#lastSink === sink ? this.#lastTimed : this.#sinks.get(sink);
    if (timed === undefined) {
      timed = new TimedSink(sink, this.times);
      this.#sinks.set(sink, timed);
    }
    this.#lastSink = sink;
    this.#lastTimed = timed;
    if (req.op === Op.ERROR) this.times.clientErrors++;
    timed.begin(CLASS_OF[req.op]);
    try {
      return super.handle(req, raw, timed);
    } finally {
      timed.end();
    }
  }
}
