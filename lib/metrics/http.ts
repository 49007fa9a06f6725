/**
 * The `/metrics` HTTP endpoint: GET /metrics answers the exposition text,
 * other paths 404, other methods 405. It runs on the event loop of the
 * thread that starts it, so a scrape runs between batches of requests and
 * only reads counters (no store lock is taken).
 * @module
 */

import { CONTENT_TYPE } from "./exposition.ts";

/** A running endpoint. */
export interface MetricsEndpoint {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stop listening; resolves once closed (open scrapes are cut after a moment). */
  close(): Promise<void>;
}

/** Where to listen. */
export interface MetricsAddress {
  /** Interface to bind. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
}

const TEXT = { "content-type": "text/plain; charset=utf-8" };

/**
 * Listen on `addr` and answer scrapes with `render()`; throws (AddrInUse,
 * ...) before serving when the address cannot be bound.
 */
export function startMetricsEndpoint(
  addr: MetricsAddress,
  render: () => string,
  onError: (err: unknown) => void = () => {},
): MetricsEndpoint {
  const abort = new AbortController();
  const server = Deno.serve({
    hostname: addr.host,
    port: addr.port,
    signal: abort.signal,
    onListen: () => {},
    onError: (err) => {
      onError(err);
      return new Response("internal error\n", { status: 500, headers: TEXT });
    },
  }, (req) => {
    const path = new URL(req.url).pathname;
    if (path !== "/metrics") return new Response("not found\n", { status: 404, headers: TEXT });
    if (req.method !== "GET") {
      return new Response("method not allowed\n", {
        status: 405,
        headers: { ...TEXT, allow: "GET" },
      });
    }
    return new Response(render(), { headers: { "content-type": CONTENT_TYPE } });
  });
  return {
    port: server.addr.port,
    async close() {
      abort.abort();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([server.finished, new Promise((r) => timer = setTimeout(r, 1000))]);
      clearTimeout(timer);
    },
  };
}
