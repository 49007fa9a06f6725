/**
 * The replicator of one `serve` node: turns the engine's mutations into
 * stream frames in the backlog, pairs with the peer (connect first, listen
 * when nothing answers, like repcached), and keeps one {@linkcode Link}
 * alive, re-pairing by itself after the peer dies, hangs or comes back.
 * @module
 */

import { type Server, statLine } from "../server/mod.ts";
import type { Engine, MutationObserver, SyncBarrier } from "../server/mod.ts";
import { Writer } from "../protocol/mod.ts";
import {
  closeQuietly,
  errorText,
  type HostPort,
  isTlsConn,
  listenTcp,
  type TlsMaterial,
} from "../transport/mod.ts";
import { decodeAscii } from "../protocol/bytes.ts";
import { setImmediate } from "node:timers";
import { log } from "../log.ts";
import { UsageError } from "../errors.ts";
import { AgreedVersions, Backlog } from "./backlog.ts";
import {
  handshake,
  type HandshakeContext,
  type HandshakeFailure,
  randomHex,
  type StreamState,
} from "./handshake.ts";
import { Link } from "./link.ts";
import type { LinkKeys } from "./seal.ts";
import { HandshakeSlots } from "./slots.ts";
import { Merger, wireBits } from "./merge.ts";
import type { IncomingCopy, OutgoingCopy } from "./snapshot.ts";
import { ReplicationStats } from "./stats.ts";
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
  /**
   * TLS on the link (--repl-tls-*): this node's certificate for when it
   * listens, and the CA (PEM; Deno's roots when absent) that the listening
   * peer's certificate must chain to when it dials. The listener cannot ask
   * for a client certificate (Deno's TLS has none): the secret authenticates.
   */
  tls?: TlsMaterial & { ca?: string };
}

/** Outcome of one attempt to dial the peer. */
type DialResult = "linked" | "unreachable" | "tls" | HandshakeFailure;

/** An incoming (so far unauthenticated) handshake must end within this (or --repl-timeout). */
const ACCEPT_DEADLINE_MS = 1000;
/** Lag samples kept: (stream offset, time) of recent changes. */
const LAG_SAMPLES = 4096;

/** One node's replication state and pairing loop. */
export class Replicator implements MutationObserver, SyncBarrier {
  /** This process's node id. */
  readonly nodeId: string = randomHex(8);
  /** Id of this process's change stream. */
  readonly streamId: string = randomHex(8);
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
  readonly agreement: AgreedVersions = new AgreedVersions();
  /** The full copy we send, until the receiver confirmed it (it outlives links). */
  outCopy: OutgoingCopy | null = null;
  /** The full copy we receive or received last (it outlives links). */
  inCopy: IncomingCopy | null = null;
  /** Ids of the copies this process sends. */
  copyIds = 0;
  /** The completed incoming copy whose sweep runs (the copy counts as in progress). */
  #sweepOf: IncomingCopy | null = null;
  #options: ReplicationOptions;
  #scratch = new Writer(1024);
  /** What the peer confirmed of our stream; --repl-sync writes waiting for it. */
  #acks: SyncAcks;
  /** Called when the confirmed offset moves or the link closes, while stopping. */
  #drainWake: (() => void) | null = null;
  #abandoned = false;
  /** The version just handed to the store (-1 once a write used it). */
  #fresh = -1;
  #listener: Deno.Listener | null = null;
  /** The last failed TLS handshake as dialer (for the startup message). */
  #tlsError = "";
  #stopped = false;
  #selfAddress = false;
  #signal: (() => void) | null = null;
  #signalled: Promise<void> | null = null;
  #loopDone: Promise<void> = Promise.resolve();
  #lagOffset = new Float64Array(LAG_SAMPLES);
  #lagTime = new Float64Array(LAG_SAMPLES);
  #lagHead = 0;
  #lagTail = 0;
  #lastLagMs = 0;
  #state: "down" | "connecting" | "listening" = "down";
  #slots = new HandshakeSlots();
  /** Worker threads' changes and waits (null with one serve thread). */
  #shared: MainReplicationShare | null = null;
  #ringParser = new FrameParser();

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
    return this.#sweepOf !== null;
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

  /**
   * Versions up to the returned one: the peer `peerNode` (in `state`) has
   * every one of ours (or removed it since). While a copy to it is
   * unconfirmed, what it had before that copy.
   */
  agreedWith(peerNode: string, knownStream: string, knownOffset: number): number {
    const oc = this.outCopy;
    if (oc !== null && oc.peerNode === peerNode) return oc.agreed;
    if (knownStream !== this.streamId) return 0;
    return this.agreement.upTo(knownOffset);
  }

