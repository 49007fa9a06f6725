/**
 * The proxy's listener (TCP, or a unix-domain socket with `--unix` /
 * `listen: /path`): accepts clients (TLS handshake first with
 * `--tls-cert`), refuses those over `-n`, and runs a
 * {@linkcode ProxyConnection} for each.
 * @module
 */

import {
  BurstTrim,
  closeQuietly,
  isTlsConn,
  listenTcp,
  listenUnix,
  type TlsMaterial,
  writeAll,
} from "../transport/mod.ts";
import { log } from "../log.ts";
import { type Authenticator } from "../auth/mod.ts";
import { type Router } from "./router/mod.ts";
import { ProxyConnection } from "./connection.ts";

/** Listener settings. */
export interface ProxyServerOptions {
  /** Address to bind. */
  hostname: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Listen on this unix-domain socket instead of TCP. */
  unixPath?: string;
  /** The socket file's permission bits (undefined: the umask's). */
  unixMode?: number;
  /** Max simultaneous client connections (-n). */
  maxConnections: number;
  /** Largest value accepted from clients (backends may refuse smaller ones). */
  maxValue: number;
  /** Clients must log in first, as with memcached -Y (--auth-file). */
  auth?: Authenticator;
  /** Clients speak TLS (--tls-cert/--tls-key). */
  tls?: TlsMaterial;
}

const TOO_MANY = new TextEncoder().encode("ERROR Too many open connections\r\n");

/** The proxy's listener. */
export class ProxyServer {
  readonly #options: ProxyServerOptions;
  readonly #router: Router;
  #listener: Deno.Listener | undefined;
  readonly #conns = new Set<Deno.Conn>();
  readonly #burst: BurstTrim;
  #stopped = false;
  readonly #done: PromiseWithResolvers<void> = Promise.withResolvers();

  /** A server routing through `router`; call {@linkcode listen} to start. */
  constructor(options: ProxyServerOptions, router: Router) {
    this.#options = options;
    this.#router = router;
    this.#burst = new BurstTrim(() => router.stats.heapTrims++);
  }

  /** The bound port. */
  get port(): number {
    return (this.#listener?.addr as Deno.NetAddr | undefined)?.port ?? this.#options.port;
  }

  /** Resolves once the server has stopped. */
  get finished(): Promise<void> {
    return this.#done.promise;
  }

  /** Bind (throws AddrInUse etc. before serving) and start accepting. */
  listen(): void {
    const { hostname, port, tls, unixPath, unixMode } = this.#options;
    this.#listener = unixPath === undefined
      ? listenTcp({ hostname, port, reusePort: false, tls })
      : listenUnix(unixPath, unixMode);
    this.#accept(this.#listener);
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    const stats = this.#router.stats;
    try {
      for await (const conn of listener) {
        stats.totalConnections++;
        if (this.#conns.size >= this.#options.maxConnections) {
          stats.rejectedConnections++;
          writeAll(conn, TOO_MANY).catch(() => {}).finally(() => {
            try {
              conn.close();
            } catch { /* closed */ }
          });
          continue;
        }
        if (conn.localAddr.transport === "tcp" && !isTlsConn(conn)) {
          (conn as Deno.TcpConn).setNoDelay(true);
        }
        this.#conns.add(conn);
        stats.currConnections++;
        this.#burst.opened();
        const c = new ProxyConnection(
          conn,
          this.#router,
          this.#options.maxValue,
          this.#options.auth,
        );
        // A TLS client that fails its handshake (a plain one, say) is dropped before any reply.
        const shaken = isTlsConn(conn)
          ? conn.handshake().then(() => true, (err) => {
            log.debug(`proxy: TLS handshake failed: ${err}`);
            closeQuietly(conn);
            return false;
          })
          : Promise.resolve(true);
        shaken.then((ok) => ok ? c.run() : undefined).catch((err) =>
          log.warn(`proxy: connection: ${err}`)
        ).finally(() => {
          this.#conns.delete(conn);
          stats.currConnections--;
          this.#burst.closed();
        });
      }
    } catch (err) {
      if (!this.#stopped && !(err instanceof Deno.errors.BadResource)) throw err;
    }
  }

  /** Stop accepting and close every client connection. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#listener) closeQuietly(this.#listener);
    this.#burst.close();
    for (const c of this.#conns) closeQuietly(c);
    this.#done.resolve();
  }
}
