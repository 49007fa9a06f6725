/**
 * `memrep serve`: the memcached-compatible server (engine, connections,
 * listener).
 * @module
 */

export {
  Action,
  Engine,
  type EngineOptions,
  type EngineShared,
  ITEM_KEY_BINARY,
  ITEM_STALE,
  ITEM_TOKEN_SENT,
  type MutationObserver,
  type Session,
  VERSION,
} from "./commands.ts";
export { type ClockOrigin, ServerClock } from "./clock.ts";
export { OUTPUT_LIMIT, serveConnection } from "./connection.ts";
export { PrefixStats } from "./prefix_stats.ts";
export { Server, type ServerOptions } from "./listener.ts";
export { ServerStats, SharedStats, STAT_NAMES, statLine, type StatName } from "./stats.ts";
export { startThreads, type ThreadInit, type ThreadMessage } from "./threads.ts";
