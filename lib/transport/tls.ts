/**
 * TLS listeners: Deno's rustls behind one small function, so the server
 * (and later the proxy and the replication link) bind TLS and plain TCP
 * the same way.
 * @module
 */

/** A certificate chain and its private key, both PEM text. */
export interface TlsMaterial {
  /** Certificate chain, leaf first (memcached's ssl_chain_cert). */
  cert: string;
  /** Private key (memcached's ssl_key). */
  key: string;
}

/** Where and how to bind one TCP listener. */
export interface BindOptions {
  /** Address to bind. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** SO_REUSEPORT (serve threads share the port). */
  reusePort: boolean;
  /** Serve TLS with this material; plain TCP when absent. */
  tls?: TlsMaterial;
}

/**
 * Bind a TCP listener, TLS when `options.tls` is set. A bad certificate or
 * key throws here, before anything is served.
 */
export function listenTcp(options: BindOptions): Deno.Listener {
  const { hostname, port, reusePort, tls } = options;
  if (tls) {
    return Deno.listenTls({ hostname, port, reusePort, transport: "tcp", ...tls });
  }
  return Deno.listen(
    { hostname, port, reusePort, transport: "tcp" } as Deno.TcpListenOptions & { transport: "tcp" },
  );
}

/** True for a connection accepted by a TLS listener. */
export function isTlsConn(conn: Deno.Conn): conn is Deno.TlsConn {
  return "handshake" in conn;
}
