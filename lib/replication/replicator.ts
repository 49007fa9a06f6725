/**
 * The replicator of one `serve` node, the public face of replication: turns
 * the engine's mutations into stream frames in the backlog, owns the one
 * {@linkcode Link} to the peer (pairing.ts finds it, re-pairing by itself
 * after the peer dies, hangs or comes back), books what the peer confirmed
 * (lag, --repl-sync, the stop's drain) and renders the stats lines. The
 * full-copy state that outlives links is in copies.ts.
 * @module
 */

import { type Server, statLine } from "../server/mod.ts";
import type { Engine, MutationObserver, SyncBarrier } from "../server/mod.ts";
import { Writer } from "../protocol/mod.ts";
import { closeQuietly, errorText, type HostPort } from "../transport/mod.ts";
import { decodeAscii } from "../protocol/bytes.ts";
import { log } from "../log.ts";
import { type AgreedVersions, Backlog } from "./backlog.ts";
import { FullCopies } from "./copies.ts";
import { randomHex, type StreamState } from "./handshake.ts";
import { LagSamples } from "./lag.ts";
import { Link, type LinkOwner } from "./link.ts";
import type { LinkKeys } from "./seal.ts";
import { Pairing, type PairingOptions } from "./pairing.ts";
import { Merger, wireBits } from "./merge.ts";
import type { IncomingCopy, OutgoingCopy } from "./snapshot.ts";
import { ReplicationStats } from "./stats.ts";
import { captureResume, encodeResume, restoreResume, type ResumeState } from "./resume.ts";
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

/** How `serve --replicate` pairs with its peer. */
export interface ReplicationOptions {
  /** Peer's replication address. */
  peer: HostPort;
  /** Where to listen when the peer does not answer. */
  listen: HostPort;
  /** Shared secret. */
  secret?: string;
  /** Acknowledge client writes after the peer applied them. */
  sync: boolean;
  /**
   * With `sync`: acknowledge locally (counted) while no peer confirms,
   * instead of answering SERVER_ERROR.
   */
  syncDegrade?: boolean;
  /** With `sync`: how long a write waits for the peer (ms; default `timeoutMs`). */
  syncTimeoutMs?: number;
  /** Silence (ms) after which the peer counts as dead. */
  timeoutMs: number;
  /** Backlog bytes. */
  backlogBytes: number;
  /** On stop: how long to wait for the peer to apply what it has not yet (ms; default 10000). */
  drainTimeoutMs?: number;
  /** TLS on the link (--repl-tls-*; see {@linkcode PairingOptions}). */
  tls?: PairingOptions["tls"];
  /**
   * What a stopped process of this node saved with its cache (serve -e):
   * the store given holds that cache; replication goes on from there.
   */
  resume?: ResumeState;
}

/** One node's replication state, its link and its pairing loop. */
export class Replicator implements MutationObserver, SyncBarrier, LinkOwner {
  /** This process's node id. */
  readonly nodeId: string = randomHex(8);
  /** Id of this process's change stream (a warm restart goes on with the saved one). */
  readonly streamId: string;
  /** Version clock (the store's CAS source). */
  readonly hlc: HybridClock;
  /** This node's recent changes. */
  readonly backlog: Backlog;
  /** Applies the peer's changes. */
  readonly merger: Merger;
  /** Counters. */
  readonly stats: ReplicationStats = new ReplicationStats();
  /** The engine replicated. */
  readonly engine: Engine;
  /** Where the peer's stream stands for us (null: never applied, or a copy was cut short). */
  peerStream: { id: string; offset: number } | null = null;
  /** The current link, if any. */
  link: Link | null = null;
  /** Which of our versions the peer has seen (for full copies' exactness rule). */
  readonly agreement: AgreedVersions;
  /** Full copies in both directions (they outlive links). */
  #copies: FullCopies;
  #options: ReplicationOptions;
  #scratch = new Writer(1024);
  /** What the peer confirmed of our stream; --repl-sync writes waiting for it. */
  #acks: SyncAcks;
  /** Called when the confirmed offset moves or the link closes, while stopping. */
  #drainWake: (() => void) | null = null;
  #abandoned = false;
  /** The version just handed to the store (-1 once a write used it). */
  #fresh = -1;
  #stopped = false;
  #lag = new LagSamples();
  #pairing: Pairing;
  /** Worker threads' changes and waits (null with one serve thread). */
  #shared: MainReplicationShare | null = null;
  #ringParser = new FrameParser();
  /** A saved position in the peer's stream was restored and no link has started since. */
  #restored = false;
  /** The peer's stream and its end when the current link began (see {@linkcode catchUp}). */
  #catchUp: { id: string; end: number } | null = null;

