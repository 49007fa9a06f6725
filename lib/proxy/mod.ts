/**
 * `memrep proxy`: a magent-compatible memcached proxy. Keys are placed on
 * primaries with twemproxy-compatible ketama (or magent's modulo), every
 * write is copied to the backups, and reads fall back to a backup when the
 * primary is down, slow, or restarted empty, repairing the primary.
 * @module
 */

export { type Distribution, Ketama, ketamaName, Modula, type RingServer } from "./ketama.ts";
export { md5 } from "./md5.ts";
export { Backend, type BackendOptions, type ReturnInfo } from "./pool.ts";
export { Next, type ReplySink, Router, type RouterOptions } from "./router/mod.ts";
export { ttlToExptime } from "./lines.ts";
export { ProxyServer, type ProxyServerOptions } from "./server.ts";
export { AGENT_VERSION, agentStats, PROXY_VERSION, ProxyStats, proxyStats } from "./stats.ts";
export {
  ConfigError,
  loadConfig,
  parseConfig,
  type PoolConfig,
  type ServerSpec,
} from "./config.ts";
export { HASHES, type HashFunction, hashFunction } from "./hash.ts";
export {
  type HashTag,
  KetamaDistribution,
  ModulaDistribution,
  RandomDistribution,
  tagged,
} from "./dist.ts";
export {
  DEFAULT_TIMEOUT_MS,
  localFirst,
  type PoolAccess,
  poolDistribution,
  ProxyPool,
  ProxyPools,
  zoneDistribution,
} from "./pools.ts";
export { statsJson, StatsPort } from "./stats_port.ts";
export { planZones, splitZone, ZoneError, type ZonePlan, type ZoneRing } from "./zones.ts";
export { parseYaml, YamlError, type YamlMap, type YamlValue } from "./yaml.ts";
export { DEFAULT_BUFFERED_MB, ReplyBudget, replyBudget } from "./budget.ts";
