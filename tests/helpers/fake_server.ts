/**
 * A TCP server on a free loopback port whose connections a test scripts
 * (a misbehaving backend, a server that stalls or answers garbage).
 * @module
 */

/** A started {@linkcode fakeServer}. */
export interface FakeServer {
  /** Its port on 127.0.0.1. */
  port: number;
  /** Stops listening, closes every connection and waits for the handlers. */
  close(): Promise<void>;
}

/** A TCP server running `handler` per connection; closes everything on `close()`. */
export function fakeServer(handler: (conn: Deno.TcpConn) => Promise<void>): FakeServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const tasks: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      tasks.push(handler(conn).catch(() => {}));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
      await Promise.all(tasks);
    },
  };
}
