/**
 * How a node finds its peer (repcached's pairing): dial the peer's
 * replication address first, listen there when nothing answers, accept
 * with bounded handshake slots, and keep trying in the background while no
 * link is up. What an authenticated connection becomes is the owner's
 * business ({@linkcode PairingHost.adopt}).
 * @module
 */

import {
  closeQuietly,
  errorText,
  type HostPort,
  isTlsConn,
  listenTcp,
  type TlsMaterial,
} from "../transport/mod.ts";
import { log } from "../log.ts";
import { UsageError } from "../errors.ts";
import {
  handshake,
  type HandshakeContext,
  type HandshakeFailure,
  type HandshakeResult,
  type StreamState,
} from "./handshake.ts";
import type { Link } from "./link.ts";
import type { LinkKeys } from "./seal.ts";
import { HandshakeSlots } from "./slots.ts";
import type { ReplicationStats } from "./stats.ts";

/** The part of the replication options pairing uses. */
export interface PairingOptions {
  /** Peer's replication address. */
  peer: HostPort;
  /** Where to listen when the peer does not answer. */
  listen: HostPort;
  /** Shared secret. */
  secret?: string;
  /** Silence (ms) after which the peer counts as dead; also the handshake's bound. */
  timeoutMs: number;
  /**
   * TLS on the link (--repl-tls-*): this node's certificate for when it
   * listens, and the CA (PEM; Deno's roots when absent) that the listening
   * peer's certificate must chain to when it dials. The listener cannot ask
   * for a client certificate (Deno's TLS has none): the secret authenticates.
   */
  tls?: TlsMaterial & { ca?: string };
}

/** What pairing needs from the node it pairs. */
export interface PairingHost {
  /** This process's node id. */
  readonly nodeId: string;
  /** Counters (auth failures, bad peers). */
  readonly stats: ReplicationStats;
  /** The current link, if any. */
  link(): Link | null;
  /** This node's stream state, sent in the handshake. */
  streamState(): StreamState;
  /** Make an authenticated connection the link; false when an existing one is kept. */
  adopt(
    conn: Deno.Conn,
    role: "connector" | "acceptor",
    peerNode: string,
    peer: StreamState,
    rest: Uint8Array,
    keys: LinkKeys | null,
  ): boolean;
}

/** Pairing state while no link is up, as shown in stats. */
export type PairingState = "down" | "connecting" | "listening";

/** Outcome of one attempt to dial the peer. */
type DialResult = "linked" | "unreachable" | "tls" | HandshakeFailure;

/** An incoming (so far unauthenticated) handshake must end within this (or --repl-timeout). */
const ACCEPT_DEADLINE_MS = 1000;

/** The pairing loop of one node. */
export class Pairing {
  #host: PairingHost;
  #options: PairingOptions;
  #listener: Deno.Listener | null = null;
  /** The last failed TLS handshake as dialer (for the startup message). */
  #tlsError = "";
  #stopped = false;
  #selfAddress = false;
  #signal: (() => void) | null = null;
  #signalled: Promise<void> | null = null;
  #loopDone: Promise<void> = Promise.resolve();
  #state: PairingState = "down";
  #slots = new HandshakeSlots();

  /** Pair `host` by `options`; call {@linkcode start} next. */
  constructor(host: PairingHost, options: PairingOptions) {
    this.#host = host;
    this.#options = options;
  }

  /** Pairing state (meaningful while no link is up). */
  get state(): PairingState {
    return this.#state;
  }

  /** The peer's address as "host:port" ("[v6]:port"). */
  get peerText(): string {
    const p = this.#options.peer;
    return p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
  }

  /**
   * First pairing attempt, then the background loop. Throws what is a
   * configuration error (wrong secret, not a memrep port, cannot listen).
   */
  async start(): Promise<void> {
    const peer = this.peerText;
    const first = await this.#dial(true);
    if (first === "auth") {
      throw new UsageError(
        `replication: the peer at ${peer} refused the handshake (secret mismatch); check --repl-secret on both nodes`,
      );
    }
    if (first === "tls") {
      throw new UsageError(
        `replication: TLS with the peer at ${peer} failed: ${this.#tlsError}; check --repl-tls-ca here and --repl-tls-cert there`,
      );
    }
    if (first === "not-memrep") {
      throw new UsageError(
        `replication: ${peer} is in use by something that is not a memrep replication port`,
      );
    }
    if (first !== "linked") {
      const listened = this.#listen(true);
      if (!listened && first === "timeout") {
        log.warn(
          `replication: ${peer} accepts connections but does not answer (a hung peer, or another program); retrying`,
        );
      }
      if (!listened && first === "unreachable") {
        // Nothing answers, yet the port is taken: retry once in case the peer was just starting.
        await delay(150);
        const again = await this.#dial(false);
        if (again === "unreachable" && !this.#listen(true)) {
          const l = this.#options.listen;
          throw new UsageError(
            `replication: cannot listen on ${l.host}:${l.port}: address in use (and nothing answers there)`,
          );
        }
      }
    }
    this.#loopDone = this.#pairing();
  }

