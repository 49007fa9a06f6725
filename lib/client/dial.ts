/**
 * Opening a client's socket: TCP (TCP_NODELAY, optional TLS) or a
 * unix-domain socket, within the connect deadline; how a server is named.
 * @module
 */

import { errorText } from "../transport/mod.ts";
import { ClientError } from "./errors.ts";

/** Connection options. */
export interface ClientOptions {
  /** Give up connecting after this long (default 3000 ms). */
  connectTimeoutMs?: number;
  /**
   * Close the connection when the oldest outstanding request has seen no
   * reply for this long (default 5000 ms; 0 disables).
   */
  requestTimeoutMs?: number;
  /**
   * Log in first, as text clients of memcached -Y do: the connection sends
   * `set auth 0 0 <n>` with `user password` and must be answered STORED.
   */
  login?: { user: string; password: string };
  /** Speak TLS, trusting `ca` (PEM; Deno's roots when absent). */
  tls?: { ca?: string };
  /**
   * On a request timeout (or {@linkcode Client.abandon}), half-close instead
   * of closing and read on, discarding, until the server closes its side (it
   * has then applied or dropped every byte sent here), for at most this long
   * (ms; 0, the default: close at once). See {@linkcode Client.drained}.
   */
  drainMs?: number;
}

/**
 * The socket to `host:port` (or the unix socket at path `host`), named
 * `server` in the {@linkcode ClientError} it rejects with.
 */
export async function dial(
  host: string,
  port: number,
  server: string,
  options: ClientOptions,
): Promise<Deno.Conn> {
  const timeoutMs = options.connectTimeoutMs ?? 3000;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let conn: Deno.Conn;
  try {
    if (isUnixPath(host)) {
      if (options.tls) throw new Error("TLS over a unix-domain socket is not supported");
      conn = await Deno.connect({ transport: "unix", path: host });
      // An accept backlog that is full does not block a unix connect; no timer race here.
    } else {
      conn = await connectTcp(host, port, ac.signal, options.tls);
    }
  } catch (err) {
    const why = ac.signal.aborted
      ? `connect timed out after ${timeoutMs} ms`
      : `cannot connect: ${errorText(err)}`;
    throw new ClientError("connect", server, why, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  return conn;
}

/** A host that is an absolute path names a unix-domain socket (port unused), as in nutcracker. */
export function isUnixPath(host: string): boolean {
  return host.startsWith("/");
}

/** How a server is named in messages and stats: `host:port`, or the socket's path. */
export function serverName(host: string, port: number): string {
  return isUnixPath(host) ? host : `${host}:${port}`;
}

/** TCP (and TLS inside the same deadline: the abort closes the socket). */
async function connectTcp(
  host: string,
  port: number,
  signal: AbortSignal,
  tlsOptions: ClientOptions["tls"],
): Promise<Deno.Conn> {
  const tcp = await Deno.connect({ hostname: host, port, signal });
  tcp.setNoDelay(true);
  if (!tlsOptions) return tcp;
  const tls = await Deno.startTls(tcp, {
    hostname: host,
    caCerts: tlsOptions.ca === undefined ? undefined : [tlsOptions.ca],
  });
  const onAbort = () => closeSilently(tls);
  signal.addEventListener("abort", onAbort);
  try {
    await tls.handshake();
  } catch (err) {
    closeSilently(tls);
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  return tls;
}

function closeSilently(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}
