/**
 * A growable output buffer: replies for one read batch are appended here
 * and sent with a single write.
 * @module
 */

import { writeUint } from "./bytes.ts";

/** Reusable byte sink with cheap appends of constants, numbers and slices. */
export class Writer {
  /** Backing store; valid bytes are buf[0, length). */
  buf: Uint8Array;
  /** Bytes written so far. */
  length = 0;
  #capacity: number;
  #keep: number;

  /**
   * A writer with an initial capacity; {@linkcode reset} drops a buffer
   * grown past `keep` bytes and starts again at the initial capacity.
   */
  constructor(capacity = 16384, keep = 4 * 1048576) {
    this.buf = new Uint8Array(capacity);
    this.#capacity = capacity;
    this.#keep = keep;
  }

  /** Make room for n more bytes. */
  reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  /** Append bytes src[start, end). */
  bytes(src: Uint8Array, start = 0, end = src.length): void {
    const n = end - start;
    this.reserve(n);
    if (n < 64) {
      const buf = this.buf;
      let p = this.length;
      for (let i = start; i < end; i++) buf[p++] = src[i];
    } else {
      this.buf.set(src.subarray(start, end), this.length);
    }
    this.length += n;
  }

  /** Append one byte. */
  byte(c: number): void {
    this.reserve(1);
    this.buf[this.length++] = c;
  }

  /** Append an ASCII string (short, not on the value path). */
  text(s: string): void {
    this.reserve(s.length);
    const buf = this.buf;
    let p = this.length;
    for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
    this.length = p;
  }

  /** Append a non-negative integer in decimal. */
  uint(value: number): void {
    this.reserve(24);
    this.length = writeUint(this.buf, this.length, value);
  }

  /** Append "\r\n". */
  crlf(): void {
    this.reserve(2);
    this.buf[this.length++] = 13;
    this.buf[this.length++] = 10;
  }

  /** Drop the first n bytes (sent already); the rest moves to the front. */
  shift(n: number): void {
    this.buf.copyWithin(0, n, this.length);
    this.length -= n;
  }

  /** The bytes written so far (a view, valid until the next append or reset). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** Forget everything written; shrink a buffer a large reply has blown up. */
  reset(): void {
    this.length = 0;
    if (this.buf.length > this.#keep) this.buf = new Uint8Array(this.#capacity);
  }
}

/**
 * Idle output buffers a thread's connections borrow for one batch of
 * replies, so an idle connection holds none: thousands of connections
 * answered at once each take one until their write completes, then idle
 * ones go back for reuse while they add up to at most `keptBytes` (the
 * rest, and any grown past `keep`, to the GC). A byte bound rather than a
 * count: every connection of a busy event-loop turn holds its writer until
 * its write resolves, so a count below the connections in flight made new
 * writers (and their buffers) for the others on every request.
 */
export class WriterPool {
  #free: Writer[] = [];
  #initial: number;
  #keep: number;
  #keptBytes: number;
  #idleBytes = 0;

  /** Writers of `initial` bytes that drop buffers grown past `keep`; idle ones up to `keptBytes` stay. */
  constructor(initial = 1024, keep = 262144, keptBytes = 4194304) {
    this.#initial = initial;
    this.#keep = keep;
    this.#keptBytes = keptBytes;
  }

  /** An idle writer, or a new one. */
  take(): Writer {
    const w = this.#free.pop();
    if (w === undefined) return new Writer(this.#initial, this.#keep);
    this.#idleBytes -= w.buf.length;
    return w;
  }

  /** Return a writer taken from {@linkcode take}, emptied. */
  give(out: Writer): void {
    out.reset();
    const size = out.buf.length;
    if (this.#idleBytes + size > this.#keptBytes) return;
    this.#idleBytes += size;
    this.#free.push(out);
  }

  /** Idle writers held now. */
  get idle(): number {
    return this.#free.length;
  }

  /** Bytes of the idle writers' buffers. */
  get idleBytes(): number {
    return this.#idleBytes;
  }
}
