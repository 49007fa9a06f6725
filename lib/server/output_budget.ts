/**
 * serve's bound on reply bytes held by connections whose writes wait for
 * their clients (a client that pipelines gets and never reads holds its
 * connection's output: up to OUTPUT_LIMIT and one reply). Each thread
 * counts what its connections hold while their writes are under way;
 * while its share of the limit is used up, a connection writes once it
 * has {@linkcode PRESSED_OUTPUT} of replies instead of OUTPUT_LIMIT, so
 * each client that does not read holds about one reply more, not 1 MB.
 * Clients that read are not stopped: their writes end, and they go on.
 * @module
 */

/** Output a connection collects before it writes while its thread's share is used up. */
export const PRESSED_OUTPUT = 65536;

/** The smallest default limit, whatever -m (see {@linkcode defaultOutputLimit}). */
const MIN_DEFAULT = 16 * 1048576;

/** The default limit for a cache of `memoryLimit` bytes (-m): a quarter of it, at least 16 MB. */
export function defaultOutputLimit(memoryLimit: number): number {
  return Math.max(Math.floor(memoryLimit / 4), MIN_DEFAULT);
}

/** One serve thread's output bytes held in writes under way, against its share of the limit. */
export class OutputBudget {
  /** Bytes held now by this thread's connections' writes. */
  bytes = 0;
  /** This thread's share (Infinity: no limit). */
  limit = Infinity;

  /** The share of `limitBytes` (0: none) for one of `threads` threads. */
  constructor(limitBytes = 0, threads = 1) {
    this.split(limitBytes, threads);
  }

  /** (Re)compute this thread's share of `limitBytes` (0: none) among `threads` threads. */
  split(limitBytes: number, threads: number): void {
    this.limit = limitBytes > 0
      ? Math.max(Math.floor(limitBytes / threads), PRESSED_OUTPUT)
      : Infinity;
  }
}
