/**
 * `memrep serve`: the memcached-compatible server (engine, connections,
 * listener).
 * @module
 */

export {
  Action,
  Engine,
  type EngineOptions,
  ITEM_KEY_BINARY,
  ITEM_STALE,
  ITEM_TOKEN_SENT,
  type MutationObserver,
  type Session,
  VERSION,
} from "./commands.ts";
export { ServerClock } from "./clock.ts";
export { isDisconnect, serveConnection, writeAll } from "./connection.ts";
export { Server, type ServerOptions } from "./listener.ts";
export { ServerStats, statLine } from "./stats.ts";
