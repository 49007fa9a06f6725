/**
 * Replies written in parts on one proxy client connection (multi-gets too
 * large to hold whole, see router/multiget_parts.ts), and what waits for
 * them: their next part waits for room, and requests after one wait until
 * it ends. See {@linkcode ReplyParts}.
 * @module
 */

/**
 * One connection's replies being written in parts. Requests after one wait
 * until it ends, as memcached runs them after the whole get (a part fetched
 * late must not see a later pipelined write): those not read yet are not
 * read (the connection stops reading while {@linkcode active}); those read
 * already and held in the router wait here ({@linkcode after}).
 */
export class ReplyParts {
  /** Tickets of replies being written in parts. */
  #streams: number[] = [];
  /** Held requests released behind a reply written in parts, in ticket order (see after). */
  #behind: { ticket: number; go: () => void }[] = [];
  /** Replies written in parts waiting for room to fetch their next part, by ticket. */
  #rooms: Map<number, () => void> | null = null;

  /** True while a reply is being written in parts. */
  get active(): boolean {
    return this.#streams.length > 0;
  }

  /** True while a reply waits for room to fetch its next part. */
  get waiting(): boolean {
    return this.#rooms !== null && this.#rooms.size > 0;
  }

  /** `ticket`'s reply is written in parts from now on. */
  started(ticket: number): void {
    if (!this.#streams.includes(ticket)) this.#streams.push(ticket);
  }

  /** True when `ticket`'s reply was being written in parts (it is complete now). */
  ended(ticket: number): boolean {
    if (this.#streams.length === 0) return false;
    const i = this.#streams.indexOf(ticket);
    if (i < 0) return false;
    this.#streams.splice(i, 1);
    return true;
  }

  /** `ticket`'s next part is fetched by `go` once there is room (see {@linkcode take}). */
  wait(ticket: number, go: () => void): void {
    (this.#rooms ??= new Map()).set(ticket, go);
  }

  /** What fetches `ticket`'s next part, if it waits for room; it waits no more. */
  take(ticket: number): (() => void) | undefined {
    const rooms = this.#rooms as Map<number, () => void>;
    const go = rooms.get(ticket);
    if (go !== undefined) rooms.delete(ticket);
    return go;
  }

  /**
   * A request held in the router, read before a multi-get that is now
   * written in parts and released after it, goes once that get is complete
   * (see ReplySink.afterParts in router/core.ts).
   */
  after(ticket: number, go: () => void): void {
    if (!this.#before(ticket)) return go();
    const q = this.#behind;
    let i = q.length;
    while (i > 0 && q[i - 1].ticket > ticket) i--;
    q.splice(i, 0, { ticket, go });
  }

  /** The requests behind parts that no longer are go, in ticket order (one may start parts). */
  runBehind(): void {
    const q = this.#behind;
    while (q.length > 0 && !this.#before(q[0].ticket)) (q.shift() as { go: () => void }).go();
  }

  /** The connection closed: what waits is dropped with it. */
  clear(): void {
    this.#rooms = null;
    this.#streams = [];
    this.#behind = [];
  }

  /** True while a reply before `ticket` is being written in parts. */
  #before(ticket: number): boolean {
    for (const t of this.#streams) if (t < ticket) return true;
    return false;
  }
}
