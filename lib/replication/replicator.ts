/**
 * The replicator of one `serve` node, the public face of replication: turns
 * the engine's mutations into stream frames in the backlog, owns the
 * {@linkcode Peer}s (the pair's one, or every other member of a group, each
 * with its link: pairing.ts / group.ts find them, re-pairing by itself after
 * a peer dies, hangs or comes back), books what the peers confirmed
 * (--repl-sync, the stop's drain) and renders the stats lines (their names
 * and sources: stat_lines.ts).
 * @module
 */

import type { Server } from "../server/mod.ts";
import type { Engine, MutationObserver, SyncBarrier } from "../server/mod.ts";
import { decodeAscii, Writer } from "../protocol/mod.ts";
import { errorText, type HostPort } from "../transport/mod.ts";
import { log } from "../log.ts";
import { Backlog } from "./backlog.ts";
import { randomHex } from "./handshake.ts";
import type { Link } from "./link.ts";
import type { HeldStream } from "./relay.ts";
import { Pairing } from "./pairing.ts";
import type { ReplicationOptions } from "./options.ts";
import { writeReplicationStats } from "./stat_lines.ts";
import { groupNodeId, GroupPairing } from "./group.ts";
import { flushTime, Merger, wireBits } from "./merge.ts";
import { Peer, type PeerHost } from "./peer.ts";
import type { KnownStream } from "./snapshot.ts";
import { ReplicationStats } from "./stats.ts";
import { captureResume, encodeResume, restoreResume, type ResumeState } from "./resume.ts";
import { restoredText, resumeConditions, waitCaughtUp } from "./warm.ts";
import { SyncAcks } from "./sync.ts";
import { drainToPeer } from "./drain.ts";
import {
  Frame,
  FrameParser,
  VERB,
  writeDeleteFrame,
  writeFlushFrame,
  writeItemLine,
} from "./stream.ts";
import { MainReplicationShare, type ReplicationShare } from "./threads.ts";
import { HybridClock, versionTime } from "./versions.ts";

/** One node's replication state, its peers and its pairing loop. */
export class Replicator implements MutationObserver, SyncBarrier, PeerHost {
  /** This process's node id (in a group it ends with `.<member index>`). */
  readonly nodeId: string;
  /** Id of this process's change stream (a warm restart goes on with the saved one). */
  readonly streamId: string;
  /** Version clock (the store's CAS source). */
  readonly hlc: HybridClock;
  /** This node's recent changes. */
  readonly backlog: Backlog;
  /** Applies the peers' changes. */
  readonly merger: Merger;
  /** Counters of the node (each peer keeps its own; `stats` shows the sums). */
  readonly stats: ReplicationStats = new ReplicationStats();
  /** The engine replicated. */
  readonly engine: Engine;
  /** The peers: the pair's one, or the other members of the group. */
  readonly peers: Peer[];
  #options: ReplicationOptions;
  #scratch = new Writer(1024);
  /** What the peers confirmed of our stream; --repl-sync writes waiting for it. */
  #acks: SyncAcks;
  /** Called when a confirmed offset moves or a link closes, while stopping. */
  #drainWake: (() => void) | null = null;
  #abandoned = false;
  /** The version just handed to the store (-1 once a write used it). */
  #fresh = -1;
  #stopped = false;
  #pairing: Pairing | null = null;
  #group: GroupPairing | null = null;
  /** Worker threads' changes and waits (null with one serve thread). */
  #shared: MainReplicationShare | null = null;
  #ringParser = new FrameParser();

