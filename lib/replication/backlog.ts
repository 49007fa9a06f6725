/**
 * The backlog: a ring of this node's change frames, addressed by stream
 * offset (bytes since the stream began). The link sends straight from it,
 * and a peer that reconnects with an offset still inside it resumes from
 * there (partial resync) instead of taking a full copy.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";

const INITIAL = 1 << 20;

/** A bounded byte ring with monotonically growing logical offsets. */
export class Backlog {
  #buf: Uint8Array;
  #capacity: number;
  #start = 0;
  #end = 0;

  /** A ring holding at most `capacity` bytes (allocated as it fills). */
  constructor(capacity: number) {
    this.#capacity = Math.max(4096, capacity);
    this.#buf = new Uint8Array(Math.min(this.#capacity, INITIAL));
  }

  /** Oldest offset still held. */
  get start(): number {
    return this.#start;
  }

  /** Offset of the next byte appended (the stream position). */
  get end(): number {
    return this.#end;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#end - this.#start;
  }

  /** Maximum bytes held. */
  get capacity(): number {
    return this.#capacity;
  }

  /** True while `offset` can still be read (start <= offset <= end). */
  holds(offset: number): boolean {
    return offset >= this.#start && offset <= this.#end;
  }

  /** Append src[start, end); the oldest bytes are dropped when full. */
  push(src: Uint8Array, start = 0, end: number = src.length): void {
    let n = end - start;
    if (n <= 0) return;
    if (this.#end - this.#start + n > this.#buf.length && this.#buf.length < this.#capacity) {
      this.#grow(this.#end - this.#start + n);
    }
    const size = this.#buf.length;
    if (n > size) {
      // Larger than the whole ring: only its tail survives.
      this.#end += n - size;
      start = end - size;
      n = size;
    }
    const at = this.#end % size;
    const first = Math.min(n, size - at);
    this.#buf.set(src.subarray(start, start + first), at);
    if (first < n) this.#buf.set(src.subarray(start + first, end), 0);
    this.#end += n;
    if (this.#end - this.#start > size) this.#start = this.#end - size;
  }

  /**
   * Changes were lost before reaching the backlog: leave a one-byte gap and
   * hold nothing, so every reader (a link, a resuming peer) falls back to a
   * full copy.
   */
  skip(): void {
    this.#end += 1;
    this.#start = this.#end;
  }

  /** Append the bytes at offsets [from, to) to `out`; the range must be held. */
  copyTo(out: Writer, from: number, to: number): void {
    const size = this.#buf.length;
    const a = from % size;
    const n = to - from;
    const first = Math.min(n, size - a);
    out.bytes(this.#buf, a, a + first);
    if (first < n) out.bytes(this.#buf, 0, n - first);
  }

  #grow(need: number): void {
    let size = this.#buf.length;
    while (size < need && size < this.#capacity) size *= 2;
    size = Math.min(size, this.#capacity);
    const next = new Uint8Array(size);
    const old = this.#buf;
    for (let off = this.#start; off < this.#end;) {
      const a = off % old.length;
      const n = Math.min(this.#end - off, old.length - a);
      const b = off % size;
      const m = Math.min(n, size - b);
      next.set(old.subarray(a, a + m), b);
      if (m < n) next.set(old.subarray(a + m, a + n), 0);
      off += n;
    }
    this.#buf = next;
  }
}
