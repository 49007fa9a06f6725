/**
 * The write side of a pipelined connection: requests are copied into an
 * output buffer and sent with one socket write per tick, double buffered.
 * Split from pipeline.ts, which keeps the reply side (read loop, reply
 * queue, timeouts, drain, metadump).
 * @module
 */

import { mark, TRACE } from "../trace.ts";
import type { RawIo } from "../transport/mod.ts";

/** Size a send or read buffer starts at. */
export const INITIAL_BUFFER = 65536;
/** A send or read buffer grown past this is replaced by a fresh one once idle. */
export const SHRINK_ABOVE = 4 * 1048576;

/** The output buffer of one connection and the write in flight. */
export class SendBuffer {
  readonly #io: RawIo;
  readonly #onFail: (err: unknown) => void;
  #closed = false;

  #out = new Uint8Array(INITIAL_BUFFER);
  #outLen = 0;
  #spare = new Uint8Array(INITIAL_BUFFER);
  #writing = false;
  #flushQueued = false;

  /** Writes through `io`; `onFail` gets a failed write's error (once: sending stops). */
  constructor(io: RawIo, onFail: (err: unknown) => void) {
    this.#io = io;
    this.#onFail = onFail;
  }

  /**
   * Send the requests buffered so far now rather than at the end of this
   * tick. Nothing happens while a write is in flight.
   */
  flush(): void {
    if (this.#flushQueued && !this.#writing) this.#flush();
  }

  /** Nothing more is sent (the connection closed). */
  close(): void {
    this.#closed = true;
  }

  /** Copies `parts` into the output buffer; they go out at the end of this tick. */
  write(parts: readonly Uint8Array[]): void {
    let n = 0;
    for (const p of parts) n += p.length;
    this.#reserveOut(n);
    for (const p of parts) {
      if (p.length < 64) {
        const out = this.#out;
        let o = this.#outLen;
        for (let i = 0; i < p.length; i++) out[o++] = p[i];
      } else this.#out.set(p, this.#outLen);
      this.#outLen += p.length;
    }
    if (!this.#flushQueued && !this.#writing) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  #reserveOut(n: number): void {
    const need = this.#outLen + n;
    if (need <= this.#out.length) return;
    let size = this.#out.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#out.subarray(0, this.#outLen));
    this.#out = next;
  }

  /**
   * Send what is buffered: one `conn.write` per tick with bound callbacks
   * (no async function per flush); a partial write goes on from where it
   * stopped. Double buffering: #spare is written while #out collects.
   */
  readonly #flush = (): void => {
    this.#flushQueued = false;
    if (this.#writing || this.#closed || this.#outLen === 0) return;
    this.#writing = true;
    const buf = this.#out;
    this.#writeLen = this.#outLen;
    this.#writeOff = 0;
    this.#out = this.#spare.length >= INITIAL_BUFFER ? this.#spare : new Uint8Array(INITIAL_BUFFER);
    this.#outLen = 0;
    this.#spare = buf;
    this.#send(buf.subarray(0, this.#writeLen));
  };

  /** One write; a synchronous throw (a closed resource) fails as a rejection does. */
  #send(bytes: Uint8Array): void {
    if (TRACE) mark("bsend");
    try {
      this.#io.write(bytes).then(this.#written, this.#writeFailed);
      if (TRACE) mark("bsent");
    } catch (err) {
      this.#writeFailed(err);
    }
  }

  /** Bytes of #spare being written, and written so far. */
  #writeLen = 0;
  #writeOff = 0;

  readonly #written = (n: number): void => {
    this.#writeOff += n;
    const buf = this.#spare;
    if (this.#writeOff < this.#writeLen && !this.#closed) {
      this.#send(buf.subarray(this.#writeOff, this.#writeLen));
      return;
    }
    if (buf.length > SHRINK_ABOVE) this.#spare = new Uint8Array(INITIAL_BUFFER);
    this.#writing = false;
    this.#flush();
  };

  readonly #writeFailed = (err: unknown): void => {
    this.#writing = false;
    this.#onFail(err);
  };
}
