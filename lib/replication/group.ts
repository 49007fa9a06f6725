/**
 * Replica groups (`--replicate a:p,b:p,c:p`): every member is read-write
 * and holds everything.
 *
 * Topology: a full mesh, one {@linkcode Link} per pair of members, each the
 * pair's link (stream from the node's one backlog, resume, chunked full
 * copy, heartbeats). The member listed first of two dials the other; each
 * listens on its own address. A node's stream carries its own changes and,
 * in groups of three or more, every change it learnt from a peer's stream
 * that was news to it (merge.ts `fresh`): a change therefore reaches every
 * member that some path of live links reaches, also when its writer cannot
 * reach them (A-B cut, C passes A's writes to B and B's to A) or died
 * before it reached all of them (kill -9 with writes in flight). Echoes are
 * not news and stop at once. A passed-on change crosses a link only when
 * the member at the other end lacks it (relay.ts): each member reports to
 * each peer (HAVE) how far it holds every other member's stream and whether
 * it is linked to that member; backlog.ts keeps passed-on runs with where
 * they lie in their origin's stream, and a link sends a SKIP of what its
 * peer holds (its own changes, and what it reported). While the peer is
 * linked to the origin, a run waits briefly for that report. In a healthy
 * mesh each change thus crosses each link once; only what a member itself
 * reported is ever left out, so no relay's guess can lose a change.
 *
 * Joining: a new or restarted member takes one full copy (chunked,
 * flow-controlled, resumable) from the first peer it links with, and links
 * with the others only once that copy is complete (until then it answers
 * their handshakes `ERR busy`, and they try again). The copy ends with the
 * sender's KNOWN frames: how far it had applied each other member's stream
 * when the copy began, so the copy holds all of that. The joiner takes those
 * positions as its own and resumes each other member's stream from there,
 * out of that member's backlog (its tail); only a member whose position the
 * sender did not have, or whose backlog no longer reaches back to it, sends
 * a full copy too. Changes the others make meanwhile reach the joiner
 * through the copy's sender, which forwards them. A copy cut short lifts the
 * wait: the next link takes over. A member back within a peer's backlog
 * resumes from it (also a warm-restarted one: resume.ts saves a position
 * per peer).
 *
 * Full copies in a group of three or more neither sweep (drop the
 * receiver's unmentioned items up to the agreed version) nor refuse copied
 * items below the agreed version: the agreed version says what one peer
 * had of our stream, not what the receiver learnt from third members that
 * the sender has not seen yet, and with forwarded changes a stream's
 * versions are not ordered. A copy there only adds and updates by version,
 * so it can never delete a third member's write; the price is that a
 * delete beyond the tombstone limit, made during a partition longer than
 * the backlog, can come back. Pairs (and groups of two) keep the exact rule.
 * @module
 */

import { Writer } from "../protocol/mod.ts";
import { statLine } from "../server/mod.ts";
import { closeQuietly, errorText, type HostPort, listenTcp } from "../transport/mod.ts";
import { log } from "../log.ts";
import { UsageError } from "../errors.ts";
import { handshake, type HandshakeContext, randomHex, type StreamState } from "./handshake.ts";
import {
  acceptHandshake,
  connectWithin,
  delay,
  handshakeFailed,
  type PairingOptions,
} from "./pairing.ts";
import type { Peer } from "./peer.ts";
import { HandshakeSlots } from "./slots.ts";
import type { ReplicationStats } from "./stats.ts";

/** A group member's node id: random, then `.` and its index in the member list. */
export function groupNodeId(self: number): string {
  return `${randomHex(8)}.${self}`;
}

/** The member index a group node id names, or -1. */
export function memberOf(nodeId: string, members: number): number {
  const m = /^[0-9a-f]{16}\.(\d{1,3})$/.exec(nodeId);
  if (m === null) return -1;
  const i = Number(m[1]);
  return i < members ? i : -1;
}

/** What the group's pairing needs from its node. */
export interface GroupHost {
  /** This process's node id. */
  readonly nodeId: string;
  /** Counters (auth failures, bad peers). */
  readonly stats: ReplicationStats;
  /** The other members. */
  readonly peers: Peer[];
}

