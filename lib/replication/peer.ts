/**
 * One peer of a node (the pair's one, or each other member of a group):
 * its current {@linkcode Link}, where its stream stands for us, the full
 * copies to and from it (copies.ts), what it confirmed of our stream and
 * the lag. A `Peer` is the link's {@linkcode LinkOwner}; what all peers
 * share (stream, clock, merge, store) comes from the {@linkcode PeerHost}.
 * @module
 */

import { closeQuietly } from "../transport/mod.ts";
import { log } from "../log.ts";
import type { Store } from "../store/mod.ts";
import type { Backlog } from "./backlog.ts";
import { FullCopies } from "./copies.ts";
import type { StreamState } from "./handshake.ts";
import { LagSamples, LagWindow } from "./lag.ts";
import { Link } from "./link.ts";
import type { LinkOwner } from "./link_owner.ts";
import type { HeldStream } from "./relay.ts";
import type { Merger } from "./merge.ts";
import type { LinkKeys } from "./seal.ts";
import type { IncomingCopy, KnownStream, OutgoingCopy } from "./snapshot.ts";
import { ReplicationStats } from "./stats.ts";
import type { HybridClock } from "./versions.ts";

/** What every peer of a node shares: the node's side (the replicator). */
export interface PeerHost {
  /** Id of this node's change stream. */
  readonly streamId: string;
  /** This process's node id. */
  readonly nodeId: string;
  /** Version clock. */
  readonly hlc: HybridClock;
  /** This node's recent changes. */
  readonly backlog: Backlog;
  /** Applies the peers' changes. */
  readonly merger: Merger;
  /** The store replicated. */
  readonly store: Store;
  /** The engine's clock. */
  readonly clock: { readonly processStartUnix: number };
  /** Silence after which a peer counts as dead (ms). */
  readonly timeoutMs: number;
  /** True once the node stops. */
  readonly stopped: boolean;
  /** A peer sent a version the clock does not accept. */
  rejectedVersion(version: number, what: string): void;
  /** Take the store lock. */
  lockStore(): void;
  /** Release the store lock. */
  unlockStore(): void;
  /** A peer's confirmed offset moved, or its link came or went. */
  peerChanged(peer: Peer, linkEnded: boolean): void;
  /** A new link to `peer` was adopted. */
  linked(peer: Peer): void;
  /** `peer`'s link closed (`current`: it was still the peer's link). */
  linkClosed(peer: Peer, current: boolean): void;
  /**
   * In a group: a change from peer `origin`'s stream `stream` (ending at
   * `streamEnd` there) taught us something; it goes on our stream.
   */
  forward(
    buf: Uint8Array,
    start: number,
    end: number,
    origin: number,
    stream: string,
    streamEnd: number,
  ): void;
  /** In a group: the streams of the peers other than `except` that this node holds, and how far. */
  knownStreams(except: Peer): HeldStream[];
  /** In a group: this node applied more of `peer`'s stream (the other links' HAVE moves). */
  heard(peer: Peer): void;
  /** In a group: a full copy from `from` completed, holding the streams of `known`. */
  copied(from: Peer, known: KnownStream[]): void;
  /** A new full copy to a peer begins. */
  copyBegun(): void;
}

/** One peer and its link. */
export class Peer implements LinkOwner<Link> {
  /** Index in the group's member list (0 for the pair's peer). */
  readonly index: number;
  /** The peer's replication address, as configured ("host:port"). */
  readonly address: string;
  /** The current link, if any. */
  link: Link | null = null;
  /** Where the peer's stream stands for us (null: never applied, or a copy was cut short). */
  peerStream: { id: string; offset: number } | null = null;
  /** This peer's counters (the node's `stats` sum them). */
  readonly stats: ReplicationStats = new ReplicationStats();
  /** Our stream offset the peer holds, everything before it included. */
  confirmed = 0;
  /** The lag of this peer behind our stream. */
  readonly lag: LagSamples = new LagSamples();
  /** How late the peer's latest changes were applied here (LinkOwner). */
  readonly applyLags: LagWindow = new LagWindow();
  /**
   * The next link sends a full copy whatever the peer knows of our stream
   * (a warm restart stopped in the middle of sending it one, see resume.ts).
   */
  copyNext = false;
  /** A warm restart restored a position in this peer's stream and no link has started since. */
  restored = false;
  /** The peer's stream and its end when the current link began (see {@linkcode caughtUp}). */
  #catchUp: { id: string; end: number } | null = null;
  #host: PeerHost;
  #copies: FullCopies;
  /** False in a group of 3+: a copy's sweep and floor cannot know what third nodes sent. */
  #exact: boolean;

