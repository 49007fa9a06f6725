/**
 * The receive side every connection shares (server clients, proxy clients,
 * replication links): one reused buffer that grows for a large request,
 * shrinks back after it, compacts instead of copying when it can, and
 * swallows data blocks of refused requests as they arrive.
 * @module
 */

const INITIAL = 16384;

/** Anything with Deno.Conn's read. */
export interface Readable {
  /** Read into p; null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Bytes received but not yet parsed are buf[start, end). */
export class ReadBuffer {
  /** Backing store (replaced when it grows). */
  buf: Uint8Array;
  /** First unparsed byte. */
  start = 0;
  /** End of received bytes. */
  end = 0;
  #swallow = 0;
  #initial: number;

  /** An empty buffer, optionally primed with bytes already received. */
  constructor(initial = INITIAL, primed?: Uint8Array) {
    this.#initial = initial;
    this.buf = new Uint8Array(Math.max(initial, (primed?.length ?? 0) * 2));
    if (primed) {
      this.buf.set(primed);
      this.end = primed.length;
    }
  }

  /**
   * Read once from `conn`, first making room so that a request of `need`
   * bytes in all (0: unknown) fits. Resolves false at end of stream.
   */
  async fill(conn: Readable, need = 0): Promise<boolean> {
    this.#makeRoom(need);
    const n = await conn.read(this.buf.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    return true;
  }

  /** Discard the next n bytes, those buffered now and those still to come. */
  skip(n: number): void {
    this.#swallow += n;
  }

  /** Bytes of a refused request are still to come and be dropped. */
  get swallowing(): boolean {
    return this.#swallow > 0;
  }

  /** Drop buffered bytes still to be swallowed; true when parsing may go on. */
  settle(): boolean {
    if (this.#swallow > 0) {
      const take = Math.min(this.#swallow, this.end - this.start);
      this.#swallow -= take;
      this.start += take;
    }
    return this.#swallow === 0 && this.start < this.end;
  }

  #makeRoom(need: number): void {
    const pending = this.end - this.start;
    if (pending === 0) this.start = this.end = 0;
    if (this.buf.length > 4 * this.#initial && pending < this.#initial && need < this.#initial) {
      // A large request has passed: give its memory back.
      const next = new Uint8Array(this.#initial);
      next.set(this.buf.subarray(this.start, this.end));
      this.#replace(next, pending);
      return;
    }
    if (this.end < this.buf.length && need <= this.buf.length - this.start) return;
    const want = Math.max(need, pending + 1);
    if (want > this.buf.length || this.start === 0) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, want));
      next.set(this.buf.subarray(this.start, this.end));
      this.#replace(next, pending);
    } else {
      this.buf.copyWithin(0, this.start, this.end);
      this.start = 0;
      this.end = pending;
    }
  }

  #replace(next: Uint8Array, pending: number): void {
    this.buf = next;
    this.start = 0;
    this.end = pending;
  }
}
