/**
 * Reply budgets: the proxy's process-wide bound on reply bytes held in user
 * space, and each client connection's share of it ({@linkcode ConnectionBudget}).
 * Each client connection bounds what it holds (its request window), but a
 * thousand connections that pipeline large gets and never read would each
 * hold their share: the connections add what they hold to one counter,
 * and while it is over the limit a connection that holds more than
 * {@linkcode PRESSED_ROOM} sends nothing more to the backends until its
 * client has read enough. A connection holding less goes on, so a client
 * that reads is never stopped for good by the others.
 * @module
 */

/** Default limit of {@linkcode ReplyBudget} (`--max-buffered-mb`). */
export const DEFAULT_BUFFERED_MB = 256;

/**
 * What a connection may hold (replies unsent, and those asked for but not
 * in yet, estimated) and still send requests while the budget is spent.
 */
export const PRESSED_ROOM = 262144;

/**
 * The estimate of a reply whose size this connection cannot guess yet (none
 * came): memcached's default item size limit, so that a burst of new
 * connections pipelining gets of unknown size is counted, not ignored.
 */
export const UNKNOWN_REPLY = 1048576;

/**
 * The least a value of a multi-get is assumed to take once replies came
 * (they may all have been small: a `set` answers in 8 bytes).
 */
const VALUE_FLOOR = 65536;

/** Reply bytes held by every client connection of the process, against a limit. */
export class ReplyBudget {
  /** Bytes held now: the sum of every connection's count. */
  bytes = 0;
  /** Bytes above which connections holding more than PRESSED_ROOM stop sending requests. */
  limit: number = DEFAULT_BUFFERED_MB * 1048576;
  /** The largest reply any connection had (bytes): what a value may be (0: none yet). */
  largestReply = 0;

  /**
   * True when a multi-get of `nkeys` keys, whole, could take the budget past
   * its limit (see {@linkcode wholeGet}). Such a get is written in parts instead.
   */
  tooLarge(nkeys: number): boolean {
    return this.bytes + this.wholeGet(nkeys) > this.limit;
  }

  /** What a whole multi-get of `nkeys` keys is assumed to take until its reply is in. */
  wholeGet(nkeys: number): number {
    const value = this.largestReply === 0
      ? UNKNOWN_REPLY
      : Math.max(this.largestReply, VALUE_FLOOR);
    return nkeys * value;
  }
}

/** The process's budget (one for every listener and pool of the process). */
export const replyBudget: ReplyBudget = new ReplyBudget();

/**
 * Requests in flight before the connection's first reply is in: replies of
 * requests already sent to a backend must be kept whatever their size, so
 * the window is sized by the largest reply seen (see {@linkcode MAX_UNSENT}).
 */
const MIN_IN_FLIGHT = 64;
/** Unsent reply bytes per connection (in the output and being written) before reading pauses. */
const MAX_UNSENT = 8 * 1048576;
/**
 * The reply size the window assumes at least: requests in flight may bring
 * larger replies than any so far (a `set`, then thousands of gets of 1 MB
 * values pipelined, unread: 4,096 in flight held 4 GB), so small replies
 * leave at most 128 in flight, which still hides the backends' latency.
 */
const WINDOW_FLOOR = 65536;
/**
 * Unsent reply bytes under which a reply written in parts (a large
 * multi-get) fetches its next part: the client's pace sets the backends',
 * and the proxy holds about this much plus one part per connection.
 */
const PART_ROOM = MAX_UNSENT / 2;

/**
 * What one client connection may hold: its window of requests in flight,
 * and its share of the process's {@linkcode replyBudget} (the bytes it
 * holds, its pending replies estimated), kept up to date with a few
 * additions per reply.
 */
export class ConnectionBudget {
  /** Largest reply of this connection so far (bytes). */
  #maxReply = 0;
  /**
   * Requests it may have in flight: as many as MAX_UNSENT holds of its largest
   * reply or of WINDOW_FLOOR (a client pipelining large gets and never reading
   * costs a bounded amount, not its whole batch); MIN_IN_FLIGHT until a reply came.
   */
  #window = MIN_IN_FLIGHT;
  /** Reply bytes this connection holds (in slots and in the output) that are not written yet. */
  #held = 0;
  /** Requests reserved whose reply is not in yet. */
  #pending = 0;
  /** Whole multi-gets' estimates (ticket -> bytes) until their replies are in (see partsFor). */
  #wholes: Map<number, number> | null = null;
  /** The sum of #wholes' estimates. */
  #wholeBytes = 0;
  /** What this connection adds to the process's budget now (see {@linkcode #account}). */
  #counted = 0;