  /**
   * Peer `index` at `address` of `host`. `flood` (a group of 3+): what its
   * stream teaches us goes on to the other peers, and full copies neither
   * sweep nor refuse (group.ts says why).
   */
  constructor(host: PeerHost, index: number, address: string, flood: boolean) {
    this.#host = host;
    this.index = index;
    this.address = address;
    this.#exact = !flood;
    this.#copies = new FullCopies({
      streamId: host.streamId,
      backlog: host.backlog,
      hlc: host.hlc,
      stats: this.stats,
      store: () => host.store,
      stopped: () => host.stopped,
      lockStore: () => host.lockStore(),
      unlockStore: () => host.unlockStore(),
    });
    if (flood) {
      this.forward = (buf, start, end, stream, streamEnd) =>
        host.forward(buf, start, end, index, stream, streamEnd);
      this.knownStreams = () => host.knownStreams(this);
      this.heard = () => host.heard(this);
      this.copied = (known) => host.copied(this, known);
    }
  }

  /** In a group: hand a change that taught us something to our own stream. */
  forward?: (buf: Uint8Array, start: number, end: number, stream: string, at: number) => void;
  /** In a group: what a full copy to this peer (or its HAVE) holds of the other members' streams. */
  knownStreams?: () => HeldStream[];
  /** In a group: this link applied more of the peer's stream. */
  heard?: () => void;
  /** In a group: a full copy from this peer completed. */
  copied?: (known: KnownStream[]) => void;

  /**
   * How far this node holds the peer's stream, all of it: null while a full
   * copy from the peer is unfinished (its position is only where the copy
   * goes on) or when nothing of it was applied.
   */
  get heldStream(): { id: string; offset: number } | null {
    const ic = this.inCopy, p = this.peerStream;
    if (p === null || (ic !== null && !ic.complete) || this.link?.receivingCopy) return null;
    return p;
  }

  // --- shared state, from the host ---

  /** Id of this node's change stream. */
  get streamId(): string {
    return this.#host.streamId;
  }

  /** Version clock. */
  get hlc(): HybridClock {
    return this.#host.hlc;
  }

  /** This node's recent changes. */
  get backlog(): Backlog {
    return this.#host.backlog;
  }

  /** Applies the peers' changes. */
  get merger(): Merger {
    return this.#host.merger;
  }

  /** The store replicated. */
  get store(): Store {
    return this.#host.store;
  }

  /** The engine's clock. */
  get clock(): { readonly processStartUnix: number } {
    return this.#host.clock;
  }

  /** Silence after which the peer counts as dead (ms). */
  get timeoutMs(): number {
    return this.#host.timeoutMs;
  }

  /** Which of our versions this peer has seen. */
  get agreement(): FullCopies["agreement"] {
    return this.#copies.agreement;
  }

  /** The full copy we send to this peer, until it confirmed it. */
  get outCopy(): OutgoingCopy | null {
    return this.#copies.outCopy;
  }

  set outCopy(copy: OutgoingCopy | null) {
    this.#copies.outCopy = copy;
  }

  /** The full copy we receive from this peer (or received last). */
  get inCopy(): IncomingCopy | null {
    return this.#copies.inCopy;
  }

  set inCopy(copy: IncomingCopy | null) {
    this.#copies.inCopy = copy;
  }

  /** Ids of the copies sent to this peer. */
  get copyIds(): number {
    return this.#copies.copyIds;
  }

  set copyIds(ids: number) {
    this.#copies.copyIds = ids;
  }

  /** True while a completed incoming copy drops what its sender no longer has. */
  get sweeping(): boolean {
    return this.#copies.sweeping;
  }

  /** True while a link streams our changes to this peer. */
  get streaming(): boolean {
    return this.link !== null && this.link.streaming;
  }

  /** Versions up to the returned one this peer has of ours (0 in a group of 3+: no sweep). */
  agreedWith(peerNode: string, knownStream: string, knownOffset: number): number {
    if (!this.#exact) return 0;
    return this.#copies.agreedWith(peerNode, knownStream, knownOffset);
  }

  /** The link's peer may have caught up with our whole stream. */
  refreshAgreement(link: Link): void {
    if (this.#exact) this.#copies.refreshAgreement(link);
  }

  /** A full copy was applied: drop what its sender no longer has. */
  sweepCopy(ic: IncomingCopy): Promise<void> {
    return this.#copies.sweepCopy(ic);
  }

  /** The peer applied our stream up to `offset` (`copying`: what came before is not confirmed). */
  acked(offset: number, copying: boolean): void {
    if (!copying) this.confirm(offset);
    else this.#host.peerChanged(this, false);
    this.#copies.agreement.acked(offset);
    this.lag.acked(offset);
  }

  /** The peer holds our stream up to `offset`, all of it. */
  confirm(offset: number): void {
    if (offset <= this.confirmed) return;
    this.confirmed = offset;
    this.#host.peerChanged(this, false);
  }

  /** Age (ms) of our oldest change the peer has not acknowledged; 0 when caught up. */
  lagMs(): number {
    const link = this.link;
    if (!link || link.acked >= this.#host.backlog.end) return 0;
    return this.lag.ageMs(link.acked);
  }

  /** Bytes of our stream the peer has not acknowledged (0 without a link). */
  lagBytes(): number {
    const link = this.link;
    return link ? Math.max(0, this.#host.backlog.end - link.acked) : 0;
  }

  /** The link finished its initial sync. */
  /** A new full copy to this peer begins (LinkOwner). */
  copyBegun(): void {
    this.#host.copyBegun();
  }

  started(link: Link): void {
    if (this.link !== link) return;
    // No copy came since the warm restart: the peer resumed our saved position from its backlog.
    if (this.restored && this.inCopy === null) {
      this.stats.warmResumes++;
      this.restored = false;
      log.info(
        `replication: warm restart resumed from the peer's backlog (no full copy)${
          this.#exact ? "" : ` (peer=${this.address})`
        }`,
      );
    }
    log.info(`replication: start (peer=${link.peerAddress})`);
  }

  /**
   * True once this node applied the peer's stream up to where it stood when
   * the current link began, with no full copy from it being received or swept.
   */
  caughtUp(): boolean {
    const link = this.link, target = this.#catchUp, p = this.peerStream;
    return link !== null && !link.closed && target !== null && !link.receivingCopy &&
      !this.sweeping && p !== null && p.id === target.id && p.offset >= target.end;
  }

  /** The peer sent a version the clock does not accept. */
  rejectedVersion(version: number, what: string): void {
    this.#host.rejectedVersion(version, what);
  }

  /** Take the store lock. */
  lockStore(): void {
    this.#host.lockStore();
  }

  /** Release the store lock. */
  unlockStore(): void {
    this.#host.unlockStore();
  }

  /** This node's stream state for this peer, sent in the handshake. */
  streamState(): StreamState {
    const host = this.#host;
    return {
      streamId: host.streamId,
      streamEnd: host.backlog.end,
      knownStream: this.peerStream?.id ?? "-",
      knownOffset: this.peerStream?.offset ?? 0,
      items: host.store.stats.currItems,
      hlc: host.hlc.last,
    };
  }

  /**
   * Make an authenticated connection this peer's link; false when an
   * existing one is kept.
   */
  adopt(
    conn: Deno.Conn,
    role: "connector" | "acceptor",
    peerNode: string,
    peer: StreamState,
    rest: Uint8Array,
    keys: LinkKeys | null,
  ): boolean {
    const host = this.#host;
    if (host.stopped) {
      closeQuietly(conn);
      return false;
    }
    const old = this.link;
    if (old && !old.closed) {
      if (old.peerNode === peerNode && old.role !== role) {
        // Both dialled at once: keep the link dialled by the smaller node id, on both sides alike.
        const oldDialer = old.role === "connector" ? host.nodeId : peerNode;
        const newDialer = role === "connector" ? host.nodeId : peerNode;
        if (oldDialer < newDialer) {
          log.debug("replication: duplicate link dropped");
          closeQuietly(conn);
          return false;
        }
      }
      // A newer connection from the peer (or its new incarnation) replaces the old one.
      old.close("replaced by a new link");
    }
    if (!host.hlc.observe(peer.hlc)) host.rejectedVersion(peer.hlc, "its clock");
    const link = new Link(conn, role, peerNode, this, keys);
    this.link = link;
    this.#catchUp = { id: peer.streamId, end: peer.streamEnd };
    this.stats.links++;
    host.linked(this);
    link.done.then((reason) => {
      if (reason !== "shutdown") this.stats.linkDrops++;
      if (reason !== "replaced by a new link" && reason !== "shutdown") {
        log.info(`replication: close (${reason})`);
      } else log.debug(`replication: close (${reason})`);
      const current = this.link === link;
      if (current) this.link = null;
      host.linkClosed(this, current);
    });
    if (this.copyNext) {
      // What the peer holds of our stream lacks part of a copy this process can no longer
      // resume: as if it knew nothing of the stream, it gets a new one.
      this.copyNext = false;
      link.start({ ...peer, knownStream: "-", knownOffset: 0 }, rest);
    } else link.start(peer, rest);
    host.peerChanged(this, false);
    return true;
  }
}
