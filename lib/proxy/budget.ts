/**
 * The proxy's process-wide bound on reply bytes held in user space. Each
 * client connection bounds what it holds (see connection.ts), but a
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
