/**
 * Command codes shared by the request parser, the server, the proxy and the
 * client. A number, not a string, so hot paths switch on small integers.
 * @module
 */

/** Every command memrep understands; `ERROR` marks a request the parser rejected. */
export const Op = {
  ERROR: 0,
  GET: 1,
  GETS: 2,
  GAT: 3,
  GATS: 4,
  SET: 5,
  ADD: 6,
  REPLACE: 7,
  APPEND: 8,
  PREPEND: 9,
  CAS: 10,
  DELETE: 11,
  INCR: 12,
  DECR: 13,
  TOUCH: 14,
  FLUSH_ALL: 15,
  VERSION: 16,
  VERBOSITY: 17,
  STATS: 18,
  QUIT: 19,
  SHUTDOWN: 20,
  MG: 21,
  MS: 22,
  MD: 23,
  MA: 24,
  MN: 25,
  ME: 26,
  LRU_CRAWLER: 27,
  CACHE_MEMLIMIT: 28,
  MISBEHAVE: 29,
  /** memrep's own replication verb on the peer link, never accepted from clients. */
  REPL: 30,
  /** `slabs reassign|automove`. */
  SLABS: 31,
  /** `lru tune|mode|temp_ttl`. */
  LRU: 32,
  /** `watch [fetchers|mutations|...]`. */
  WATCH: 33,
} as const;

/** One of the values of {@linkcode Op}. */
export type OpCode = typeof Op[keyof typeof Op];

/**
 * The text commands after which memcached transmits its replies at once
 * (get, gets, gat, gats, mn, quit); after the others it parses on, its
 * replies pending. What a too-long get key drops (the unsent ones) ends here.
 */
export function textTransmits(op: number): boolean {
  return op === Op.GET || op === Op.GETS || op === Op.GAT || op === Op.GATS || op === Op.MN ||
    op === Op.QUIT;
}