/** The part of the replication options the group's pairing uses. */
export interface GroupOptions {
  /** Shared secret. */
  secret?: string;
  /** Silence (ms) after which a peer counts as dead; also the handshake's bound. */
  timeoutMs: number;
  /** TLS on the links. */
  tls?: PairingOptions["tls"];
  /** --repl-sync mode, for stats. */
  sync: boolean;
  /** "all" or "quorum". */
  syncMode?: string;
  /** This member's replication address to listen on (its entry, or --repl-listen). */
  listen: HostPort;
}

/** Listening on this member's address and dialling the members listed after it. */
export class GroupPairing {
  #host: GroupHost;
  #options: GroupOptions;
  #members: HostPort[];
  #self: number;
  #listener: Deno.Listener | null = null;
  #slots = new HandshakeSlots();
  #stopped = false;
  #dialling = new Set<number>();
  #signal: (() => void) | null = null;
  #signalled: Promise<void> | null = null;
  #loops: Promise<void>[] = [];
  /** Three or more members: one full copy when joining, the others resumed (see Joining). */
  #flood: boolean;
  /** While joining: the peer a full copy is being taken from, since when (null: none). */
  #claim: Claim | null = null;

  /** The group of `members`, this node being `members[self]`. */
  constructor(
    host: GroupHost,
    options: GroupOptions,
    group: { members: HostPort[]; self: number },
  ) {
    this.#host = host;
    this.#options = options;
    this.#members = group.members;
    this.#self = group.self;
    this.#flood = group.members.length >= 3;
  }

  /** Members in the group, this node included. */
  get size(): number {
    return this.#members.length;
  }

  /** This node's index in the member list. */
  get self(): number {
    return this.#self;
  }

  /** The sync mode shown in stats. */
  get syncMode(): string {
    return this.#options.sync ? this.#options.syncMode ?? "all" : "off";
  }

