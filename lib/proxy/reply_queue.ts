/**
 * The replies of one proxy client connection, in request order: the
 * {@linkcode ReplySink} the router fills. Each request reserves a ticket;
 * replies that are in at the head go to the {@linkcode ReplyWriter} at
 * once, later ones wait in their slot. What the connection may hold is
 * bounded by its {@linkcode ConnectionBudget}; replies too large to hold
 * whole are written in parts ({@linkcode ReplyParts}).
 * @module
 */

import { BINARY_HEADER_LENGTH, BinaryOpcode, carveCopy } from "../protocol/mod.ts";
import type { RawIo } from "../transport/mod.ts";
import { log } from "../log.ts";
import type { ReplySink } from "./router/mod.ts";
import { ConnectionBudget } from "./budget.ts";
import { ReplyParts } from "./reply_parts.ts";
import { ReplyWriter } from "./reply_writer.ts";

/** A culled reply. */
const NOTHING = new Uint8Array(0);

/**
 * A binary reply memcached transmits at once: a noop's, or an error packet
 * (write_bin_error; a getk/gatk miss carries the key and is not one).
 */
function transmitsAtOnce(reply: Uint8Array | readonly Uint8Array[]): boolean {
  const b = reply instanceof Uint8Array ? reply : reply[0];
  if (b === undefined || b.length < BINARY_HEADER_LENGTH) return false;
  const status = (b[6] << 8) | b[7];
  return b[1] === BinaryOpcode.NOOP || (status !== 0 && (b[2] | b[3]) === 0);
}

type Slot = Uint8Array | readonly Uint8Array[] | undefined;

/**
 * One client connection's ordered reply slots. The reading side reserves
 * through the router, holds replies while memcached would
 * ({@linkcode hold}), waits for {@linkcode room} while {@linkcode full},
 * and closes through {@linkcode close} or {@linkcode closeAfterReplies}.
 */
export class ReplyQueue implements ReplySink {
  readonly #conn: Deno.Conn;
  readonly #budget: ConnectionBudget = new ConnectionBudget();
  readonly #writer: ReplyWriter;
  readonly #parts: ReplyParts = new ReplyParts();
  /** Replies not written yet, from ticket #head on; undefined = still waiting. */
  #slots: Slot[] = [];
  #slotHead = 0;
  #head = 0;
  #next = 0;
  #flushQueued = false;
  #closed = false;
  #closeAt = -1;
  /** Replies from this ticket on wait (a binary read batch being parsed). */
  #hold = Infinity;
  /** After a bad magic byte: replies from this ticket on are sent only as memcached would. */
  #dropFrom = -1;
  /**
   * Tickets of this read batch whose error memcached answered while skipping
   * body bytes already read (conn_swallow): queued, not transmitted at once.
   */
  readonly #queued = new Set<number>();
  /** The first reply of the text read batch being parsed, and the output's length then. */
  #batchTicket = -1;
  #batchOut = 0;
  /** Replies of a culled batch not in yet: dropped when they come. */
  readonly #culled = new Set<number>();
  #drained: (() => void) | undefined;
  readonly #gone: PromiseWithResolvers<void> = Promise.withResolvers();

  /** The replies of `conn`, written through `io`. */
  constructor(conn: Deno.Conn, io: RawIo) {
    this.#conn = conn;
    this.#writer = new ReplyWriter(io, this.#budget, () => this.#written(), () => this.close());
  }

  /** True once the connection is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True once the connection closes after the replies reserved so far. */
  get closing(): boolean {
    return this.#closeAt >= 0;
  }

  /** The ticket the next reply will get. */
  get next(): number {
    return this.#next;
  }

  /** True while replies are held (see {@linkcode hold}). */
  get holding(): boolean {
    return this.#hold !== Infinity;
  }

  /** Resolves once the connection is closed. */
  get gone(): Promise<void> {
    return this.#gone.promise;
  }

