/**
 * `memrep proxy -c nutcracker.yml`: every pool of a nutcracker config in
 * one process, `-t`/`--check-config` to validate a file, SIGHUP to reload
 * it, and nutcracker's JSON stats port.
 * @module
 */

import {
  ConfigError,
  loadConfig,
  type PoolAccess,
  type PoolConfig,
  PROXY_VERSION,
  ProxyPools,
  StatsPort,
} from "../proxy/mod.ts";
import { log } from "../log.ts";
import { type MetricsEndpoint, proxyMetrics, startMetricsEndpoint } from "../metrics/mod.ts";
import { errorText } from "../transport/mod.ts";
import { type FlagValues, type HostPort, intFlag, stringFlag, UsageError } from "./flags.ts";

/** nutcracker's default stats port. */
const NC_STATS_PORT = 22222;

/** What `-t` prints for a valid file, like nutcracker. */
function syntaxOk(path: string, pools: readonly PoolConfig[]): string {
  return `memrep proxy: configuration file '${path}' syntax is ok (${pools.length} pools: ` +
    `${pools.map((p) => p.name).join(", ")})`;
}

/** The pools of `path`, or a usage error. */
export async function checkConfig(path: string): Promise<PoolConfig[]> {
  try {
    return await loadConfig(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new UsageError(`memrep proxy: ${err.message}`);
    }
    throw err;
  }
}

/** Run the config-file mode; resolves with the exit code. */
export async function configMain(
  v: FlagValues,
  path: string,
  access: PoolAccess = {},
  metricsAddr?: HostPort,
): Promise<number> {
  const configs = await checkConfig(path);
  if (v["test-conf"] || v["check-config"]) {
    console.log(syntaxOk(path, configs));
    return 0;
  }
  const statsPort = intFlag(v, "stats-port", NC_STATS_PORT, 0, 65535);
  const statsAddr = stringFlag(v, "stats-addr") ?? "0.0.0.0";
  intFlag(v, "stats-interval", 30_000, 1, 2 ** 31 - 1); // validated; counters are live
  intFlag(v, "mbuf-size", 16384, 512, 16777216); // nutcracker's bounds; memrep sizes its own
  const output = stringFlag(v, "output");
  if (output !== undefined) log.write = appendTo(output);
  const pidFile = stringFlag(v, "pid-file");
  if (pidFile !== undefined) {
    try {
      Deno.writeTextFileSync(pidFile, `${Deno.pid}\n`);
    } catch (err) {
      throw new UsageError(`memrep proxy: -p: cannot write ${pidFile}: ${errorText(err)}`);
    }
  }
  for (const c of configs) {
    if (c.serverConnections > 1) {
      log.info(
        `memrep proxy: pool '${c.name}': server_connections ${c.serverConnections}: ` +
          "memrep keeps one pipelined connection per server",
      );
    }
  }

  const pools = new ProxyPools(PROXY_VERSION, access);
  const stop = () => pools.stop();
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(() => reloadFrom(path, pools));
  };
  const signals = [["SIGINT", stop], ["SIGTERM", stop], ["SIGHUP", reload]] as const;
  for (const [signal, fn] of signals) {
    try {
      Deno.addSignalListener(signal, fn);
    } catch { /* not on this OS */ }
  }
  let stats: StatsPort | undefined;
  let metrics: MetricsEndpoint | undefined;
  try {
    try {
      pools.start(configs);
    } catch (err) {
      throw new UsageError(`memrep proxy: cannot listen: ${errorText(err)}`);
    }
    try {
      stats = new StatsPort(statsAddr, statsPort, pools, PROXY_VERSION);
    } catch (err) {
      pools.stop();
      throw new UsageError(
        `memrep proxy: cannot listen on stats port ${statsAddr}:${statsPort}: ${errorText(err)}`,
      );
    }
    for (const p of pools.pools.values()) {
      log.info(
        `memrep proxy: pool '${p.config.name}' listening on ${
          p.config.listen.path ?? `${p.config.listen.host}:${p.server.port}`
        }, ` +
          `${p.config.servers.length} servers, ${p.config.backups.length} backups, ` +
          `${p.config.distribution}/${p.config.hash}`,
      );
    }
    log.info(`memrep proxy: stats on ${statsAddr}:${stats.port}`);
    if (metricsAddr) {
      const where = `${metricsAddr.host}:${metricsAddr.port}`;
      try {
        // Pools are read at each scrape: a reload's added or removed pools show at once.
        metrics = startMetricsEndpoint(
          metricsAddr,
          proxyMetrics(() =>
            [...pools.pools.values()].map((p) => ({ pool: p.config.name, router: p.router }))
          ),
          (err) => log.warn(`memrep proxy: metrics: ${errorText(err)}`),
        );
      } catch (err) {
        pools.stop();
        throw new UsageError(
          `memrep proxy: --metrics: cannot listen on ${where}: ${errorText(err)}`,
        );
      }
      log.info(`memrep proxy: metrics on http://${where}/metrics`);
    }
    await pools.finished;
    await reloading;
  } finally {
    if (pidFile !== undefined) await Deno.remove(pidFile).catch(() => {});
    stats?.close();
    await metrics?.close();
    for (const [signal, fn] of signals) {
      try {
        Deno.removeSignalListener(signal, fn);
      } catch { /* not on this OS */ }
    }
  }
  return 0;
}

/** SIGHUP: read the file again; a bad file leaves the running config as it is. */
async function reloadFrom(path: string, pools: ProxyPools): Promise<void> {
  let configs: PoolConfig[];
  try {
    configs = await loadConfig(path);
  } catch (err) {
    log.warn(`memrep proxy: reload refused, keeping the running config: ${errorText(err)}`);
    return;
  }
  try {
    const r = pools.reload(configs);
    log.warn(
      `memrep proxy: reloaded '${path}': ${r.changed.length} pools updated` +
        (r.added.length ? `, added ${r.added.join(", ")}` : "") +
        (r.removed.length ? `, removed ${r.removed.join(", ")}` : ""),
    );
  } catch (err) {
    log.warn(`memrep proxy: reload refused, keeping the running config: ${errorText(err)}`);
  }
}

/** -o: each log line appended to `path` (created if missing), as nutcracker's log file. */
function appendTo(path: string): (message: string) => void {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { append: true, create: true });
  } catch (err) {
    throw new UsageError(`memrep proxy: -o: cannot open ${path}: ${errorText(err)}`);
  }
  const encoder = new TextEncoder();
  return (message) => {
    const bytes = encoder.encode(`${message}\n`);
    // A short write goes on from where it stopped; the line is whole in the file.
    for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
  };
}
