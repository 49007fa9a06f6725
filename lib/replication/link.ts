/**
 * One authenticated connection to the peer: sends this node's stream (from
 * the backlog, after a RESUME or with a full copy interleaved), applies the
 * peer's, acknowledges what it applied, and watches the peer with
 * heartbeats: no byte for `timeoutMs` closes the link (a hung or
 * partitioned peer), a closed socket is noticed at once. With a shared
 * secret, both directions travel as authenticated records (seal.ts): a
 * record that fails its tag closes the link before any of it is applied.
 * @module
 */

import { setImmediate } from "node:timers";
import { Writer } from "../protocol/mod.ts";
import { errorText, type Readable, ReadBuffer, writeAll } from "../transport/mod.ts";
import { log } from "../log.ts";
import type { StreamState } from "./handshake.ts";
import { Applied } from "./merge.ts";
import type { Replicator } from "./replicator.ts";
import { type LinkKeys, OpenedConn, RECORD_MAX, Sealer } from "./seal.ts";
import { Snapshot } from "./snapshot.ts";
import { Frame, FrameParser, writeControl } from "./stream.ts";

/** Bytes of full-copy frames added per write (the live stream goes first). */
const COPY_CHUNK = 256 * 1024;
const READ_BUFFER = 256 * 1024;

/** Link phase, as shown in stats. */
export type LinkPhase = "copying" | "up";

/** A live link to the peer. */
export class Link {
  /** The peer's node id. */
  readonly peerNode: string;
  /** "host:port" of the other end. */
  readonly peerAddress: string;
  /** Whether this node dialled (connector) or accepted (acceptor). */
  readonly role: "connector" | "acceptor";
  /** Resolves with the reason once the link is closed. */
  readonly done: Promise<string>;
  /** Our stream offset the peer has applied. */
  acked = 0;
  /** True once closed. */
  closed = false;
  /** True while receiving a full copy from the peer (our data is partial). */
  receivingCopy = false;
  /**
   * Set while this node stops and waits for the peer to catch up: the
   * peer's silence no longer closes the link (the drain has its own bound).
   */
  draining = false;
  #resolveDone!: (reason: string) => void;
  #conn: Deno.Conn;
  #repl: Replicator;
  #keys: LinkKeys | null;
  #sealer: Sealer | null;
  #parser = new FrameParser();
  #control = new Writer(1024);
  #out = new Writer(1 << 20);
  // Sending: next backlog offset to send (-1 before the first RESUME/COPY).
  #cursor = -1;
  #snapshot: Snapshot | null = null;
  #wake: (() => void) | null = null;
  // Receiving: the peer stream we apply and how far.
  #recvStream = "";
  #recvOffset = -1;
  #lastHeard = performance.now();
  #lastSent = performance.now();
  #lastTick = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  #initialSent = false;
  #initialReceived = false;
  #ackDue = false;
  #pingDue = false;

  /**
   * Wrap an authenticated connection (`keys`: the stream is sealed, null:
   * plain). Call {@linkcode start} next.
   */
  constructor(
    conn: Deno.Conn,
    role: "connector" | "acceptor",
    peerNode: string,
    repl: Replicator,
    keys: LinkKeys | null = null,
  ) {
    this.#conn = conn;
    this.#keys = keys;
    this.#sealer = keys ? new Sealer(keys.send) : null;
    this.role = role;
    this.peerNode = peerNode;
    this.#repl = repl;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.peerAddress = `${addr.hostname}:${addr.port}`;
    this.done = new Promise((r) => (this.#resolveDone = r));
  }

  /** Phase for stats. */
  get phase(): LinkPhase {
    return this.#snapshot !== null || this.receivingCopy || !this.#initialReceived
      ? "copying"
      : "up";
  }

  /** True while this node is sending a full copy. */
  get sendingCopy(): boolean {
    return this.#snapshot !== null;
  }

  /** True once our stream flows to the peer (acks mean something). */
  get streaming(): boolean {
    return this.#cursor >= 0 && !this.closed;
  }

  /**
   * Start: decide partial resync or full copy from the peer's state, apply
   * `rest` (bytes that came with the handshake), then run.
   */
  start(peer: StreamState, rest: Uint8Array): void {
    const repl = this.#repl;
    const backlog = repl.backlog;
    if (peer.knownStream === repl.streamId && backlog.holds(peer.knownOffset)) {
      this.#cursor = peer.knownOffset;
      this.acked = peer.knownOffset;
      writeControl(this.#control, "RESUME", repl.streamId, peer.knownOffset);
      repl.stats.partialResyncs++;
      log.debug(
        `replication: partial resync to the peer from offset ${peer.knownOffset} (${
          backlog.end - peer.knownOffset
        } bytes)`,
      );
      this.#initialSent = true;
      repl.confirm(peer.knownOffset); // the peer holds our stream up to there
    } else {
      this.#beginCopy();
    }
    this.#timer = setInterval(() => this.#tick(), Math.max(10, Math.min(100, repl.timeoutMs / 10)));
    this.#readLoop(rest).catch((err) => this.close(`read error: ${errorText(err)}`));
    this.#writeLoop().catch((err) => this.close(`write error: ${errorText(err)}`));
  }

  /** New local changes are in the backlog (or control frames are queued). */
  wake(): void {
    const w = this.#wake;
    if (w) {
      this.#wake = null;
      w();
    }
  }

  /** Close the link (idempotent); `reason` is logged by the replicator. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.#timer);
    try {
      this.#conn.close();
    } catch { /* closed */ }
    this.#snapshot = null;
    this.wake();
    this.#resolveDone(reason);
  }

  #beginCopy(): void {
    const repl = this.#repl;
    this.#cursor = repl.backlog.end;
    this.acked = this.#cursor;
    this.#snapshot = new Snapshot(repl.store, repl.merger, repl.clock.processStartUnix);
    const items = repl.store.stats.currItems;
    writeControl(this.#control, "COPY", repl.streamId, this.#cursor, items, repl.merger.epoch());
    if (items > 0) log.info(`replication: marugoto copying (sending ${items} items)`);
  }

  #tick(): void {
    const now = performance.now();
    const timeout = this.#repl.timeoutMs;
    if (now - this.#lastTick > timeout / 2) {
      // This process did not run for a while (SIGSTOP, a long pause): the silence was ours,
      // and the peer's bytes may be waiting unread. Give it a whole timeout from now.
      this.#lastHeard = now;
    }
    this.#lastTick = now;
    if (now - this.#lastHeard > timeout && !this.draining) {
      this.close(`timeout: nothing from the peer for ${Math.round(now - this.#lastHeard)} ms`);
      return;
    }
    if (now - this.#lastSent >= timeout / 4 && !this.#pingDue) {
      this.#pingDue = true;
      this.wake();
    }
  }