  /** The link's peer may have caught up with our whole stream: the clock is then agreed. */
  refreshAgreement(link: Link): void {
    if (this.outCopy !== null || !link.streaming || link.acked < this.backlog.end) return;
    this.lockStore(); // serve threads: every version issued so far is in the backlog
    try {
      if (link.acked >= this.backlog.end) this.agreement.caughtUp(this.backlog.end, this.hlc.last);
    } finally {
      this.unlockStore();
    }
  }

  /**
   * A full copy was applied: drop the items it did not mention that are
   * not newer than the agreed point (see snapshot.ts), a batch per lock.
   */
  async sweepCopy(ic: IncomingCopy): Promise<void> {
    if (ic.dropUpTo <= 0) {
      ic.release();
      return;
    }
    let cursor = 0;
    this.#sweepOf = ic;
    try {
      while (cursor >= 0 && this.inCopy === ic && !this.#stopped) {
        await new Promise((r) => setImmediate(r)); // first: the caller holds the store lock
        this.lockStore();
        try {
          cursor = ic.sweep(this.engine.store, cursor, 4096);
        } finally {
          this.unlockStore();
        }
      }
    } finally {
      if (this.#sweepOf === ic) this.#sweepOf = null;
      if (cursor < 0) ic.release();
    }
    this.stats.copyItemsDropped += ic.dropped;
    if (ic.dropped > 0) {
      log.debug(
        `replication: full copy applied, ${ic.dropped} items the peer no longer has dropped`,
      );
    }
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
    const now = performance.now();
    const last = (this.#lagTail - 1 + LAG_SAMPLES) % LAG_SAMPLES;
    if (this.#lagHead === this.#lagTail || now - this.#lagTime[last] >= 0.5) {
      this.#lagOffset[this.#lagTail] = this.backlog.end;
      this.#lagTime[this.#lagTail] = now;
      this.#lagTail = (this.#lagTail + 1) % LAG_SAMPLES;
      if (this.#lagTail === this.#lagHead) this.#lagHead = (this.#lagHead + 1) % LAG_SAMPLES;
    } else {
      this.#lagOffset[last] = this.backlog.end; // same moment: extend the sample
    }
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
    const now = performance.now();
    while (this.#lagHead !== this.#lagTail && this.#lagOffset[this.#lagHead] <= offset) {
      this.#lastLagMs = now - this.#lagTime[this.#lagHead];
      this.#lagHead = (this.#lagHead + 1) % LAG_SAMPLES;
    }
  }

  /** Age (ms) of the oldest change the peer has not acknowledged; 0 when caught up. */
  lagMs(): number {
    const link = this.link;
    if (!link || link.acked >= this.backlog.end) return 0;
    while (this.#lagHead !== this.#lagTail && this.#lagOffset[this.#lagHead] <= link.acked) {
      this.#lagHead = (this.#lagHead + 1) % LAG_SAMPLES;
    }
    if (this.#lagHead === this.#lagTail) return 0;
    return Math.round(performance.now() - this.#lagTime[this.#lagHead]);
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

  // --- pairing ---

  /**
   * First pairing attempt, then the background loop. Throws what is a
   * configuration error (wrong secret, not a memrep port, cannot listen).
   */
  async start(): Promise<void> {
    const peer = this.#peerText();
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
    this.#shared?.run().catch((err) => log.warn(`replication: change ring: ${errorText(err)}`));
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

  /**
   * Stop pairing; call it once no client write can run any more (the
   * server and its threads stopped). The peer first gets what it has not
   * applied yet, for at most `drainTimeoutMs` (like repcached's "cleanup");
   * then the link and the listener close.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#closeListener();
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
    this.#poke();
    // A dial in progress may take up to the timeout to give up: do not wait for it.
    await Promise.race([this.#loopDone, delay(100)]);
  }

  /** Give up waiting for the peer in {@linkcode stop} (a second SIGINT/SIGTERM). */
  abandonDrain(): void {
    this.#abandoned = true;
    this.#drainWake?.();
  }

  /** A link finished its initial sync. */
  started(link: Link): void {
    if (this.link !== link) return;
    log.info(`replication: start (peer=${link.peerAddress})`);
  }

  async #loop(): Promise<void> {
    let announce = false;
    while (!this.#stopped) {
      const link = this.link;
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
        if (this.link) continue; // the peer called us meanwhile
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
    const peer = this.#peerText();
    if (announce) log.info(`replication: connect (peer=${peer})`);
    else log.debug(`replication: connect (peer=${peer})`);
    this.#state = "connecting";
    let tlsError = "";
    const conn = await connectWithin(o.peer, o.timeoutMs, o.tls, (err) => {
      this.stats.tlsFailures++;
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
    return this.#adopt(conn, "connector", r.peerNode, r.peer, r.rest, r.keys)
      ? "linked"
      : "refused";
  }

  #failed(peer: string, reason: HandshakeFailure, detail: string): void {
    if (reason === "auth") {
      this.stats.authFailures++;
      log.warn(`replication: refused (peer=${peer}): authentication failed: ${detail}`);
    } else if (reason === "not-memrep") {
      this.stats.badPeers++;
      log.info(`replication: refused (peer=${peer}): not a memrep peer: ${detail}`);
    } else if (reason !== "self") {
      log.debug(`replication: handshake with ${peer} failed: ${reason}: ${detail}`);
    }
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
    const addr = conn.remoteAddr as Deno.NetAddr;
    const peer = `${addr.hostname}:${addr.port}`;
    log.info("replication: accept");
    // Idle connections cannot hold the port: a short deadline, and the newcomer always gets a slot.
    const slot = this.#slots.take(conn, addr.hostname, peer);
    try {
      if (isTlsConn(conn)) {
        await withDeadline(conn.handshake(), ACCEPT_DEADLINE_MS).catch((err) => {
          this.stats.tlsFailures++;
          throw err;
        });
      } else (conn as Deno.TcpConn).setNoDelay(true);
      const ctx = this.#context();
      ctx.timeoutMs = Math.min(ACCEPT_DEADLINE_MS, ctx.timeoutMs);
      ctx.greeted = () => (slot.greeted = true);
      const r = await handshake(conn, "accept", ctx).finally(() => this.#slots.release(slot));
      if (!r.ok) {
        closeQuietly(conn);
        this.#failed(peer, r.reason, r.detail);
        return;
      }
      this.#adopt(conn, "acceptor", r.peerNode, r.peer, r.rest, r.keys);
    } catch (err) {
      closeQuietly(conn);
      log.debug(`replication: accepted connection failed: ${errorText(err)}`);
    }
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
    this.stats.links++;
    // A new period: the next refused or degraded sync write is logged again.
    this.#acks.newPeriod();
    this.#shared?.resetNote();
    this.#closeListener();
    link.done.then((reason) => {
      if (reason !== "shutdown") this.stats.linkDrops++;
      if (reason !== "replaced by a new link" && reason !== "shutdown") {
        log.info(`replication: close (${reason})`);
      } else log.debug(`replication: close (${reason})`);
      if (this.link === link) {
        this.link = null;
        this.#state = "down";
        // Alone now: degraded writes need not wait out their timeout.
        if (this.#options.syncDegrade) this.#acks.release(true);
      }
      this.#publishAcks(true);
      this.#drainWake?.();
      this.#poke();
    });
    link.start(peer, rest);
    this.#publishAcks();
    this.#poke();
    return true;
  }

  #context(): HandshakeContext {
    return {
      nodeId: this.nodeId,
      secret: this.#options.secret,
      timeoutMs: this.#options.timeoutMs,
      state: (): StreamState => ({
        streamId: this.streamId,
        streamEnd: this.backlog.end,
        knownStream: this.peerStream?.id ?? "-",
        knownOffset: this.peerStream?.offset ?? 0,
        items: this.engine.store.stats.currItems,
        hlc: this.hlc.last,
      }),
    };
  }

  #closeListener(): void {
    const l = this.#listener;
    if (!l) return;
    this.#listener = null;
    try {
      l.close();
    } catch { /* closed */ }
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

  /** Resolves at the next {@linkcode #poke} (link up or down, stop). */
  #wait(): Promise<void> {
    this.#signalled ??= new Promise((resolve) => (this.#signal = resolve));
    return this.#signalled;
  }

  #poke(): void {
    const s = this.#signal;
    this.#signal = null;
    this.#signalled = null;
    s?.();
  }

  #peerText(): string {
    const p = this.#options.peer;
    return p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
  }

  // --- stats ---

  /** Append the replication `STAT` lines. */
  writeStats(out: Writer): void {
    const link = this.link;
    const s = this.stats;
    const shared = this.#shared?.syncCounts();
    const state = link ? link.phase : this.#state;
    const lines: Array<[string, string | number]> = [
      ["repl_node_id", this.nodeId],
      ["repl_role", link ? link.role : "none"],
      ["repl_peer", link ? link.peerAddress : this.#peerText()],
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
      ["repl_last_ack_ms", Math.round(this.#lastLagMs * 1000) / 1000],
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
    ];
    for (const [name, value] of lines) statLine(out, name, value);
  }
}

/**
 * Connect (with `tls`: and complete the TLS handshake, trusting `tls.ca`)
 * within `ms`, or null when refused, unreachable, too slow or, reported to
 * `tlsFailed`, when the TLS handshake fails.
 */
async function connectWithin(
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

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
