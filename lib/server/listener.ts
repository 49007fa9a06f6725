/**
 * The listeners of `serve`: TCP on every address, or one unix-domain socket
 * (-s, which replaces TCP as in memcached), and UDP on the same addresses
 * (-U, this thread only); enforces -c, stops gracefully.
 * @module
 */

import { Engine } from "./commands.ts";
import type { EngineOptions } from "./engine_options.ts";
import { Action, type Session } from "./session.ts";
import { serveConnection } from "./connection.ts";
import { datagramSession, serveDatagrams } from "./datagram.ts";
import type { SyncBarrier } from "./sync_replies.ts";
import {
  bindDatagrams,
  bindListeners,
  type BoundListeners,
  BurstTrim,
  closeListeners,
  closeQuietly,
  isDisconnect,
  isTlsConn,
  type ListenAddress,
  type TlsMaterial,
  writeAll,
} from "../transport/mod.ts";
import { log } from "../log.ts";
import { Authenticator, AuthSession } from "../auth/mod.ts";

export type { ListenAddress };

/** Listener settings on top of the engine's. */
export interface ServerOptions extends EngineOptions {
  /** What to bind (memcached -l), in order. */
  listen: ListenAddress[];
  /** TCP port (-p) of the listeners without their own; 0: the first of them picks one for all. */
  port: number;
  /** Max simultaneous connections (-c), over all threads. */
  maxConnections: number;
  /** Share the port with other threads (SO_REUSEPORT; Linux spreads connections). */
  reusePort?: boolean;
  /** memcached -Z: the listeners but the `plain` ones speak TLS with this certificate. */
  tls?: TlsMaterial;
}

const TOO_MANY = new TextEncoder().encode("ERROR Too many open connections\r\n");

/** A running memcached-compatible server. */
export class Server {
  /** The shared cache engine. */
  readonly engine: Engine;
  /** Who may log in (-S, -Y), or null when anyone may use the server. */
  readonly authenticator: Authenticator | null;
  /** With `--repl-sync`: replies to writes wait for the peer. */
  barrier: SyncBarrier | undefined;
  #options: ServerOptions;
  #listeners: Deno.Listener[] = [];
  #unix: Deno.UnixListener | null = null;
  #conns = new Set<Deno.Conn>();
  #udp: Deno.DatagramConn[] = [];
  #stopped = false;
  #burst = new BurstTrim(() => this.engine.stats.heapTrims++);
  #done: PromiseWithResolvers<void> = Promise.withResolvers();

  /**
   * Create the engine and load the password files (throws
   * AuthFileError); call {@linkcode listen} to start serving.
   */
  constructor(options: ServerOptions, engine = new Engine(options)) {
    this.#options = options;
    this.engine = engine;
    this.authenticator = options.auth ? Authenticator.load(options.auth) : null;
  }

  /** Resolves when the server has stopped. */
  get finished(): Promise<void> {
    return this.#done.promise;
  }

  /** True once {@linkcode listen} bound the port. */
  get listening(): boolean {
    return this.#listeners.length > 0 || this.#unix !== null;
  }

