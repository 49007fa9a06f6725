/**
 * Binding a server's listeners: TCP on every address (memcached's -l), or
 * one unix-domain socket. Apart from the server so that `serve` can bind
 * before it loads the server: a spawned server's port then answers within
 * Deno's own start-up (client test kits talk to a spawned memcached 0.1 s
 * later), and connections wait in the backlog until it serves them.
 * @module
 */

import { closeQuietly } from "./conn.ts";
import { listenTcp, type TlsMaterial } from "./tls.ts";
import { listenUnix } from "./unix.ts";

/** One TCP listener (an entry of memcached's -l). */
export interface ListenAddress {
  /** Address to bind. */
  hostname: string;
  /** Its own port (`-l host:port`); absent: the server's `port`. 0 picks one. */
  port?: number;
  /** memcached's `notls:`: plain even when the server speaks TLS. */
  plain?: boolean;
  /**
   * No -l: every interface, IPv6 too where the host has it (memcached binds
   * 0.0.0.0 and [::]; one dual-stack `::` socket here), else `hostname`.
   */
  dual?: boolean;
}

/** What {@linkcode bindListeners} binds. */
export interface ListenPlan {
  /** TCP addresses, in order (ignored with `unixSocket`). */
  listen: ListenAddress[];
  /** The port of the addresses without their own; 0: the first of them picks one for all. */
  port: number;
  /** Share the port with other threads (SO_REUSEPORT). */
  reusePort?: boolean;
  /** The listeners but the `plain` ones speak TLS with this certificate. */
  tls?: TlsMaterial;
  /** memcached -s: this unix-domain socket instead of TCP. */
  unixSocket?: string;
  /** memcached -a: the socket file's permission bits. */
  unixMask?: number;
}

/** Bound listeners: the TCP ones in `listen` order, or the unix-domain one. */
export interface BoundListeners {
  /** One per TCP address. */
  tcp: Deno.Listener[];
  /** The unix-domain socket (then `tcp` is empty). */
  unix?: Deno.UnixListener;
  /** memcached -U: UDP on the TCP addresses ({@linkcode bindDatagrams}). */
  udp?: Deno.DatagramConn[];
}

/** memcached -a default: the socket file's permission bits. */
export const DEFAULT_UNIX_MASK = 0o700;

/** Bind everything `plan` lists; throws (AddrInUse...) with nothing left bound. */
export function bindListeners(plan: ListenPlan): BoundListeners {
  if (plan.unixSocket !== undefined) {
    return { tcp: [], unix: listenUnix(plan.unixSocket, plan.unixMask ?? DEFAULT_UNIX_MASK) };
  }
  const tcp: Deno.Listener[] = [];
  const reusePort = plan.reusePort ?? false;
  let shared = plan.port;
  try {
    for (const l of plan.listen) {
      const listener = bind(l, l.port ?? shared, reusePort, l.plain ? undefined : plan.tls);
      // -p 0: the listeners without a port of their own share the one picked first.
      if (l.port === undefined && shared === 0) shared = (listener.addr as Deno.NetAddr).port;
      tcp.push(listener);
    }
  } catch (err) {
    for (const l of tcp) closeQuietly(l);
    throw err;
  }
  return { tcp };
}

/**
 * memcached -U: UDP on every TCP address, on `port` or the address's own
 * (0 picks one for all); throws with nothing left bound.
 */
export function bindDatagrams(listen: ListenAddress[], port: number): Deno.DatagramConn[] {
  const out: Deno.DatagramConn[] = [];
  let shared = port;
  try {
    for (const l of listen) {
      const hostname = l.dual && dualStack() ? "::" : l.hostname;
      const socket = Deno.listenDatagram({ transport: "udp", hostname, port: l.port ?? shared });
      if (l.port === undefined && shared === 0) shared = (socket.addr as Deno.NetAddr).port;
      out.push(socket);
    }
  } catch (err) {
    for (const s of out) closeQuietly(s);
    throw err;
  }
  return out;
}

/** Close everything in `bound`. */
export function closeListeners(bound: BoundListeners): void {
  for (const l of [...bound.tcp, bound.unix, ...bound.udp ?? []]) if (l) closeQuietly(l);
}

/**
 * Bind `l` on `port`; a {@linkcode ListenAddress.dual} entry binds `::`
 * where that one socket takes IPv4 too, else its IPv4 hostname. A port in
 * use fails either way.
 */
function bind(
  l: ListenAddress,
  port: number,
  reusePort: boolean,
  tls: TlsMaterial | undefined,
): Deno.Listener {
  if (l.dual && dualStack()) {
    try {
      return listenTcp({ hostname: "::", port, reusePort, tls });
    } catch (err) {
      if (err instanceof Deno.errors.AddrInUse) throw err;
    }
  }
  return listenTcp({ hostname: l.hostname, port, reusePort, tls });
}

let dualStackHost: boolean | undefined;

/**
 * Whether a `::` socket also takes IPv4 here (Linux and macOS by default;
 * not Windows, nor Linux with bindv6only): where it does, `0.0.0.0` on the
 * same port is taken. Probed once, on a port the system picks.
 */
export function dualStack(): boolean {
  if (dualStackHost !== undefined) return dualStackHost;
  dualStackHost = false;
  let v6: Deno.Listener | undefined;
  try {
    v6 = Deno.listen({ hostname: "::", port: 0 });
    const port = (v6.addr as Deno.NetAddr).port;
    Deno.listen({ hostname: "0.0.0.0", port }).close();
  } catch (err) {
    dualStackHost = v6 !== undefined && err instanceof Deno.errors.AddrInUse;
  } finally {
    v6?.close();
  }
  return dualStackHost;
}
