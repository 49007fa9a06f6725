/**
 * The output of one proxy client connection: replies collect in a borrowed
 * buffer and go out one `write` per batch, double-buffered (the next batch
 * collects while one is written). See {@linkcode ReplyWriter}.
 * @module
 */

import { mark, TRACE, traceEnd } from "../trace.ts";
import { Writer, WriterPool } from "../protocol/mod.ts";
import { isDisconnect, type RawIo } from "../transport/mod.ts";
import { log } from "../log.ts";
import type { ConnectionBudget } from "./budget.ts";

/**
 * Output buffers the connections borrow while they have bytes to send, so
 * an idle connection holds none (thousands of idle clients then cost
 * little, and nothing of theirs stays behind).
 */
const writers = new WriterPool(1024, 262144, 4194304);

/**
 * Writes one connection's replies: {@linkcode out} is the buffer replies are
 * added to, {@linkcode write} sends it. One `write` per batch with bound
 * callbacks, no async function or writeAll promise of its own; a partial
 * write goes on from where it stopped.
 */
export class ReplyWriter {
  readonly #io: RawIo;
  /** Told of every byte written (they are no longer held). */
  readonly #budget: ConnectionBudget;
  /** Called when a batch is written (the connection is still open). */
  readonly #done: () => void;
  /** Called when a write fails. */
  readonly #failed: () => void;
  /** Replies collected, not written yet (borrowed from {@linkcode writers} while non-empty). */
  #out: Writer | null = null;
  /** Replies being written. */
  #spare: Writer | null = null;
  /** Bytes of #spare written so far. */
  #writeOff = 0;
  #writing = false;
  #closed = false;

  /** Writes through `io`; `done` after each batch, `failed` when a write fails. */
  constructor(io: RawIo, budget: ConnectionBudget, done: () => void, failed: () => void) {
    this.#io = io;
    this.#budget = budget;
    this.#done = done;
    this.#failed = failed;
  }

  /** True while a batch is being written. */
  get writing(): boolean {
    return this.#writing;
  }

  /** True when replies wait in the output. */
  get hasOutput(): boolean {
    return this.#out !== null && this.#out.length > 0;
  }

  /** The output buffer, borrowed when the first reply of a batch comes. */
  out(): Writer {
    return this.#out ??= writers.take();
  }

  /** Bytes in the output (not yet being written). */
  outLength(): number {
    return this.#out?.length ?? 0;
  }

  /** Drop the output's bytes past `length` (not yet being written: they never go). */
  truncateOut(length: number): void {
    if (this.#out !== null && this.#out.length > length) this.#out.length = length;
  }

  /** Reply bytes in the output and being written. */
  unsent(): number {
    return (this.#out?.length ?? 0) + (this.#spare?.length ?? 0);
  }

  /**
   * Start writing the output (not while {@linkcode writing}); false when it
   * is empty (then it is given back).
   */
  write(): boolean {
    const w = this.#out;
    if (w === null || w.length === 0) {
      if (w !== null) writers.give(w);
      this.#out = null;
      return false;
    }
    // Double buffering: #spare is written while a new #out collects.
    this.#out = null;
    this.#spare = w;
    this.#writing = true;
    this.#writeOff = 0;
    this.#send(w.view());
    return true;
  }

  /** The connection closed: the output is dropped (a write in flight still holds #spare). */
  close(): void {
    this.#closed = true;
    this.#out = null;
  }

  /** One write; a synchronous throw (a closed resource) fails as a rejection does. */
  #send(bytes: Uint8Array): void {
    if (TRACE) mark("wsend");
    try {
      this.#io.write(bytes).then(this.#written, this.#writeFailed);
    } catch (err) {
      this.#writeFailed(err);
    }
  }

  readonly #written = (n: number): void => {
    const w = this.#spare as Writer;
    this.#writeOff += n;
    if (!this.#closed) this.#budget.written(n);
    if (this.#writeOff < w.length && !this.#closed) {
      this.#send(w.view().subarray(this.#writeOff));
      return;
    }
    if (TRACE) traceEnd();
    this.#spare = null;
    writers.give(w);
    this.#writing = false;
    if (this.#closed) return;
    this.#done();
  };

  readonly #writeFailed = (err: unknown): void => {
    this.#writing = false;
    if (!isDisconnect(err)) log.warn(`proxy: client write: ${err}`);
    this.#failed();
  };
}