  /**
   * Listen, then a first dial of every member listed after this one. Throws
   * what is a configuration error (cannot listen, wrong secret, not memrep).
   */
  async start(): Promise<void> {
    const me = this.#options.listen;
    try {
      this.#listener = listenTcp({
        hostname: me.host,
        port: me.port,
        reusePort: false,
        tls: this.#options.tls,
      });
    } catch (err) {
      throw new UsageError(`replication: cannot listen on ${text(me)}: ${errorText(err)}`);
    }
    log.info("replication: listen");
    this.#acceptLoop(this.#listener);
    const firsts = await Promise.all(this.#dialled().map((p) => this.#dial(p, true)));
    for (const [i, r] of firsts.entries()) {
      const peer = this.#dialled()[i].address;
      if (r === "auth") {
        throw new UsageError(
          `replication: the peer at ${peer} refused the handshake (secret mismatch); check --repl-secret on every member`,
        );
      }
      if (r === "not-memrep") {
        throw new UsageError(
          `replication: ${peer} is in use by something that is not a memrep replication port`,
        );
      }
    }
    this.#loops = this.#dialled().map((p) => this.#loop(p));
  }

  /** Stop: no more dials or accepts; the listener closes. */
  stop(): void {
    this.#stopped = true;
    const l = this.#listener;
    this.#listener = null;
    try {
      l?.close();
    } catch { /* closed */ }
  }

  /** After {@linkcode stop}: wake the loops and give them a moment to end. */
  async ended(): Promise<void> {
    this.poke();
    await Promise.race([Promise.all(this.#loops), delay(100)]);
  }

  /** A full copy from `from` completed (its KNOWN positions are taken): link with the others. */
  copyDone(from: Peer): void {
    if (this.#claim?.peer === from) this.#claim = null;
    this.poke();
  }

  /** `peer`'s current link closed: a copy it was sending no longer holds the others back. */
  linkEnded(peer: Peer): void {
    if (this.#claim?.peer === peer) this.#claim = null;
  }

  /** A handshake that claimed the copy did not end in a link: the others need not wait for it. */
  #unclaim(claim: { made: Claim | null }): void {
    const c = claim.made;
    if (c === null || this.#claim !== c) return;
    const link = c.peer.link;
    if (link === null || link.closed) {
      this.#claim = null;
      this.poke();
    }
  }

  /** Wake the dial loops (a link closed). */
  poke(): void {
    const s = this.#signal;
    this.#signal = null;
    this.#signalled = null;
    s?.();
  }

  /** A peer's state without a link: "connecting" while dialled, else "down". */
  peerState(peer: Peer): string {
    return peer.link ? peer.link.phase : this.#dialling.has(peer.index) ? "connecting" : "down";
  }

  /** The group's `repl_link`: "up" (every peer), "copying", "partial" (some) or "down". */
  linkState(): string {
    const peers = this.#host.peers;
    const up = peers.filter((p) => p.link !== null);
    if (up.some((p) => p.link!.phase === "copying")) return "copying";
    if (up.length === peers.length) return "up";
    return up.length > 0 ? "partial" : "down";
  }

  /** The peers this node dials: those listed after it. */
  #dialled(): Peer[] {
    return this.#host.peers.filter((p) => p.index > this.#self);
  }

  async #loop(peer: Peer): Promise<void> {
    while (!this.#stopped) {
      try {
        const link = peer.link;
        if (link) {
          await Promise.race([link.done, this.#wait()]);
          continue;
        }
        if (this.#deferred(peer)) {
          await Promise.race([this.#wait(), delay(250)]);
          continue;
        }
        const r = await this.#dial(peer, false);
        if (r === "linked") continue;
        // A member in the middle of its first copy answers busy for a while: ask less often.
        const pause = r === "busy" ? 500 + Math.random() * 500 : 150 + Math.random() * 250;
        await Promise.race([this.#wait(), delay(pause)]);
      } catch (err) {
        log.warn(`replication: pairing with ${peer.address} failed: ${errorText(err)}; retrying`);
        await delay(500);
      }
    }
  }

  /** One dial of `peer`: connect, handshake, link. */
  async #dial(peer: Peer, announce: boolean): Promise<string> {
    if (this.#stopped) return "stopped";
    const o = this.#options;
    const address = this.#members[peer.index];
    if (announce) log.info(`replication: connect (peer=${peer.address})`);
    else log.debug(`replication: connect (peer=${peer.address})`);
    this.#dialling.add(peer.index);
    const claim: { made: Claim | null } = { made: null };
    try {
      const conn = await connectWithin(address, o.timeoutMs, o.tls, (err) => {
        this.#host.stats.tlsFailures++;
        (announce ? log.warn : log.debug)(
          `replication: TLS handshake with ${peer.address} failed: ${errorText(err)}`,
        );
      });
      if (!conn) return "unreachable";
      const r = await handshake(conn, "connect", this.#context(claim));
      if (!r.ok) {
        closeQuietly(conn);
        handshakeFailed(this.#host.stats, peer.address, r.reason, r.detail);
        return r.reason;
      }
      if (memberOf(r.peerNode, this.#members.length) !== peer.index) {
        closeQuietly(conn);
        this.#wrongMember(peer.address, r.peerNode);
        return "not-memrep";
      }
      return peer.adopt(conn, "connector", r.peerNode, r.peer, r.rest, r.keys)
        ? "linked"
        : "refused";
    } finally {
      this.#dialling.delete(peer.index);
      this.#unclaim(claim);
    }
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) this.#accepted(conn);
    } catch {
      // listener closed
    }
  }

  async #accepted(conn: Deno.Conn): Promise<void> {
    const claim: { made: Claim | null } = { made: null };
    const r = await acceptHandshake(conn, this.#slots, this.#context(claim), this.#host.stats);
    if (r === null) {
      this.#unclaim(claim);
      return;
    }
    try {
      const peer = this.#peerOf(r.peerNode);
      if (peer === undefined || this.#stopped) {
        closeQuietly(conn);
        const addr = conn.remoteAddr as Deno.NetAddr;
        if (!this.#stopped) this.#wrongMember(`${addr.hostname}:${addr.port}`, r.peerNode);
        return;
      }
      peer.adopt(conn, "acceptor", r.peerNode, r.peer, r.rest, r.keys);
    } catch (err) {
      closeQuietly(conn);
      log.debug(`replication: accepted connection failed: ${errorText(err)}`);
    } finally {
      this.#unclaim(claim);
    }
  }

  #wrongMember(from: string, nodeId: string): void {
    this.#host.stats.badPeers++;
    log.info(
      `replication: refused (peer=${from}): node ${nodeId} is not another member of this group (check that every member has the same --replicate list)`,
    );
  }

  #peerOf(nodeId: string): Peer | undefined {
    const i = memberOf(nodeId, this.#members.length);
    return this.#host.peers.find((p) => p.index === i);
  }

  /** A handshake's context; `claim.made`: the copy claim its state made, if any. */
  #context(claim: { made: Claim | null }): HandshakeContext {
    return {
      nodeId: this.#host.nodeId,
      secret: this.#options.secret,
      timeoutMs: this.#options.timeoutMs,
      state: (peerNode) => {
        const peer = this.#peerOf(peerNode);
        if (peer === undefined) return NO_STATE;
        if (this.#deferred(peer)) return null;
        if (this.#flood && peer.heldStream === null) {
          // This link brings a full copy: the others wait for its KNOWN positions.
          this.#claim = claim.made = { peer, at: performance.now() };
        }
        return peer.streamState();
      },
    };
  }

  /**
   * Whether linking with `peer` waits: this node knows nothing of its
   * stream, and a full copy from another peer is under way (or its
   * handshake is) whose KNOWN positions may spare the peer a second copy.
   */
  #deferred(peer: Peer): boolean {
    const c = this.#claim;
    if (!this.#flood || c === null || c.peer === peer || peer.peerStream !== null) return false;
    const link = c.peer.link;
    if (link && !link.closed) return true;
    // No link yet: its handshake is going on (a failed one unclaims), for at most a timeout.
    if (performance.now() - c.at < this.#options.timeoutMs) return true;
    this.#claim = null;
    return false;
  }

  /** Resolves at the next {@linkcode poke}. */
  #wait(): Promise<void> {
    this.#signalled ??= new Promise((resolve) => (this.#signal = resolve));
    return this.#signalled;
  }
}

/** A joining member's full copy from `peer`, claimed by a handshake at `at` (performance.now). */
interface Claim {
  peer: Peer;
  at: number;
}

/** The state told to a node that is no member (its connection is closed right after). */
const NO_STATE: StreamState = {
  streamId: "-",
  streamEnd: 0,
  knownStream: "-",
  knownOffset: 0,
  items: 0,
  hlc: 0,
};

/**
 * The group's `stats` lines after the pair's (which sum or take the worst
 * of the peers): size, members up, and per peer `repl_peer_<i>_*`.
 */
export function writeGroupStats(
  out: Writer,
  group: GroupPairing,
  peers: Peer[],
  forwarded: number,
): void {
  statLine(out, "repl_group_size", group.size);
  statLine(out, "repl_group_self", group.self);
  statLine(out, "repl_group_up", 1 + peers.filter((p) => p.link !== null).length);
  statLine(out, "repl_sync_mode", group.syncMode);
  statLine(out, "repl_changes_forwarded", forwarded);
  for (const p of peers) {
    const pre = `repl_peer_${p.index}_`;
    const link = p.link;
    const s = p.stats;
    const lines: Array<[string, string | number]> = [
      ["addr", p.address],
      ["link", group.peerState(p)],
      ["role", link ? link.role : "none"],
      ["lag_ms", p.lagMs()],
      ["lag_bytes", p.lagBytes()],
      ["lag_p50_ms", p.lag.ackedLags.percentileMs(0.5)],
      ["lag_p99_ms", p.lag.ackedLags.percentileMs(0.99)],
      ["apply_lag_p50_ms", p.applyLags.percentileMs(0.5)],
      ["apply_lag_p99_ms", p.applyLags.percentileMs(0.99)],
      ["confirmed", p.confirmed],
      ["backlog_bytes", link ? Math.min(p.lagBytes(), p.backlog.used) : 0],
      ["copy_receiving", link?.receivingCopy || p.sweeping ? 1 : 0],
      ["copy_sending", link?.sendingCopy ? 1 : 0],
      ["full_copies_sent", s.fullCopiesSent],
      ["full_copies_received", s.fullCopiesReceived],
      ["items_copied_received", s.itemsCopiedReceived],
      ["partial_resyncs", s.partialResyncs],
      ["links", s.links],
      ["link_drops", s.linkDrops],
      ["changes_applied", s.changesApplied],
    ];
    for (const [name, value] of lines) statLine(out, pre + name, value);
  }
}

function text(p: HostPort): string {
  return p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}
