/**
 * A fault-injecting TCP relay for partition tests: put it between two
 * processes and pause, black-hole, refuse or drop their traffic on demand.
 * @module
 */

/**
 * Rewrites a forwarded chunk (an on-path attacker): returns the bytes to
 * forward instead, or null to forward it unchanged. `toTarget` is the
 * direction: client → target when true.
 */
export type Tamper = (chunk: Uint8Array, toTarget: boolean) => Uint8Array | null;

/** Control handle of a running relay. */
export interface Relay {
  /** Port the relay listens on (connect here instead of the target). */
  readonly port: number;
  /** Stop forwarding in both directions; sockets stay open (a hung link). Data waits. */
  pause(): void;
  /** Forward again, including what waited during the pause (or a stall). */
  resume(): void;
  /**
   * Stop reading one direction only (`toTarget`: client → target); the
   * other keeps flowing. The stalled side's bytes wait in its socket
   * buffers: a peer that keeps talking but never reads.
   */
  stall(toTarget: boolean): void;
  /** Close every current connection (both sides), like a reset link. New ones still work. */
  drop(): void;
  /**
   * Hold what the current connections' clients send (new connections flow):
   * a server that reads a dead connection's bytes late. The returned function
   * forwards the held bytes, even if their client has closed meanwhile.
   */
  holdLinks(): () => void;
  /** While on: accept connections but forward nothing, discarding all bytes (existing links too). */
  blackhole(on: boolean): void;
  /** While on: close new connections right after accepting them. */
  refuse(on: boolean): void;
  /** Adds `ms` of delay before each forwarded chunk (0 = none). */
  setLatency(ms: number): void;
  /** Rewrite forwarded chunks with `fn` from now on (null: stop). */
  tamper(fn: Tamper | null): void;
  /** Number of relayed connections currently open. */
  connections(): number;
  /** Total connections accepted so far. */
  accepted(): number;
  /** Stops listening, drops everything, waits for the relay's tasks to end. Idempotent. */
  close(): Promise<void>;
}

interface Link {
  client: Deno.TcpConn;
  upstream: Deno.TcpConn | undefined;
  closed: boolean;
  /** Set while {@linkcode Relay.holdLinks} holds this link's bytes to the target. */
  hold?: Promise<void>;
}

/** Starts a relay on a free 127.0.0.1 port forwarding to `targetHost:targetPort`. */
export function startRelay(targetPort: number, targetHost = "127.0.0.1"): Relay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const links = new Set<Link>();
  const tasks = new Set<Promise<void>>();
  let paused = false;
  const stalled = { to: false, from: false };
  let gate: { promise: Promise<void>; resolve: () => void } | undefined;
  let hole = false;
  let refusing = false;
  let latency = 0;
  let tamper: Tamper | null = null;
  let accepted = 0;
  let closing: Promise<void> | undefined;

  const track = (p: Promise<void>) => {
    tasks.add(p);
    p.finally(() => tasks.delete(p));
  };

  const closeLink = (l: Link) => {
    if (l.closed) return;
    l.closed = true;
    links.delete(l);
    for (const c of [l.client, l.upstream]) {
      try {
        c?.close();
      } catch {
        // already closed
      }
    }
  };

  async function forward(
    l: Link,
    from: Deno.TcpConn,
    to: () => Deno.TcpConn | undefined,
    toTarget: boolean,
  ) {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (!l.closed) {
        while ((toTarget ? stalled.to : stalled.from) && !l.closed) await gate!.promise;
        const n = await from.read(buf);
        if (n === null) break;
        while (paused && !l.closed) await gate!.promise;
        while (toTarget && l.hold !== undefined) await l.hold;
        if (latency > 0) await new Promise((r) => setTimeout(r, latency));
        const dst = to();
        if (hole || !dst || l.closed) continue;
        const chunk = tamper?.(buf.subarray(0, n), toTarget) ?? buf.subarray(0, n);
        let off = 0;
        while (off < chunk.length) off += await dst.write(chunk.subarray(off));
      }
    } catch {
      // either side went away
    }
    closeLink(l);
  }

  async function handle(client: Deno.TcpConn) {
    accepted++;
    if (refusing) {
      client.close();
      return;
    }
    client.setNoDelay(true);
    const l: Link = { client, upstream: undefined, closed: false };
    links.add(l);
    if (!hole) {
      try {
        l.upstream = await Deno.connect({ hostname: targetHost, port: targetPort });
        l.upstream.setNoDelay(true);
      } catch {
        closeLink(l); // target down: the client sees a closed connection
        return;
      }
      if (l.closed) {
        l.upstream.close();
        return;
      }
      const up = l.upstream;
      track(forward(l, up, () => l.client, false));
    }
    await forward(l, client, () => l.upstream, true);
  }

  track((async () => {
    try {
      for await (const c of listener) track(handle(c));
    } catch {
      // listener closed
    }
  })());

  const relay: Relay = {
    port,
    pause() {
      if (paused) return;
      if (!stalled.to && !stalled.from) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        gate = { promise, resolve };
      }
      paused = true;
    },
    resume() {
      if (!paused && !stalled.to && !stalled.from) return;
      paused = false;
      stalled.to = stalled.from = false;
      gate!.resolve();
    },
    stall(toTarget: boolean) {
      if (!paused && !stalled.to && !stalled.from) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        gate = { promise, resolve };
      }
      if (toTarget) stalled.to = true;
      else stalled.from = true;
    },
    drop() {
      for (const l of [...links]) closeLink(l);
    },
    holdLinks() {
      let release!: () => void;
      const hold = new Promise<void>((r) => release = r);
      const held = [...links];
      for (const l of held) l.hold = hold;
      return () => {
        for (const l of held) if (l.hold === hold) l.hold = undefined;
        release();
      };
    },
    blackhole(on: boolean) {
      hole = on;
    },
    refuse(on: boolean) {
      refusing = on;
    },
    setLatency(ms: number) {
      latency = ms;
    },
    tamper(fn: Tamper | null) {
      tamper = fn;
    },
    connections: () => links.size,
    accepted: () => accepted,
    close() {
      closing ??= (async () => {
        try {
          listener.close();
        } catch {
          // closed
        }
        relay.resume();
        relay.drop();
        while (tasks.size) await Promise.allSettled([...tasks]);
      })();
      return closing;
    },
  };
  return relay;
}