  /** Stop pairing: no more dials or accepts; the listener closes. */
  stop(): void {
    this.#stopped = true;
    this.closeListener();
  }

  /** After {@linkcode stop}: wake the loop and give it a moment to end. */
  async ended(): Promise<void> {
    this.poke();
    // A dial in progress may take up to the timeout to give up: do not wait for it.
    await Promise.race([this.#loopDone, delay(100)]);
  }

  /** The current link closed: pairing starts over from "down". */
  linkLost(): void {
    this.#state = "down";
  }

  /** Close the listener, if open (a link is up, or stopping). */
  closeListener(): void {
    const l = this.#listener;
    if (!l) return;
    this.#listener = null;
    try {
      l.close();
    } catch { /* closed */ }
  }

  /** Wake the loop (link up or down, stop). */
  poke(): void {
    const s = this.#signal;
    this.#signal = null;
    this.#signalled = null;
    s?.();
  }

  /** The pairing loop, restarted after a bug rather than leaving the node unpaired for good. */
  async #pairing(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#loop();
      } catch (err) {
        log.warn(`replication: pairing failed: ${errorText(err)}; retrying`);
        await delay(500);
      }
    }
  }

  async #loop(): Promise<void> {
    let announce = false;
    while (!this.#stopped) {
      const link = this.#host.link();
      if (link) {
        await Promise.race([link.done, this.#wait()]);
        announce = true;
        continue;
      }
      // Listening on the peer's own address (one host, one port): only the peer can call.
      const ownAddress = this.#listener !== null && (this.#selfAddress || this.#samePort());
      if (!ownAddress) {
        const r = await this.#dial(announce);
        if (r === "linked" || this.#stopped) continue;
        if (r === "self") this.#selfAddress = true;
        announce = false;
        if (this.#host.link()) continue; // the peer called us meanwhile
        this.#listen(false);
      }
      const wait = this.#listener && (this.#selfAddress || this.#samePort())
        ? undefined
        : this.#listener
        ? 500 + Math.random() * 500
        : 100 + Math.random() * 200;
      await Promise.race([this.#wait(), wait === undefined ? new Promise(() => {}) : delay(wait)]);
    }
  }

  /** One dial: connect, handshake, link. */
  async #dial(announce: boolean): Promise<DialResult> {
    const o = this.#options;
    const peer = this.peerText;
    if (announce) log.info(`replication: connect (peer=${peer})`);
    else log.debug(`replication: connect (peer=${peer})`);
    this.#state = "connecting";
    let tlsError = "";
    const conn = await connectWithin(o.peer, o.timeoutMs, o.tls, (err) => {
      this.#host.stats.tlsFailures++;
      tlsError = errorText(err);
      this.#tlsError = tlsError;
      const say = announce ? log.warn : log.debug; // once per series of attempts
      say(`replication: TLS handshake with ${peer} failed: ${tlsError}`);
    });
    if (!conn) {
      this.#state = this.#listener ? "listening" : "down";
      return tlsError ? "tls" : "unreachable";
    }
    const r = await handshake(conn, "connect", this.#context());
    if (!r.ok) {
      closeQuietly(conn);
      this.#state = this.#listener ? "listening" : "down";
      this.#failed(peer, r.reason, r.detail);
      return r.reason;
    }
    return this.#host.adopt(conn, "connector", r.peerNode, r.peer, r.rest, r.keys)
      ? "linked"
      : "refused";
  }

  #failed(peer: string, reason: HandshakeFailure, detail: string): void {
    handshakeFailed(this.#host.stats, peer, reason, detail);
  }

  /** Open the listener if not open; false when the address is taken. */
  #listen(startup: boolean): boolean {
    if (this.#listener) return true;
    const l = this.#options.listen;
    try {
      const tls = this.#options.tls;
      this.#listener = listenTcp({ hostname: l.host, port: l.port, reusePort: false, tls });
    } catch (err) {
      if (err instanceof Deno.errors.AddrInUse) {
        log.debug(`replication: ${l.host}:${l.port} is in use; will connect again`);
        return false;
      }
      const msg = `replication: cannot listen on ${l.host}:${l.port}: ${errorText(err)}`;
      if (startup) throw new UsageError(msg);
      log.warn(msg);
      return false;
    }
    this.#state = "listening";
    log.info("replication: listen");
    this.#acceptLoop(this.#listener!);
    return true;
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) this.#accepted(conn);
    } catch {
      // listener closed
    }
  }

  async #accepted(conn: Deno.Conn): Promise<void> {
    const r = await acceptHandshake(conn, this.#slots, this.#context(), this.#host.stats);
    if (r === null) return;
    try {
      this.#host.adopt(conn, "acceptor", r.peerNode, r.peer, r.rest, r.keys);
    } catch (err) {
      closeQuietly(conn);
      log.debug(`replication: accepted connection failed: ${errorText(err)}`);
    }
  }

  #context(): HandshakeContext {
    const host = this.#host;
    return {
      nodeId: host.nodeId,
      secret: this.#options.secret,
      timeoutMs: this.#options.timeoutMs,
      state: () => host.streamState(),
    };
  }

  /** The peer's address is the one we listen on (one host, one port). */
  #samePort(): boolean {
    const o = this.#options;
    if (o.peer.port !== o.listen.port) return false;
    const h = o.peer.host, l = o.listen.host;
    if (h === l) return true;
    const loopback = h === "localhost" || h.startsWith("127.") || h === "::1";
    // A wildcard listener covers the loopback addresses; anything else is caught by node ids.
    return (loopback && (l === "0.0.0.0" || l === "::")) ||
      (h === "localhost" && (l === "127.0.0.1" || l === "::1"));
  }

  /** Resolves at the next {@linkcode poke}. */
  #wait(): Promise<void> {
    this.#signalled ??= new Promise((resolve) => (this.#signal = resolve));
    return this.#signalled;
  }
}

