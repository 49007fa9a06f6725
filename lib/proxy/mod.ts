/**
 * `memrep proxy`: a magent-compatible memcached proxy. Keys are placed on
 * primaries with twemproxy-compatible ketama (or magent's modulo), every
 * write is copied to the backups, and reads fall back to a backup when the
 * primary is down, slow, or restarted empty, repairing the primary.
 * @module
 */

export { type Distribution, Ketama, ketamaName, Modula, type RingServer } from "./ketama.ts";
export { md5 } from "./md5.ts";
export { Backend, type BackendOptions } from "./pool.ts";
export { Next, type ReplySink, Router, type RouterOptions } from "./router/mod.ts";
export { ttlToExptime } from "./lines.ts";
export { ProxyServer, type ProxyServerOptions } from "./server.ts";
export { AGENT_VERSION, agentStats, PROXY_VERSION, ProxyStats, proxyStats } from "./stats.ts";