  /**
   * Replicate `server` with the given options; call {@linkcode start} next.
   * With serve threads, `share` is what the workers' {@linkcode WorkerReplication}s use.
   */
  constructor(server: Server, options: ReplicationOptions, share?: ReplicationShare) {
    this.#options = options;
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
    // The backlog must hold at least two of the largest items, or one big write would force a copy.
    const largest = store.classSizes[store.classSizes.length - 1];
    this.backlog = new Backlog(Math.max(options.backlogBytes, 2 * largest + 65536));
    this.merger = new Merger(
      store,
      this.engine.clock,
      this.hlc,
      Math.max(65536, Math.floor(options.backlogBytes / 256)),
    );
    this.#copies = new FullCopies({
      streamId: this.streamId,
      backlog: this.backlog,
      hlc: this.hlc,
      stats: this.stats,
      store: () => this.engine.store,
      stopped: () => this.#stopped,
      lockStore: () => this.lockStore(),
      unlockStore: () => this.unlockStore(),
    });
    this.agreement = this.#copies.agreement;
    if (options.resume) this.#restore(options.resume);
    this.#pairing = new Pairing({
      nodeId: this.nodeId,
      stats: this.stats,
      link: () => this.link,
      streamState: () => this.#streamState(),
      adopt: (conn, role, peerNode, peer, rest, keys) =>
        this.#adopt(conn, role, peerNode, peer, rest, keys),
    }, options);
    store.nextCas = () => (this.#fresh = this.hlc.tick());
    // A CAS is a version here: a client-chosen one would win forever or lose to the peer.
    this.engine.explicitCasMax = -1;
    this.engine.observer = this;
    if (share) {
      const parser = this.#ringParser;
      const shared = new MainReplicationShare(share, {
        frame: (buf, start, end) => this.#workerChange(buf, start, end),
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

  /** True while a completed incoming copy drops what its sender no longer has. */
  get sweeping(): boolean {
    return this.#copies.sweeping;
  }

  /** The full copy we send, until the receiver confirmed it (it outlives links). */
  get outCopy(): OutgoingCopy | null {
    return this.#copies.outCopy;
  }

  set outCopy(copy: OutgoingCopy | null) {
    this.#copies.outCopy = copy;
  }

  /** The full copy we receive or received last (it outlives links). */
  get inCopy(): IncomingCopy | null {
    return this.#copies.inCopy;
  }

  set inCopy(copy: IncomingCopy | null) {
    this.#copies.inCopy = copy;
  }

  /** Ids of the copies this process sends. */
  get copyIds(): number {
    return this.#copies.copyIds;
  }

  set copyIds(ids: number) {
    this.#copies.copyIds = ids;
  }

  /** The store replicated. */
  get store(): Engine["store"] {
    return this.engine.store;
  }

  /** The engine's clock. */
  get clock(): Engine["clock"] {
    return this.engine.clock;
  }

  /** Silence after which the peer counts as dead (ms). */
  get timeoutMs(): number {
    return this.#options.timeoutMs;
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
    this.inCopy?.mark(h);
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
    const at = this.engine.clock.unixNow() + delaySeconds;
    this.merger.applyFlush(version, at, true);
    const w = this.#scratch;
    w.length = 0;
    writeFlushFrame(w, version, at);
    this.backlog.push(w.buf, 0, w.length);
    this.#appended();
  }

  /** A worker thread's change (parsed by #ringParser): book it as if made here. */
  #workerChange(buf: Uint8Array, start: number, end: number): void {
    const p = this.#ringParser;
    this.#note(Math.max(p.version, p.touch));
    if (p.kind === Frame.ITEM) {
      if (p.touch > 0) this.merger.touched(decodeAscii(p.keyBuf, p.keyStart, p.keyEnd), p.touch);
    } else if (p.kind === Frame.DELETE) {
      this.merger.remember(p.keyBuf, p.keyStart, p.keyEnd, p.version);
    } else if (p.kind === Frame.FLUSH) {
      this.merger.applyFlush(p.version, p.exp, true);
    }
    this.backlog.push(buf, start, end);
    this.#appended();
  }

  /** A change of `version` is about to enter the backlog. */
  #note(version: number): void {
    this.agreement.note(this.backlog.end, version, performance.now());
  }

  /** Versions up to the returned one the peer `peerNode` has of ours (see FullCopies). */
  agreedWith(peerNode: string, knownStream: string, knownOffset: number): number {
    return this.#copies.agreedWith(peerNode, knownStream, knownOffset);
  }

  /** The link's peer may have caught up with our whole stream: the clock is then agreed. */
  refreshAgreement(link: Link): void {
    this.#copies.refreshAgreement(link);
  }

  /** A full copy was applied: drop what its sender no longer has (see FullCopies). */
  sweepCopy(ic: IncomingCopy): Promise<void> {
    return this.#copies.sweepCopy(ic);
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
    this.link?.wake();
  }

  /** Tell worker threads the link state and the confirmed offset. */
  #publishAcks(ended = false): void {
    this.#shared?.publish(this.#linked(), this.#acks.confirmed, ended);
  }

  #linked(): boolean {
    return this.link !== null && this.link.streaming;
  }

  /**
   * The peer sent a version the clock does not accept (or, for `what` = "a
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

  #appended(): void {
    this.stats.changesOut++;
    this.#lag.appended(this.backlog.end);
    this.link?.wake();
  }

  /**
   * The peer applied our stream up to `offset`: measure the lag. While a
   * full copy is being sent, what came before it is not confirmed yet.
   */
  acked(offset: number, copying: boolean): void {
    if (!copying) this.confirm(offset);
    else this.#publishAcks();
    this.agreement.acked(offset);
    this.#lag.acked(offset);
  }

  /** Age (ms) of the oldest change the peer has not acknowledged; 0 when caught up. */
  lagMs(): number {
    const link = this.link;
    if (!link || link.acked >= this.backlog.end) return 0;
    return this.#lag.ageMs(link.acked);
  }

  /**
   * The peer holds our stream up to `offset`, all of it (an ACK outside a
   * full copy, a resume point, a full copy sent).
   */
  confirm(offset: number): void {
    if (!this.#acks.confirm(offset)) return;
    this.#publishAcks();
    this.#drainWake?.();
  }

  // --- SyncBarrier (--repl-sync) ---

  /** Stream position after this thread's changes so far. */
  position(): number {
    return this.backlog.end;
  }

  /** Wait (bounded) until the peer confirmed our stream up to `target` (see SyncAcks). */
  wait(target: number, writes: number): Promise<number> | number {
    return this.#acks.wait(target, writes);
  }

  /** `writes` replies became SERVER_ERROR. */
  refused(writes: number): void {
    this.#acks.refused(writes);
  }

  // --- lifecycle, the link ---

  /**
   * First pairing attempt, then the background loop. Throws what is a
   * configuration error (wrong secret, not a memrep port, cannot listen).
   */
  async start(): Promise<void> {
    await this.#pairing.start();
    this.#shared?.run().catch((err) => log.warn(`replication: change ring: ${errorText(err)}`));
  }

  /**
   * Stop pairing; call it once no client write can run any more (the
   * server and its threads stopped). The peer first gets what it has not
   * applied yet, for at most `drainTimeoutMs` (like repcached's "cleanup");
   * then the link and the listener close.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#pairing.stop();
    // The threads' last changes join the backlog before the drain.
    this.#shared?.drain();
    this.#shared?.stop();
    this.#acks.release(false);
    const source = {
      backlog: this.backlog,
      confirmed: () => this.#acks.confirmed,
      progress: () => new Promise<void>((resolve) => (this.#drainWake = resolve)),
      abandoned: () => this.#abandoned,
    };
    await drainToPeer(source, this.link, this.#options.drainTimeoutMs ?? 10_000);
    this.#drainWake = null;
    this.link?.close("shutdown");
    await this.#pairing.ended();
  }

  /** Give up waiting for the peer in {@linkcode stop} (a second SIGINT/SIGTERM). */
  abandonDrain(): void {
    this.#abandoned = true;
    this.#drainWake?.();
  }

  /** A link finished its initial sync. */
  started(link: Link): void {
    if (this.link !== link) return;
    // No copy came since the warm restart: the peer resumed our saved position from its backlog.
    if (this.#restored && this.inCopy === null) {
      this.stats.warmResumes++;
      this.#restored = false;
      log.info("replication: warm restart resumed from the peer's backlog (no full copy)");
    }
    log.info(`replication: start (peer=${link.peerAddress})`);
  }

  /** Make an authenticated connection the link; false when an existing one is kept. */
  #adopt(
    conn: Deno.Conn,
    role: "connector" | "acceptor",
    peerNode: string,
    peer: StreamState,
    rest: Uint8Array,
    keys: LinkKeys | null,
  ): boolean {
    if (this.#stopped) {
      closeQuietly(conn);
      return false;
    }
    const old = this.link;
    if (old && !old.closed) {
      if (old.peerNode === peerNode && old.role !== role) {
        // Both dialled at once: keep the link dialled by the smaller node id, on both sides alike.
        const oldDialer = old.role === "connector" ? this.nodeId : peerNode;
        const newDialer = role === "connector" ? this.nodeId : peerNode;
        if (oldDialer < newDialer) {
          log.debug("replication: duplicate link dropped");
          closeQuietly(conn);
          return false;
        }
      }
      // A newer connection from the peer (or its new incarnation) replaces the old one.
      old.close("replaced by a new link");
    }
    if (!this.hlc.observe(peer.hlc)) this.rejectedVersion(peer.hlc, "its clock");
    const link = new Link(conn, role, peerNode, this, keys);
    this.link = link;
    this.#catchUp = { id: peer.streamId, end: peer.streamEnd };
    this.stats.links++;
    // A new period: the next refused or degraded sync write is logged again.
    this.#acks.newPeriod();
    this.#shared?.resetNote();
    this.#pairing.closeListener();
    link.done.then((reason) => {
      if (reason !== "shutdown") this.stats.linkDrops++;
      if (reason !== "replaced by a new link" && reason !== "shutdown") {
        log.info(`replication: close (${reason})`);
      } else log.debug(`replication: close (${reason})`);
      if (this.link === link) {
        this.link = null;
        this.#pairing.linkLost();
        // Alone now: degraded writes need not wait out their timeout.
        if (this.#options.syncDegrade) this.#acks.release(true);
      }
      this.#publishAcks(true);
      this.#drainWake?.();
      this.#pairing.poke();
    });
    link.start(peer, rest);
    this.#publishAcks();
    this.#pairing.poke();
    return true;
  }

  /** Take over a warm restart's saved state (see resume.ts). */
  #restore(state: ResumeState): void {
    restoreResume(this, state);
    this.#acks.confirm(this.backlog.start); // the peer had our stream up to there
    this.stats.warmRestored = 1;
    this.#restored = this.peerStream !== null;
    const own = state.stream
      ? `stream ${this.streamId} from offset ${this.backlog.end} (${this.backlog.used} bytes unconfirmed)`
      : "a new stream (a full copy to the peer follows)";
    const peer = this.peerStream
      ? `peer stream ${this.peerStream.id} at offset ${this.peerStream.offset}`
      : "no position in the peer's stream (a full copy from the peer follows)";
    log.info(
      `replication: warm restart: ${own}, ${peer}, ${this.merger.tombstones.size} tombstones`,
    );
  }

  /**
   * True once this node applied the peer's stream up to where it stood when
   * the current link began, with no full copy being received or swept.
   */
  #caughtUp(): boolean {
    const link = this.link, target = this.#catchUp, p = this.peerStream;
    return link !== null && !link.closed && target !== null && !link.receivingCopy &&
      !this.sweeping && p !== null && p.id === target.id && p.offset >= target.end;
  }

  /**
   * After a warm restart, before clients are served: wait until this node
   * caught up with the peer (it has every change the peer had when they
   * linked), at most `ms` while no link is up and 5 x `ms` in all, or until
   * `stopped()`. True when caught up.
   */
  async catchUp(ms: number, stopped: () => boolean): Promise<boolean> {
    const t0 = performance.now();
    for (;;) {
      if (this.#caughtUp()) {
        log.info(
          `replication: warm restart: caught up with the peer in ${
            Math.round(performance.now() - t0)
          } ms, serving`,
        );
        return true;
      }
      const waited = performance.now() - t0;
      if (stopped() || waited > 5 * ms || (this.link === null && waited > ms)) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    log.info(
      `replication: warm restart: serving before catching up with the peer (${
        this.link === null ? "no link" : "still syncing"
      } after ${Math.round(performance.now() - t0)} ms)`,
    );
    return false;
  }

  /**
   * What to save with the cache (serve -e) so the next process resumes
   * replication (see resume.ts); call it after {@linkcode stop}.
   */
  resumeImage(): Uint8Array {
    const ic = this.inCopy;
    const state = captureResume(this, {
      confirmed: this.#acks.confirmed,
      sendingCopy: this.outCopy !== null,
      receivingCopy: ic !== null && (!ic.complete || !ic.released),
    });
    return encodeResume(state);
  }

  /** This node's stream state, sent in the handshake. */
  #streamState(): StreamState {
    return {
      streamId: this.streamId,
      streamEnd: this.backlog.end,
      knownStream: this.peerStream?.id ?? "-",
      knownOffset: this.peerStream?.offset ?? 0,
      items: this.engine.store.stats.currItems,
      hlc: this.hlc.last,
    };
  }

  // --- stats ---

  /** Append the replication `STAT` lines. */
  writeStats(out: Writer): void {
    const link = this.link;
    const s = this.stats;
    const shared = this.#shared?.syncCounts();
    const state = link ? link.phase : this.#pairing.state;
    const lines: Array<[string, string | number]> = [
      ["repl_node_id", this.nodeId],
      ["repl_role", link ? link.role : "none"],
      ["repl_peer", link ? link.peerAddress : this.#pairing.peerText],
      ["repl_link", state],
      ["repl_sync", this.#options.sync ? 1 : 0],
      ["repl_sync_degrade", this.#options.syncDegrade ? 1 : 0],
      ["repl_sync_timeout_ms", this.#options.syncTimeoutMs ?? this.#options.timeoutMs],
      ["repl_sync_degraded", s.syncDegraded + (shared?.degraded ?? 0)],
      ["repl_sync_failed", s.syncRefused + (shared?.refused ?? 0)],
      ["repl_copy_in_progress", link?.receivingCopy || this.sweeping ? 1 : 0],
      ["repl_copy_sending", link?.sendingCopy ? 1 : 0],
      ["repl_lag_ms", this.lagMs()],
      ["repl_lag_bytes", link ? Math.max(0, this.backlog.end - link.acked) : 0],
      ["repl_last_ack_ms", Math.round(this.#lag.lastMs * 1000) / 1000],
      ["repl_backlog_bytes", this.backlog.used],
      ["repl_backlog_size", this.backlog.capacity],
      ["repl_stream_offset", this.backlog.end],
      ["repl_links", s.links],
      ["repl_link_drops", s.linkDrops],
      ["repl_full_copies_sent", s.fullCopiesSent],
      ["repl_full_copies_received", s.fullCopiesReceived],
      ["repl_partial_resyncs", s.partialResyncs],
      ["repl_items_copied_sent", s.itemsCopiedSent],
      ["repl_items_copied_received", s.itemsCopiedReceived],
      ["repl_changes_sent", s.changesOut],
      ["repl_changes_applied", s.changesApplied],
      ["repl_changes_ignored", s.changesIgnored],
      ["repl_apply_failures", s.applyFailures],
      ["repl_backlog_overflows", s.backlogOverflows],
      ["repl_copy_resumes", s.copyResumes],
      ["repl_copy_bytes_sent", s.copyBytesSent],
      ["repl_copy_items_dropped", s.copyItemsDropped],
      ["repl_tombstones", this.merger.tombstones.size],
      ["repl_auth_failures", s.authFailures],
      ["repl_bad_peers", s.badPeers],
      ["repl_versions_rejected", s.versionsRejected],
      ["repl_bad_macs", s.badMacs],
      ["repl_tls_failures", s.tlsFailures],
      ["repl_warm_restored", s.warmRestored],
      ["repl_warm_resumes", s.warmResumes],
    ];
    for (const [name, value] of lines) statLine(out, name, value);
  }
}
