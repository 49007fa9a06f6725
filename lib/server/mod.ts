/**
 * `memrep serve`: the memcached-compatible server (engine, connections,
 * listener).
 * @module
 */

export { Engine } from "./commands.ts";
export { EngineBase, VERSION } from "./engine.ts";
export type {
  BindingProtocol,
  EngineOptions,
  EngineShared,
  MutationObserver,
  StartupSettings,
} from "./engine_options.ts";
export { defaultStartupSettings } from "./engine_options.ts";
export { Action, type Session } from "./session.ts";
export { ITEM_KEY_BINARY, ITEM_STALE, ITEM_TOKEN_SENT } from "./items.ts";
export { BinaryExecutor } from "./binary.ts";
export { type ClockOrigin, ServerClock } from "./clock.ts";
export { type ConnectionHooks, OUTPUT_LIMIT, serveConnection } from "./connection.ts";
export { defaultOutputLimit, OutputBudget } from "./output_budget.ts";
export type { SyncBarrier } from "./sync_replies.ts";
export { PrefixStats } from "./prefix_stats.ts";
export { type ListenAddress, Server, type ServerOptions } from "./listener.ts";
export { ServerStats, SharedStats, STAT_NAMES, statLine, type StatName } from "./stats.ts";
export {
  runWorker,
  startThreads,
  type StartThreadsOptions,
  type ThreadInit,
  type ThreadMessage,
  type Threads,
} from "./threads.ts";