/** Count and log a failed handshake with `peer` ("host:port") as pairing does. */
export function handshakeFailed(
  stats: ReplicationStats,
  peer: string,
  reason: HandshakeFailure,
  detail: string,
): void {
  if (reason === "auth") {
    stats.authFailures++;
    log.warn(`replication: refused (peer=${peer}): authentication failed: ${detail}`);
  } else if (reason === "not-memrep") {
    stats.badPeers++;
    log.info(`replication: refused (peer=${peer}): not a memrep peer: ${detail}`);
  } else if (reason !== "self") {
    log.debug(`replication: handshake with ${peer} failed: ${reason}: ${detail}`);
  }
}

/** What an accepted connection's successful handshake gives. */
export type Accepted = Extract<HandshakeResult, { ok: true }>;

/**
 * The accepting side of a handshake on `conn`: in one of `slots` (idle
 * connections cannot hold the port: a short deadline, and a newcomer always
 * gets a slot) and within {@linkcode ACCEPT_DEADLINE_MS}. The result, or
 * null once `conn` is closed (a refused or failed handshake, logged and
 * counted in `stats`).
 */
export async function acceptHandshake(
  conn: Deno.Conn,
  slots: HandshakeSlots,
  ctx: HandshakeContext,
  stats: ReplicationStats,
): Promise<Accepted | null> {
  const addr = conn.remoteAddr as Deno.NetAddr;
  const from = `${addr.hostname}:${addr.port}`;
  log.info("replication: accept");
  const slot = slots.take(conn, addr.hostname, from);
  try {
    if (isTlsConn(conn)) {
      await withDeadline(conn.handshake(), ACCEPT_DEADLINE_MS).catch((err) => {
        stats.tlsFailures++;
        throw err;
      });
    } else (conn as Deno.TcpConn).setNoDelay(true);
    ctx.timeoutMs = Math.min(ACCEPT_DEADLINE_MS, ctx.timeoutMs);
    ctx.greeted = () => (slot.greeted = true);
    const r = await handshake(conn, "accept", ctx).finally(() => slots.release(slot));
    if (r.ok) return r;
    closeQuietly(conn);
    handshakeFailed(stats, from, r.reason, r.detail);
  } catch (err) {
    closeQuietly(conn);
    log.debug(`replication: accepted connection failed: ${errorText(err)}`);
  }
  return null;
}

/**
 * Connect (with `tls`: and complete the TLS handshake, trusting `tls.ca`)
 * within `ms`, or null when refused, unreachable, too slow or, reported to
 * `tlsFailed`, when the TLS handshake fails.
 */
export async function connectWithin(
  hp: HostPort,
  ms: number,
  tls: { ca?: string } | undefined,
  tlsFailed: (err: unknown) => void,
): Promise<Deno.Conn | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const attempt = tls
    ? Deno.connectTls({
      hostname: hp.host,
      port: hp.port,
      caCerts: tls.ca === undefined ? undefined : [tls.ca],
    })
    : Deno.connect({ hostname: hp.host, port: hp.port });
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    const conn = await Promise.race([attempt, late]);
    if (conn === null) {
      attempt.then(closeQuietly, () => {});
      return null;
    }
    if (!isTlsConn(conn)) {
      conn.setNoDelay(true);
      return conn;
    }
    const shaken = await Promise.race([
      conn.handshake().then(() => true, (err) => {
        tlsFailed(err);
        return false;
      }),
      late.then(() => false),
    ]);
    if (!shaken) closeQuietly(conn);
    return shaken ? conn : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/** `p`, or a rejection once `ms` passed. */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error(`no TLS handshake within ${ms} ms`)), ms)
  );
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
