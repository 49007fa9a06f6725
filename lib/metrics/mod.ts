/**
 * Prometheus metrics for `serve` and `proxy` (`--metrics host:port`): a
 * text-format writer, the HTTP endpoint, and the series of each command.
 * @module
 */

export {
  CONTENT_TYPE,
  escapeHelp,
  escapeLabelValue,
  formatValue,
  type Labels,
  MetricsText,
  type Sample,
} from "./exposition.ts";
export { Histogram, LATENCY_BOUNDS } from "./histogram.ts";
export { type MetricsAddress, type MetricsEndpoint, startMetricsEndpoint } from "./http.ts";
export { serveMetrics, type StatsSource } from "./serve.ts";
export { proxyMetrics, type ProxySource } from "./proxy.ts";
export { COMMAND_CLASSES, RequestTimes, TimedRouter } from "./timed_router.ts";
