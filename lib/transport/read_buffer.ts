/**
 * The receive side every connection shares (server clients, proxy clients,
 * replication links): one reused buffer that grows for a large request,
 * shrinks back after it, compacts instead of copying when it can, and
 * swallows data blocks of refused requests as they arrive.
 *
 * With a {@linkcode BufferPool}, an idle connection keeps only its small
 * initial buffer: a read that fills it moves to a pooled one, which goes
 * back to the pool once every received byte is parsed. Thousands of idle
 * connections then cost a few KB each, and busy ones reuse the same few
 * large buffers instead of allocating.
 * @module
 */

const INITIAL = 16384;

/** A free list of equally sized receive buffers, shared by one thread's connections. */
export class BufferPool {
  /** Size of every buffer handed out. */
  readonly size: number;
  #free: Uint8Array[] = [];
  #keep: number;

  /** Buffers of `size` bytes; at most `keep` idle ones are kept. */
  constructor(size = INITIAL, keep = 64) {
    this.size = size;
    this.#keep = keep;
  }

  /** An idle buffer, or a new one. */
  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  /** Return a buffer taken from {@linkcode take} (others are left to the GC). */
  give(buf: Uint8Array): void {
    if (buf.length === this.size && this.#free.length < this.#keep) this.#free.push(buf);
  }

  /** Idle buffers held now. */
  get idle(): number {
    return this.#free.length;
  }
}

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
  #skipLine = false;
  #initial: number;
  #small: Uint8Array;
  #pool: BufferPool | null;

  /**
   * An empty buffer, optionally primed with bytes already received; with a
   * pool, larger buffers come from it (see the module doc).
   */
  constructor(initial = INITIAL, primed?: Uint8Array, pool: BufferPool | null = null) {
    this.#initial = initial;
    this.#pool = pool;
    this.buf = new Uint8Array(Math.max(initial, (primed?.length ?? 0) * 2));
    this.#small = this.buf;
    if (primed) {
      this.buf.set(primed);
      this.end = primed.length;
    }
  }

  /** True while bytes of a refused request are still to be discarded. */
  get swallowing(): boolean {
    return this.#swallow > 0 || this.#skipLine;
  }

  /** Discard the rest of the current line, through its newline, as it arrives. */
  skipLine(): void {
    this.#skipLine = true;
  }

  /** Give a pooled buffer back (the connection is closing). */
  release(): void {
    this.#giveBack();
    this.start = this.end = 0;
  }

  /**
   * Read once from `conn`, first making room so that a request of `need`
   * bytes in all (0: unknown) fits. Resolves false at end of stream.
   */
  async fill(conn: Readable, need = 0): Promise<boolean> {
    const n = await conn.read(this.space(need));
    if (n === null) return false;
    this.end += n;
    return true;
  }

  /**
   * What {@linkcode fill} does before it reads, for a caller that reads
   * itself (one promise fewer per read): make room for a request of `need`
   * bytes and return where the next bytes go; add what was read to `end`.
   */
  space(need = 0): Uint8Array {
    this.#makeRoom(need);
    // An empty buffer is read into whole: no view to allocate.
    return this.end === 0 ? this.buf : this.buf.subarray(this.end);
  }

  /** Discard the next n bytes, those buffered now and those still to come. */
  skip(n: number): void {
    this.#swallow += n;
  }

  /** Drop buffered bytes still to be swallowed; true when parsing may go on. */
  settle(): boolean {
    if (this.#skipLine) {
      const lf = this.buf.indexOf(10, this.start);
      if (lf >= 0 && lf < this.end) {
        this.start = lf + 1;
        this.#skipLine = false;
      } else this.start = this.end;
    }
    if (this.#swallow > 0) {
      const take = Math.min(this.#swallow, this.end - this.start);
      this.#swallow -= take;
      this.start += take;
    }
    return this.#swallow === 0 && this.start < this.end;
  }

  #makeRoom(need: number): void {
    const pending = this.end - this.start;
    if (pending === 0) {
      this.start = this.end = 0;
      if (this.#pool !== null && need <= this.#small.length) {
        this.#giveBack();
        return;
      }
    }
    if (this.#pool !== null) {
      this.#makeRoomPooled(need, pending);
      return;
    }
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

  /** Room with a pool: small buffer, else a pooled one, else one sized for the request. */
  #makeRoomPooled(need: number, pending: number): void {
    const pool = this.#pool as BufferPool;
    const want = Math.max(need, pending + 1);
    // A large request has passed: its buffer goes, the rest moves to a pooled one.
    const oversized = this.buf.length > pool.size && want <= pool.size;
    if (!oversized) {
      if (this.end < this.buf.length && need <= this.buf.length - this.start) return;
      if (want <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.start = 0;
        this.end = pending;
        return;
      }
    }
    const next = want <= pool.size
      ? pool.take()
      : new Uint8Array(need >= want ? need : Math.max(want, this.buf.length * 2));
    next.set(this.buf.subarray(this.start, this.end));
    const old = this.buf;
    this.#replace(next, pending);
    if (old !== this.#small) pool.give(old);
  }

  /** Back to the small buffer; a pooled one returns to the pool. */
  #giveBack(): void {
    if (this.buf === this.#small) return;
    this.#pool?.give(this.buf);
    this.buf = this.#small;
  }

  #replace(next: Uint8Array, pending: number): void {
    this.buf = next;
    this.start = 0;
    this.end = pending;
  }
}

/**
 * memcached's first read of a connection takes up to `room` bytes; one into
 * a small idle buffer that came back full may have left the rest of the
 * same write queued. Read it as part of the same batch. If nothing comes
 * within `ms` (the client sent exactly that much), the read stays pending
 * and is returned (wrapped: an async function would wait for it): it is the
 * connection's next read, and until it settles the buffer must not go back
 * to a pool.
 */
export async function topUp(
  conn: Readable,
  rb: ReadBuffer,
  room: number,
  ms: number,
): Promise<{ pending: Promise<number | null> | null }> {
  const more = conn.read(rb.space(room));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), ms));
  const n = await Promise.race([more, late]);
  clearTimeout(timer);
  if (n === "late") {
    more.catch(() => {}); // awaited as the next read, unless the connection closes first
    return { pending: more };
  }
  if (n !== null) rb.end += n;
  return { pending: null };
}