  async #writeLoop(): Promise<void> {
    const repl = this.#repl;
    const backlog = repl.backlog;
    const out = this.#out;
    while (!this.closed) {
      out.length = 0;
      if (this.#cursor < backlog.start) {
        // The backlog overran what the peer has: only a full copy can catch it up.
        repl.stats.backlogOverflows++;
        log.info("replication: backlog overflow, full copy follows");
        this.#beginCopy();
      }
      if (this.#control.length > 0) {
        out.bytes(this.#control.buf, 0, this.#control.length);
        this.#control.length = 0;
      }
      // One ACK and one PING at most, with the latest values, however long the last write took.
      if (this.#ackDue) {
        writeControl(out, "ACK", this.#recvOffset);
        this.#ackDue = false;
      }
      if (this.#pingDue) {
        writeControl(out, "PING", repl.hlc.last);
        this.#pingDue = false;
      }
      const end = backlog.end;
      if (end > this.#cursor) {
        backlog.copyTo(out, this.#cursor, end);
        this.#cursor = end;
      }
      const snap = this.#snapshot;
      let copied = false;
      if (snap !== null && out.length < COPY_CHUNK) {
        repl.lockStore();
        let complete: boolean;
        try {
          complete = snap.fill(out, COPY_CHUNK);
        } finally {
          repl.unlockStore();
        }
        if (complete) {
          writeControl(out, "COPIED", snap.items);
          this.#snapshot = null;
          repl.stats.fullCopiesSent++;
          repl.stats.itemsCopiedSent += snap.items;
          log.debug(
            `replication: full copy sent (${snap.items} items, ${snap.tombstones} tombstones)`,
          );
          this.#initialSent = true;
          copied = true;
          this.#maybeStarted();
        }
      }
      if (out.length === 0) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      this.#lastSent = performance.now();
      await this.#send(out);
      // The copy is sent: with the changes acknowledged, the peer holds our stream up to `acked`.
      if (copied && !this.closed) repl.confirm(this.acked);
      if (out.buf.length > 4 * 1048576) out.reset();
      if (snap !== null && this.#snapshot !== null) {
        // Let clients in between copy chunks even when the write completed at once
        // (setImmediate runs after pending I/O, without setTimeout's clamping).
        await new Promise((r) => setImmediate(r));
      }
    }
  }

  /** Write a batch: as it is, or sealed in records of at most RECORD_MAX bytes. */
  async #send(out: Writer): Promise<void> {
    const sealer = this.#sealer;
    if (sealer === null) {
      await writeAll(this.#conn, out.buf.subarray(0, out.length));
      return;
    }
    for (let off = 0; off < out.length; off += RECORD_MAX) {
      await writeAll(this.#conn, sealer.seal(out.buf, off, Math.min(out.length, off + RECORD_MAX)));
    }
  }

  async #readLoop(rest: Uint8Array): Promise<void> {
    const keys = this.#keys;
    const opened = keys ? new OpenedConn(this.#conn, keys.recv, rest) : null;
    const source: Readable = opened ?? this.#conn;
    const rb = new ReadBuffer(READ_BUFFER, opened ? undefined : rest);
    const parser = this.#parser;
    for (;;) {
      let applied = false;
      // Serve threads share the store: apply under its lock, after their queued changes.
      this.#repl.lockStore();
      try {
        while (rb.start < rb.end) {
          const used = parser.parse(rb.buf, rb.start, rb.end);
          if (used === 0) break;
          if (used < 0) {
            this.close(`protocol error: ${parser.error}`);
            return;
          }
          if (!this.#handle(used)) return;
          if (parser.kind <= Frame.FLUSH) applied = true;
          rb.start += used;
        }
      } finally {
        this.#repl.unlockStore();
      }
      if (applied) this.#applied();
      if (this.closed) return;
      if (!await rb.fill(source, parser.need)) {
        if (opened?.failure) {
          // Altered, injected, replayed or reordered bytes: nothing of them was applied.
          this.#repl.stats.badMacs++;
          log.warn(`replication: bad MAC from ${this.peerAddress}`);
          this.close(`bad MAC: ${opened.failure}`);
        } else this.close("peer closed the link");
        return;
      }
      this.#lastHeard = performance.now();
    }
  }

  /** Apply one parsed frame of `length` bytes; false when the link must stop. */
  #handle(length: number): boolean {
    const p = this.#parser;
    const repl = this.#repl;
    const stats = repl.stats;
    switch (p.kind) {
      case Frame.ITEM:
      case Frame.DELETE:
      case Frame.FLUSH: {
        if (this.#recvOffset < 0) return this.#protocolError("change before RESUME/COPY");
        this.#recvOffset += length;
        this.#count(repl.merger.applyFrame(p), p);
        return true;
      }
      case Frame.COPY_ITEM:
      case Frame.COPY_DELETE:
        if (!this.receivingCopy) return this.#protocolError("copy frame outside a copy");
        if (p.kind === Frame.COPY_ITEM) stats.itemsCopiedReceived++;
        this.#count(repl.merger.applyFrame(p), p);
        return true;
      case Frame.COPY:
        this.#recvStream = p.text;
        this.#recvOffset = p.nums[0];
        this.receivingCopy = true;
        if (repl.link === this) repl.peerStream = null; // partial until COPIED
        if (!repl.merger.adoptEpoch(p.nums[2])) repl.rejectedVersion(p.nums[2], "flush epoch");
        if (p.nums[1] > 0) log.info(`replication: marugoto copying (receiving ${p.nums[1]} items)`);
        return true;
      case Frame.COPIED:
        if (!this.receivingCopy) return this.#protocolError("COPIED outside a copy");
        this.receivingCopy = false;
        stats.fullCopiesReceived++;
        log.debug(`replication: full copy received (${p.nums[0]} items)`);
        this.#publish();
        this.#initialReceived = true;
        this.#maybeStarted();
        return true;
      case Frame.RESUME:
        if (repl.peerStream === null || p.text !== repl.peerStream.id) {
          return this.#protocolError("RESUME of an unknown stream");
        }
        this.#recvStream = p.text;
        this.#recvOffset = p.nums[0];
        this.#initialReceived = true;
        this.#maybeStarted();
        return true;
      case Frame.ACK:
        if (p.nums[0] > this.acked) {
          this.acked = Math.min(p.nums[0], repl.backlog.end);
          repl.acked(this.acked, this.#snapshot !== null);
        }
        return true;
      case Frame.PING:
        if (!repl.hlc.observe(p.nums[0])) repl.rejectedVersion(p.nums[0], "its clock");
        return true;
      case Frame.ERR:
        this.close(`peer refused: ${p.text}`);
        return false;
    }
    return this.#protocolError("unexpected frame");
  }

  #count(result: number, p: FrameParser): void {
    const stats = this.#repl.stats;
    if (result === Applied.CHANGED) stats.changesApplied++;
    else if (result === Applied.IGNORED) stats.changesIgnored++;
    else if (result === Applied.REJECTED) {
      const repl = this.#repl;
      if (repl.hlc.accepts(p.version)) {
        if (p.kind === Frame.FLUSH) repl.rejectedVersion(p.exp, "a flush_all time");
        else repl.rejectedVersion(p.touch, "a touch");
      } else repl.rejectedVersion(p.version, p.kind === Frame.FLUSH ? "a flush_all" : "a change");
    } else stats.applyFailures++;
  }

  /** Stream frames were applied: remember how far, and acknowledge. */
  #applied(): void {
    if (!this.receivingCopy) this.#publish();
    this.#ackDue = true;
    this.wake();
  }

  /** Make our position in the peer's stream the replicator's (for the next partial resync). */
  #publish(): void {
    if (this.#repl.link === this && this.#recvOffset >= 0) {
      this.#repl.peerStream = { id: this.#recvStream, offset: this.#recvOffset };
    }
  }

  #maybeStarted(): void {
    if (this.#initialSent && this.#initialReceived) this.#repl.started(this);
  }

  #protocolError(why: string): false {
    this.close(`protocol error: ${why}`);
    return false;
  }
}