  /** Replies from the next one on wait until {@linkcode release} (if none wait yet). */
  hold(): void {
    if (this.#hold === Infinity) this.#hold = this.#next;
  }

  /** Held replies may go. */
  release(): void {
    this.#hold = Infinity;
    this.#drain();
  }

  /**
   * A bad magic byte: the replies from `ticket` (memcached's last transmit)
   * to the close go only as memcached's would (see {@linkcode #cut}).
   */
  dropFrom(ticket: number): void {
    this.#dropFrom = ticket;
  }

  /** A binary read batch starts: none of its replies is queued yet. */
  clearQueued(): void {
    this.#queued.clear();
  }

  /** A text read batch is parsed from here: {@linkcode cull} drops back to this point. */
  batch(): void {
    this.#batchTicket = this.#next;
    this.#batchOut = this.#writer.outLength();
  }

  /**
   * A get refused for a too-long key: memcached drops the replies it had
   * not transmitted yet (conn_release_items), those of this read batch
   * before `ticket` (the refused get's own comes after). Their requests ran.
   */
  cull(ticket: number): void {
    // (A reply going out in parts has left already in part: then nothing is dropped.)
    if (this.#batchTicket < 0 || this.#parts.active) return;
    // Everything the output took since the batch began is the batch's (replies go in order).
    this.#writer.truncateOut(this.#batchOut);
    const base = this.#slotBase();
    for (let t = Math.max(this.#batchTicket, this.#head); t < ticket; t++) {
      if (this.#slots[t - base] !== undefined) this.#slots[t - base] = NOTHING;
      else this.#culled.add(t);
    }
    this.#drain();
  }

  /** The replies from `ticket` on were queued by memcached, not transmitted at once. */
  queue(ticket: number): void {
    for (let t = ticket; t < this.#next; t++) this.#queued.add(t);
  }

  /**
   * True while too many replies are pending or unsent: reading waits
   * ({@linkcode room}). While the process's budget is spent, a connection
   * that holds more than PRESSED_ROOM waits too: each wait ends with an
   * event of its own (a reply in, a write done), never with the others'.
   */
  full(): boolean {
    return !this.#closed &&
      (this.#parts.active ||
        this.#budget.full(this.#next - this.#head, this.#writer.unsent()));
  }

  /** Back-pressure: wait while {@linkcode full}. Called only then: no promise per batch. */
  async room(): Promise<void> {
    while (this.full()) await new Promise<void>((r) => this.#drained = r);
  }

  /**
   * A multi-get pipelined behind replies not written yet, or one that could
   * spend the process's budget, goes in parts (see ConnectionBudget.partsFor).
   */
  partsFor(nkeys: number, ticket: number): boolean {
    return this.#budget.partsFor(nkeys, ticket, ticket > this.#head);
  }

  reserve(): number {
    this.#slots.push(undefined);
    this.#budget.reserved();
    return this.#next++;
  }

  fill(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void {
    if (this.#closed) return;
    if (this.#culled.size > 0 && this.#culled.delete(ticket)) reply = NOTHING;
    const ended = this.#parts.ended(ticket);
    let n: number;
    if (reply instanceof Uint8Array) n = reply.length;
    else {
      n = 0;
      for (const p of reply) n += p.length;
    }
    this.#budget.filled(ticket, n);
    this.#slots[ticket - this.#slotBase()] = reply;
    // After a bad magic byte the head waits for the last reply (see #cut).
    if (ticket === this.#head || this.#dropFrom >= 0) this.#drain();
    if (ended) this.#parts.runBehind();
  }

  fillFrame(ticket: number, buf: Uint8Array, start: number, length: number): void {
    if (this.#closed) return;
    if (this.#culled.size > 0 && this.#culled.has(ticket)) return this.fill(ticket, NOTHING);
    const ended = this.#parts.ended(ticket);
    this.#budget.filled(ticket, length);
    if (ticket !== this.#head || ticket >= this.#hold) {
      this.#slots[ticket - this.#slotBase()] = carveCopy(buf, start, start + length);
      if (ticket === this.#head || this.#dropFrom >= 0) this.#drain();
    } else {
      // The head: straight into the output, no copy of its own.
      this.#writer.out().bytes(buf, start, start + length);
      this.#slotHead++;
      this.#head++;
      this.#drain();
    }
    if (ended) this.#parts.runBehind();
  }

  afterParts(ticket: number, go: () => void): void {
    this.#parts.after(ticket, go);
  }

  whenRoom(ticket: number, go: () => void): void {
    if (this.#closed) return;
    this.#parts.started(ticket);
    if (ticket === this.#head && ticket < this.#hold && this.#partRoom()) go();
    else this.#parts.wait(ticket, go);
  }

  fillPart(ticket: number, part: Uint8Array | readonly Uint8Array[]): void {
    if (this.#closed) return;
    // whenRoom made it the head: it goes straight to the output.
    if (ticket !== this.#head) {
      // Never happens (whenRoom ran go at the head): out of order would garble the stream.
      log.warn(`proxy: part of reply ${ticket} before its turn (head ${this.#head}): closing`);
      this.close();
      return;
    }
    const out = this.#writer.out();
    let n = 0;
    if (part instanceof Uint8Array) {
      n = part.length;
      out.bytes(part);
    } else {
      for (const p of part) {
        out.bytes(p);
        n += p.length;
      }
    }
    this.#budget.added(n);
    this.#schedule();
  }

  reply(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.#head === this.#next && this.#hold === Infinity) {
      this.#budget.added(bytes.length);
      this.#writer.out().bytes(bytes);
      this.#schedule();
      return;
    }
    this.fill(this.reserve(), bytes);
  }

  closeAfterReplies(): void {
    if (this.#closeAt < 0) this.#closeAt = this.#next;
    if (this.#head === this.#closeAt) this.#schedule();
  }

  /** Close now: what the connection held is dropped with it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.close();
    this.#slots = [];
    this.#parts.clear();
    this.#writer.close();
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    const d = this.#drained;
    this.#drained = undefined;
    d?.();
    this.#gone.resolve();
  }

  /** A part of a reply written in parts may be fetched (see ConnectionBudget.partRoom). */
  #partRoom(): boolean {
    return this.#budget.partRoom(this.#writer.unsent());
  }

  /** The head's reply waits for room and has it now: its next part is fetched. */
  #roomNow(): void {
    if (!this.#parts.waiting || !this.#partRoom()) return;
    if (this.#head >= this.#hold) return;
    const go = this.#parts.take(this.#head);
    if (go !== undefined) go();
  }

  #slotBase(): number {
    return this.#head - this.#slotHead;
  }

  /** Move every ready reply at the head into the output buffer. */
  #drain(): void {
    const slots = this.#slots;
    let i = this.#slotHead;
    while (i < slots.length && this.#head < this.#hold) {
      if (this.#dropFrom >= 0 && this.#head >= this.#dropFrom) {
        if (this.#cut(i)) i = slots.length;
        break;
      }
      const s = slots[i];
      if (s === undefined) break;
      const out = this.#writer.out();
      if (s instanceof Uint8Array) out.bytes(s);
      else for (const p of s) out.bytes(p);
      slots[i] = undefined;
      i++;
      this.#head++;
    }
    if (i === slots.length) {
      slots.length = 0;
      this.#slotHead = 0;
    } else if (i > 1024 && i * 2 > slots.length) {
      this.#slots = slots.slice(i);
      this.#slotHead = 0;
    } else this.#slotHead = i;
    this.#schedule();
    this.#wake();
    this.#roomNow();
  }

  /**
   * A bad magic byte ended a binary connection: of the replies from
   * `#dropFrom` (memcached's last transmit) to the close, only those up to
   * the last one memcached transmits at once (an error, a noop) are sent,
   * the rest is dropped, as memcached drops what it had queued. Waits until
   * all of them are in; true once done (slot `i` is `#dropFrom`'s).
   */
  #cut(i: number): boolean {
    const slots = this.#slots;
    const n = this.#closeAt - this.#head;
    let last = -1;
    for (let k = 0; k < n; k++) {
      const s = slots[i + k];
      if (s === undefined) return false;
      if (transmitsAtOnce(s) && !this.#queued.has(this.#head + k)) last = k;
    }
    for (let k = 0; k <= last; k++) {
      const s = slots[i + k] as Uint8Array | readonly Uint8Array[];
      const out = this.#writer.out();
      if (s instanceof Uint8Array) out.bytes(s);
      else for (const p of s) out.bytes(p);
    }
    this.#head = this.#closeAt;
    this.#dropFrom = -1;
    return true;
  }

  /** Reading that waits for room goes on once half the window is free. */
  #wake(): void {
    const d = this.#drained;
    if (d !== undefined && this.#budget.wakes(this.#next - this.#head)) {
      this.#drained = undefined;
      d();
    }
  }

  #schedule(): void {
    if (this.#flushQueued || this.#writer.writing) return;
    this.#flushQueued = true;
    // After the current batch of replies (all resolved in this turn) is in.
    queueMicrotask(this.#flush);
  }

  /** Write what is buffered (one write per batch). */
  readonly #flush = (): void => {
    this.#flushQueued = false;
    if (this.#writer.writing || this.#closed) return;
    if (!this.#writer.write()) this.#flushed();
  };

  /** A batch is written: the next one goes, reading and parts may go on. */
  #written(): void {
    this.#wake();
    if (this.#writer.hasOutput) this.#flush();
    else this.#flushed();
    this.#roomNow();
  }

  /** Everything is written: close if asked to, else let reading go on. */
  #flushed(): void {
    if (this.#closeAt >= 0 && this.#head >= this.#closeAt) this.close();
    else if (this.#drained !== undefined) this.#wake();
  }
}