  /** A reply was reserved: pending until it is in. */
  reserved(): void {
    this.#pending++;
    this.#account();
  }

  /** The reserved reply of `ticket` is in, `n` bytes, held until written. */
  filled(ticket: number, n: number): void {
    this.#sized(n);
    this.#held += n;
    this.#pending--;
    if (this.#wholes !== null) this.#whole(ticket);
    this.#account();
  }

  /** `n` reply bytes not reserved before (a reply at once, a part) are held until written. */
  added(n: number): void {
    this.#sized(n);
    this.#held += n;
    this.#account();
  }

  /** `n` held bytes were written. */
  written(n: number): void {
    this.#held -= n;
    this.#account();
  }

  /**
   * True while reading should wait: more than the window of requests in
   * flight, more than MAX_UNSENT `unsent`, or, while the process's budget is
   * spent, more than PRESSED_ROOM held by this connection.
   */
  full(inFlight: number, unsent: number): boolean {
    return inFlight > this.#window || unsent > MAX_UNSENT ||
      (replyBudget.bytes > replyBudget.limit && this.#counted > PRESSED_ROOM);
  }

  /** True when reading that waited may go on: half the window is free. */
  wakes(inFlight: number): boolean {
    return inFlight <= this.#window / 2;
  }

  /** A part of a reply written in parts may be fetched: little unsent, and the budget allows it. */
  partRoom(unsent: number): boolean {
    return unsent < PART_ROOM &&
      (replyBudget.bytes <= replyBudget.limit || this.#held <= PRESSED_ROOM);
  }

  /**
   * A multi-get pipelined behind replies not written yet (`behind`), while
   * this connection's reply sizes are unknown (its first ones) or past
   * {@linkcode PART_ROOM}, goes in parts: the window counts requests, and
   * 64 multi-gets of 200 MB each, unread, would be 12 GB held; in parts
   * they wait their turn (one whole one at most is held). So does one that,
   * whole, could take the process's budget past its limit: ten
   * connections' first gets of 1,000 values of 200 KB were 2 GB held.
   */
  partsFor(nkeys: number, ticket: number, behind: boolean): boolean {
    if (nkeys < 2) return false;
    if (behind && (this.#maxReply === 0 || this.#maxReply > PART_ROOM)) return true;
    // Whole, it could spend the process's budget (a burst of them at once, say): in parts.
    if (replyBudget.tooLarge(nkeys)) return true;
    // Whole: counted as that many values until its reply is in (its own ticket: a get held in
    // the router was reserved long before).
    const est = replyBudget.wholeGet(nkeys);
    (this.#wholes ??= new Map()).set(ticket, est);
    this.#wholeBytes += est;
    this.#account();
    return false;
  }

  /** The connection closed: what it held is dropped with it. */
  close(): void {
    replyBudget.bytes -= this.#counted;
    this.#counted =
      this.#held =
      this.#pending =
      this.#wholeBytes =
        0;
    this.#wholes = null;
  }

  /**
   * Brings this connection's share of the process's budget up to date: the
   * bytes it holds, plus its pending replies at the largest reply it had
   * (unknown: UNKNOWN_REPLY).
   */
  #account(): void {
    const c = this.#held + this.#pending * (this.#maxReply || UNKNOWN_REPLY) + this.#wholeBytes;
    replyBudget.bytes += c - this.#counted;
    this.#counted = c;
  }

  /** A reply of `size` bytes came: a larger one than before narrows the window. */
  #sized(size: number): void {
    if (size <= this.#maxReply) return;
    this.#maxReply = size;
    if (size > replyBudget.largestReply) replyBudget.largestReply = size;
    this.#window = Math.max(2, Math.floor(MAX_UNSENT / Math.max(size, WINDOW_FLOOR)));
  }

  /** The reply of `ticket` is in: a whole multi-get's estimate is no longer counted. */
  #whole(ticket: number): void {
    const wholes = this.#wholes as Map<number, number>;
    const est = wholes.get(ticket);
    if (est === undefined) return;
    wholes.delete(ticket);
    this.#wholeBytes -= est;
  }
}