  /**
   * Replicate `server` with the given options; call {@linkcode start} next.
   * With serve threads, `share` is what the workers' {@linkcode WorkerReplication}s use.
   */
  constructor(server: Server, options: ReplicationOptions, share?: ReplicationShare) {
    this.#options = options;
    const group = options.group;
    this.nodeId = group ? groupNodeId(group.self) : randomHex(8);
    this.#acks = new SyncAcks(
      {
        degrade: options.syncDegrade ?? false,
        timeoutMs: options.syncTimeoutMs ?? options.timeoutMs,
      },
      this.stats,
      () => this.#linked(),
    );
    this.engine = server.engine;
    this.streamId = options.resume?.stream?.id ?? randomHex(8);
    const store = this.engine.store;
    this.hlc = share ? HybridClock.attach(share.clock) : new HybridClock();
    // Group members' versions differ in their node bits: a tie between two writers is broken alike.
    // A pair's nodes take 0 and 1 once linked (see linked); until then, bits no linked node has.
    this.hlc.node = group ? group.self : 2 + Math.floor(Math.random() * 14);
    // The backlog must hold at least two of the largest items, or one big write would force a copy.
    const largest = store.classSizes[store.classSizes.length - 1];
    this.backlog = new Backlog(Math.max(options.backlogBytes, 2 * largest + 65536));
    this.merger = new Merger(
      store,
      this.engine.clock,
      this.hlc,
      Math.max(65536, Math.floor(options.backlogBytes / 256)),
    );
    if (group) {
      // Three or more: changes learnt from one peer go on to the others (flooding), see group.ts.
      const flood = group.members.length >= 3;
      this.peers = group.members.flatMap((m, i) =>
        i === group.self ? [] : [new Peer(this, i, hostPortText(m), flood)]
      );
      this.#group = new GroupPairing(this, options, group);
    } else {
      const peer = new Peer(this, 0, hostPortText(options.peer), false);
      this.peers = [peer];
      this.#pairing = new Pairing({
        nodeId: this.nodeId,
        stats: this.stats,
        link: () => peer.link,
        streamState: () => peer.streamState(),
        adopt: (conn, role, peerNode, state, rest, keys) =>
          peer.adopt(conn, role, peerNode, state, rest, keys),
      }, options);
    }
    if (options.resume) this.#restore(options.resume);
    store.nextCas = () => (this.#fresh = this.hlc.tick());
    // A CAS is a version here: a client-chosen one would win forever or lose to the peer.
    this.engine.explicitCasMax = -1;
    this.engine.observer = this;
    // An expired item's version keeps an older write of its key, arriving late, out.
    store.onExpire = (h) => {
      const ko = store.keyOffset(h);
      this.merger.expired(store.buffer(h), ko, ko + store.keyLength(h), store.cas(h));
    };
    if (share) {
      const parser = this.#ringParser;
      const shared = new MainReplicationShare(share, {
        frame: (buf, start, end, at) => this.#workerChange(buf, start, end, at),
        overflowed: (corrupt) => this.#ringOverflow(corrupt),
        drained: (ringEnd) => {
          shared.mark(ringEnd, this.backlog.end);
          this.#publishAcks();
        },
        syncNote: (degraded) => this.#acks.note(degraded),
      }, (buf, start, end) => parser.parse(buf, start, end));
      shared.renderStats = (out) => this.writeStats(out);
      this.#shared = shared;
      // Worker changes made before this thread's next batch reach the backlog ahead of it.
      this.engine.lockHooks = { waiting: () => shared.service(), acquired: () => shared.drain() };
    }
    if (options.sync) server.barrier = this;
    this.engine.extraStats = (out) => this.writeStats(out);
    this.engine.statsGroups.replication = (out) => this.writeStats(out);
  }

  /** The pair's link (a group's first peer's), if any. */
  get link(): Link | null {
    return this.peers[0].link;
  }

  /** The store replicated. */
  get store(): Engine["store"] {
    return this.engine.store;
  }

  /** The engine's clock. */
  get clock(): Engine["clock"] {
    return this.engine.clock;
  }

  /** Silence after which a peer counts as dead (ms). */
  get timeoutMs(): number {
    return this.#options.timeoutMs;
  }

  /** True once {@linkcode stop} began. */
  get stopped(): boolean {
    return this.#stopped;
  }

  // --- MutationObserver: local changes become stream frames ---

  /** Item h was created or changed. */
  stored(h: number): void {
    this.#shared?.drain(); // workers' earlier changes go first
    const store = this.engine.store;
    const cas = store.cas(h);
    let touch = 0;
    if (cas === this.#fresh) this.#fresh = -1;
    else {
      // The CAS did not change: an expiry-only change (touch, gat, mg T) needs its own version.
      this.hlc.observe(cas);
      touch = this.hlc.tick();
      const ko = store.keyOffset(h);
      this.merger.touched(decodeAscii(store.buffer(h), ko, ko + store.keyLength(h)), touch);
    }
    this.#note(touch > 0 ? touch : cas);
    // A write (meta E can give it an old version) is never dropped by an incoming copy's sweep.
    for (const p of this.peers) p.inCopy?.mark(h);
    const w = this.#scratch;
    w.length = 0;
    const bits = wireBits(store.userBits(h));
    writeItemLine(w, VERB.S, store, h, bits, touch, this.engine.clock.processStartUnix);
    this.backlog.push(w.buf, 0, w.length);
    const vo = store.valueOffset(h);
    this.backlog.push(store.buffer(h), vo, vo + store.valueLength(h) + 2);
    this.#appended();
  }

  /** The key src[start, end) was deleted. */
  deleted(src: Uint8Array, start: number, end: number): void {
    this.#shared?.drain(); // workers' earlier changes go first
    const version = this.hlc.tick();
    this.#note(version);
    this.merger.remember(src, start, end, version);
    const w = this.#scratch;
    w.length = 0;
    writeDeleteFrame(w, VERB.D, src, start, end, version);
    this.backlog.push(w.buf, 0, w.length);
    this.#appended();
  }

  /** flush_all ran with this delay (seconds). */
  flushed(delaySeconds: number): void {
    this.#shared?.drain(); // workers' earlier changes go first
    const version = this.hlc.tick();
    this.#note(version);
    const at = flushTime(this.engine.clock.unixNow(), delaySeconds);
    this.merger.applyFlush(version, at, true);
    const w = this.#scratch;
    w.length = 0;
    writeFlushFrame(w, version, at);
    this.backlog.push(w.buf, 0, w.length);
    this.#appended();
  }

  /**
   * A full copy to a peer begins: it carries the items and the flush epoch,
   * not the delayed flush_alls still pending, so those go on the stream
   * again (a receiver that has one already changes nothing). A new version
   * is older than its flush's second, so the flush's epoch stays the same.
   */
  copyBegun(): void {
    for (const p of this.merger.pendingFlushes) {
      const version = this.hlc.tick();
      this.#note(version);
      const w = this.#scratch;
      w.length = 0;
      writeFlushFrame(w, version, p.atLocal + this.engine.clock.processStartUnix);
      this.backlog.push(w.buf, 0, w.length);
      this.#appended();
    }
  }

  /**
   * A group of 3+: a peer's change that taught us something (merge.ts
   * `fresh`) goes on our stream as it is, so it reaches members that the
   * peer cannot reach (or that it could not reach before it died). Copies of
   * it that come back are not fresh and stop there.
   */
  forward(
    buf: Uint8Array,
    start: number,
    end: number,
    origin: number,
    stream: string,
    streamEnd: number,
  ): void {
    // Tagged with whence: a link sends a SKIP instead to a peer that has it (group.ts).
    this.backlog.pushFrom(buf, start, end, origin, stream, streamEnd, performance.now());
    this.stats.changesForwarded++;
    this.#wakeLinks();
  }

  /** A group of 3+: what this node holds of `peer`'s stream, or its link, moved: HAVE to the others. */
  heard(peer: Peer | null): void {
    for (const p of this.peers) if (p !== peer) p.link?.haveMoved();
  }

  /**
   * A group of 3+: the streams of the peers other than `except` that this
   * node holds, all of them up to an offset (sent with a full copy to
   * `except`, so that it resumes those peers' streams instead of taking a
   * copy from each; group.ts, Joining).
   */
  knownStreams(except: Peer): HeldStream[] {
    const known: HeldStream[] = [];
    for (const p of this.peers) {
      const held = p === except ? null : p.heldStream;
      const up = p.link !== null && !p.link.closed;
      if (held !== null) known.push({ member: p.index, id: held.id, offset: held.offset, up });
    }
    return known;
  }

  /**
   * A group of 3+: a full copy from `from` completed. A peer whose stream
   * this node knows nothing of, and has no link to, is resumed from where
   * the copy's sender had it (the copy holds everything before that).
   */
  copied(from: Peer, known: KnownStream[]): void {
    for (const k of known) {
      const p = this.peers.find((x) => x.index === k.member);
      if (p === undefined || p === from || p.peerStream !== null) continue;
      if (p.link !== null && !p.link.closed) continue;
      p.peerStream = { id: k.id, offset: k.offset };
      log.debug(
        `replication: ${p.address}'s stream known up to ${k.offset} through the copy from ${from.address}`,
      );
    }
    this.#group?.copyDone(from);
  }

  /** A worker thread's change (parsed by #ringParser), made at `at`: book it as if made here. */
  #workerChange(buf: Uint8Array, start: number, end: number, at: number): void {
    const p = this.#ringParser;
    if (p.kind === Frame.COPY_DELETE) {
      // A worker found an item expired (see WorkerReplication): remembered here, not streamed.
      this.merger.expired(p.keyBuf, p.keyStart, p.keyEnd, p.version);
      return;
    }
    this.#note(Math.max(p.version, p.touch));
    if (p.kind === Frame.ITEM) {
      if (p.touch > 0) this.merger.touched(decodeAscii(p.keyBuf, p.keyStart, p.keyEnd), p.touch);
    } else if (p.kind === Frame.DELETE) {
      this.merger.remember(p.keyBuf, p.keyStart, p.keyEnd, p.version);
    } else if (p.kind === Frame.FLUSH) {
      this.merger.applyFlush(p.version, p.exp, true, true);
    }
    this.backlog.push(buf, start, end);
    this.#appended(at);
  }

  /** A change of `version` is about to enter the backlog. */
  #note(version: number): void {
    const now = performance.now(), end = this.backlog.end;
    for (const p of this.peers) p.agreement.note(end, version, now);
  }

  /** Worker changes were lost (ring full, or bytes that did not parse): no peer may resume past the gap. */
  #ringOverflow(corrupt: boolean): void {
    this.backlog.skip();
    this.stats.backlogOverflows++;
    log.warn(
      corrupt
        ? "replication: corrupt change ring (a bug): its changes left out, full copy follows"
        : "replication: change ring full for 5 s (main thread stalled): sets left out, full copy follows",
    );
    this.#wakeLinks();
  }

  /** Tell worker threads the link state and the confirmed offset. */
  #publishAcks(ended = false): void {
    this.#shared?.publish(this.#linked(), this.#acks.confirmed, ended);
  }

  #linked(): boolean {
    return this.peers.some((p) => p.streaming);
  }

  /**
   * A peer sent a version the clock does not accept (or, for `what` = "a
   * flush_all time", a flush time past int32): count it and warn, at most
   * every 10 s, since a peer sends such values in runs.
   */
  rejectedVersion(version: number, what: string): void {
    const s = this.stats;
    s.versionsRejected++;
    const now = performance.now();
    if (now - s.versionsWarnedAt < 10_000) return;
    s.versionsWarnedAt = now;
    // A version in range is refused for being ahead; a flush time (unix s) for being past int32.
    const ahead = what === "a flush_all time"
      ? "past 2038"
      : Number.isSafeInteger(version) && version >= 0
      ? `${Math.round((versionTime(version) - Date.now()) / 1000)} s ahead of this node's clock`
      : "out of range";
    log.warn(
      `replication: refused a version from the peer (${what}: ${version}, ${ahead}; ${s.versionsRejected} so far): check both nodes' clocks`,
    );
  }

  /** Take the store lock (serve threads share it); worker changes are drained first. */
  lockStore(): void {
    this.engine.beginBatch();
  }

  /** Release the store lock taken by {@linkcode lockStore}. */
  unlockStore(): void {
    this.engine.endBatch();
  }

  /** A change entered the backlog; it was made at `at` (now, unless a worker made it). */
  #appended(at: number = performance.now()): void {
    this.stats.changesOut++;
    const end = this.backlog.end;
    for (const p of this.peers) p.lag.appended(end, at);
    this.#wakeLinks();
  }

  #wakeLinks(): void {
    for (const p of this.peers) p.link?.wake();
  }

  /**
   * Our stream offset --repl-sync writes count as confirmed: the pair's
   * peer's; in a group with "all", the lowest of the peers that stream and
   * are not being sent a full copy (none: no progress); with "quorum", the highest offset that a
   * majority of the group (this node counted) holds.
   */
  #syncPoint(): number {
    const peers = this.peers;
    if (peers.length === 1) return peers[0].confirmed;
    if (this.#options.syncMode === "quorum") {
      const need = Math.floor((peers.length + 1) / 2); // peers besides this node
      const held = peers.map((p) => p.confirmed).sort((a, b) => b - a);
      return held[need - 1];
    }
    // A member still receiving our full copy (joining) is not waited for: the others are.
    let low = Infinity;
    for (const p of peers) {
      if (p.streaming && !p.link!.sendingCopy) low = Math.min(low, p.confirmed);
    }
    return low === Infinity ? this.#acks.confirmed : low;
  }

  /** A peer confirmed more of our stream, or its link came or went (PeerHost). */
  peerChanged(_peer: Peer, _linkEnded: boolean): void {
    this.#acks.confirm(this.#syncPoint());
    this.#publishAcks();
    this.#drainWake?.();
  }

  /** A new link to `peer` was adopted (PeerHost). */
  linked(peer: Peer): void {
    // A pair: 0 for the smaller node id, 1 for the other, so the two never issue the same
    // version (it is the CAS clients see: equal ones named two writes).
    const other = peer.link?.peerNode;
    if (this.#group === null && other !== undefined) this.hlc.node = this.nodeId < other ? 0 : 1;
    // A new period: the next refused or degraded sync write is logged again.
    this.#acks.newPeriod();
    this.#shared?.resetNote();
    this.#pairing?.closeListener();
    this.#pairing?.poke();
    if (this.#group !== null) this.heard(null);
  }

  /** `peer`'s link closed (`current`: it was the peer's link, not a replaced one) (PeerHost). */
  linkClosed(peer: Peer, current: boolean): void {
    if (current) {
      this.#group?.linkEnded(peer);
      this.#pairing?.linkLost();
      // Alone now: degraded writes need not wait out their timeout.
      if (this.#options.syncDegrade && !this.#linked()) this.#acks.release(true);
    }
    // "all": a peer gone is no longer waited for.
    this.#acks.confirm(this.#syncPoint());
    this.#publishAcks(true);
    this.#drainWake?.();
    this.#pairing?.poke();
    this.#group?.poke();
    if (this.#group !== null) this.heard(null);
  }

  // --- SyncBarrier (--repl-sync) ---

  /** Stream position after this thread's changes so far. */
  position(): number {
    return this.backlog.end;
  }

  /** Wait (bounded) until the peers confirmed our stream up to `target` (see SyncAcks). */
  wait(target: number, writes: number): Promise<number> | number {
    return this.#acks.wait(target, writes);
  }

  /** `writes` replies became SERVER_ERROR. */
  refused(writes: number): void {
    this.#acks.refused(writes);
  }

  // --- lifecycle ---

  /**
   * First pairing attempt, then the background loop. Throws what is a
   * configuration error (wrong secret, not a memrep port, cannot listen).
   */
  async start(): Promise<void> {
    await (this.#pairing ?? this.#group)!.start();
    this.#shared?.run().catch((err) => log.warn(`replication: change ring: ${errorText(err)}`));
  }

  /**
   * Stop pairing; call it once no client write can run any more (the
   * server and its threads stopped). The peers first get what they have not
   * applied yet, for at most `drainTimeoutMs` (like repcached's "cleanup");
   * then the links and the listener close.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#pairing?.stop();
    this.#group?.stop();
    // The threads' last changes join the backlog before the drain.
    this.#shared?.drain();
    this.#shared?.stop();
    this.#acks.release(false);
    const links = this.peers.flatMap((p) => p.link && !p.link.closed ? [p.link] : []);
    const waited = this.peers.filter((p) => p.link !== null && !p.link.closed);
    const source = {
      backlog: this.backlog,
      // The lowest of the peers still linked (all gone: what the first one had).
      confirmed: () => {
        let low = Infinity;
        for (const p of waited) if (p.link && !p.link.closed) low = Math.min(low, p.confirmed);
        return low === Infinity ? Math.min(...this.peers.map((p) => p.confirmed)) : low;
      },
      progress: () => new Promise<void>((resolve) => (this.#drainWake = resolve)),
      abandoned: () => this.#abandoned,
      peers: this.#group ? this.peers.length : 0,
    };
    await drainToPeer(source, links, this.#options.drainTimeoutMs ?? 10_000);
    this.#drainWake = null;
    for (const p of this.peers) p.link?.close("shutdown");
    await (this.#pairing ?? this.#group)!.ended();
  }

  /** Give up waiting for the peers in {@linkcode stop} (a second SIGINT/SIGTERM). */
  abandonDrain(): void {
    this.#abandoned = true;
    this.#drainWake?.();
  }

  // --- warm restart (serve -e, see resume.ts) ---

  /** Take over a warm restart's saved state. */
  #restore(state: ResumeState): void {
    restoreResume(this, state);
    // Each peer had our stream up to what it confirmed.
    this.#acks.confirm(Math.min(...this.peers.map((p) => p.confirmed)));
    this.stats.warmRestored = 1;
    for (const p of this.peers) p.restored = p.peerStream !== null;
    const what = restoredText(
      this.streamId,
      this.backlog,
      state.stream !== null,
      this.peers,
      this.#group !== null,
    );
    log.info(`replication: warm restart: ${what}, ${this.merger.tombstones.size} tombstones`);
  }

  /**
   * After a warm restart, before clients are served: wait until this node
   * caught up with its peers (it has every change each linked peer had when
   * their link began, and no full copy is being received or swept). A peer
   * without a link is waited for at most `ms`: then the node serves once the
   * linked ones are caught up (none linked: it serves anyway). At most 5 x
   * `ms` in all, or until `stopped()`. True when caught up with a peer at
   * least and with every linked one.
   */
  catchUp(ms: number, stopped: () => boolean): Promise<boolean> {
    return waitCaughtUp(this.peers, this.#group !== null, ms, stopped);
  }

  /**
   * What to save with the cache (serve -e) so the next process resumes
   * replication (see resume.ts); call it after {@linkcode stop}.
   */
  resumeImage(): Uint8Array {
    return encodeResume(captureResume(this, resumeConditions(this.peers)));
  }

  // --- stats ---

  /** Append the replication `STAT` lines. */
  writeStats(out: Writer): void {
    writeReplicationStats(out, {
      nodeId: this.nodeId,
      peers: this.peers,
      stats: this.stats,
      backlog: this.backlog,
      merger: this.merger,
      options: this.#options,
      group: this.#group,
      pairing: this.#pairing,
      shared: this.#shared,
    });
  }
}

/** "host:port" ("[v6]:port"). */
function hostPortText(p: HostPort): string {
  return p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}