  /** Bound port (useful with port 0): the first listener's. */
  get port(): number {
    return (this.#listeners[0]?.addr as Deno.NetAddr | undefined)?.port ?? this.#options.port;
  }

  /**
   * The listen addresses with their ports: the bound ones once listening
   * (what other threads must bind), else the configured ones.
   */
  get addresses(): Array<ListenAddress & { port: number }> {
    return this.#options.listen.map((l, i) => ({
      ...l,
      port: (this.#listeners[i]?.addr as Deno.NetAddr | undefined)?.port ??
        l.port ?? this.#options.port,
    }));
  }

  /** The bound UDP sockets' addresses (memcached -U), in -l order. */
  get udpAddresses(): Deno.NetAddr[] {
    return this.#udp.map((s) => s.addr as Deno.NetAddr);
  }

  /**
   * memcached -U: UDP on every TCP listen address (`port`, or the address's
   * own; 0 picks one for all), served by this thread. Each socket counts
   * as `perSocket` connections, as memcached gives each of its threads one
   * (`curr_connections`, `stats conns`). Throws before serving anything.
   */
  listenUdp(port: number, perSocket: number, bound?: Deno.DatagramConn[]): void {
    this.#udp = bound ?? bindDatagrams(this.#options.listen, port);
    const stats = this.engine.stats;
    this.#udp.forEach((socket, i) => {
      const addr = socket.addr as Deno.NetAddr;
      const session = datagramSession();
      // One dual-stack socket stands for memcached's two (0.0.0.0, then [::]).
      const shown = this.#options.listen[i].dual && addr.hostname === "::"
        ? [{ ...addr, hostname: "0.0.0.0" }, addr]
        : [addr];
      this.engine.conns.addDatagram(session, shown, perSocket);
      stats.currConnections += shown.length * perSocket;
      stats.totalConnections += shown.length * perSocket;
      const hooks = { barrier: this.barrier, stopped: () => this.#stopped };
      serveDatagrams(socket, this.engine, session, this.#options.maxItemSize, hooks).then(
        (action) => {
          if (action === Action.SHUTDOWN) this.stop();
        },
        (err) => {
          if (!this.#stopped) console.error(`udp error: ${err}`);
        },
      );
    });
  }

  /**
   * Bind every address (or take `bound`, bound for these options before the
   * server loaded) and serve them; throws (AddrInUse...) before serving anything.
   */
  listen(bound?: BoundListeners): void {
    const o = this.#options;
    const { tcp, unix } = bound ?? bindListeners(o);
    if (this.#stopped) return closeListeners({ tcp, unix }); // (stopped while it started)
    if (unix) {
      this.#unix = unix;
      // Bound under a private name and renamed: `stats conns` names the path clients use.
      const addr: Deno.UnixAddr = { transport: "unix", path: o.unixSocket! };
      this.engine.conns.addListener(addr);
      this.#acceptLoop(unix, addr);
      return;
    }
    this.#listeners = tcp;
    tcp.forEach((listener, i) => {
      const addr = listener.addr as Deno.NetAddr;
      // One dual-stack socket stands for memcached's two (0.0.0.0, then [::]).
      if (o.listen[i].dual && addr.hostname === "::") {
        this.engine.conns.addListener({ ...addr, hostname: "0.0.0.0" });
      }
      this.engine.conns.addListener(addr);
      this.#acceptLoop(listener);
    });
  }

  async #acceptLoop(listener: Deno.Listener, addr: Deno.Addr = listener.addr): Promise<void> {
    const engine = this.engine;
    const maxValue = this.#options.maxItemSize;
    try {
      for await (const conn of listener) {
        // engine.stats is read each time: `share()` moves it into shared memory.
        const stats = engine.stats;
        stats.totalConnections++;
        if (this.engine.connections() >= this.#options.maxConnections) {
          stats.rejectedConnections++;
          writeAll(conn, TOO_MANY).catch(() => {}).finally(() => conn.close());
          continue;
        }
        if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
        this.#conns.add(conn);
        stats.currConnections++;
        this.#burst.opened();
        const auth = this.authenticator;
        // Every field set up front: one object shape for the connection's life.
        const session: Session = {
          more: null,
          auth: auth ? new AuthSession(auth, stats) : null,
          lastCmd: undefined,
          nread: false,
          watcher: null,
          id: 0,
          error: false,
        };
        engine.conns.add(session, conn, addr);
        const hooks = { barrier: this.barrier, stopped: () => this.#stopped };
        handshake(conn).then((ok) =>
          ok ? serveConnection(conn, this.engine, session, maxValue, hooks) : Action.CLOSE
        ).then((action) => {
          if (action === Action.SHUTDOWN) this.stop();
        }, (err) => {
          if (!isDisconnect(err)) console.error(`connection error: ${err}`);
        }).finally(() => {
          engine.conns.remove(session);
          this.#conns.delete(conn);
          stats.currConnections--;
          this.#burst.closed();
        });
      }
    } catch (err) {
      if (!this.#stopped && !(err instanceof Deno.errors.BadResource)) throw err;
    }
  }

  /** Stop accepting, close every connection, resolve {@linkcode finished}. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const l of this.#listeners) closeQuietly(l);
    if (this.#unix) closeQuietly(this.#unix);
    for (const s of this.#udp) closeQuietly(s);
    this.engine.conns.close();
    this.#burst.close();
    for (const c of this.#conns) closeQuietly(c);
    this.#done.resolve();
  }
}

/**
 * Completes a TLS connection's handshake; false (connection closed) when the
 * client does not speak TLS or rejects the certificate, as memcached drops it.
 */
async function handshake(conn: Deno.Conn): Promise<boolean> {
  if (!isTlsConn(conn)) return true;
  try {
    await conn.handshake();
    return true;
  } catch (err) {
    log.debug(`memrep: TLS handshake failed: ${err instanceof Error ? err.message : err}`);
    closeQuietly(conn);
    return false;
  }
}
