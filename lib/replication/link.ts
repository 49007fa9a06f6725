/**
 * One authenticated connection to the peer: sends this node's stream (what
 * each batch carries is sender.ts's: the backlog, after a RESUME or with a
 * full copy interleaved), applies the peer's, acknowledges what it applied,
 * and watches the peer with heartbeats: no byte for `timeoutMs` closes the
 * link (a hung or partitioned peer), a closed socket is noticed at once.
 * With a shared secret, both directions travel as authenticated records
 * (seal.ts): a record that fails its tag closes the link before any of it
 * is applied.
 * @module
 */

import { setImmediate } from "node:timers";
import { Writer } from "../protocol/mod.ts";
import { errorText, type RawIo, rawIo, ReadBuffer } from "../transport/mod.ts";
import { log } from "../log.ts";
import type { StreamState } from "./handshake.ts";
import type { LinkOwner } from "./link_owner.ts";
import { Applied } from "./merge.ts";
import { type LinkKeys, OpenedConn, RECORD_MAX, Sealer } from "./seal.ts";
import { Sender } from "./sender.ts";
import { versionTime } from "./versions.ts";
import { IncomingCopy } from "./snapshot.ts";
import { Frame, FrameParser } from "./stream.ts";

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
  /** Deno's read and write ops on `#conn`, without the Conn wrappers' promise per call. */
  #io: RawIo;
  #repl: LinkOwner<Link>;
  #keys: LinkKeys | null;
  #sealer: Sealer | null;
  #parser = new FrameParser();
  #out = new Writer(1 << 20);
  /** What this link sends: our stream from where the peer stands, the control frames due. */
  #sender: Sender;
  /** The full copy this link receives. */
  #inCopy: IncomingCopy | null = null;
  /** Our versions the peer had when the link began (an incoming copy's drop threshold). */
  #agreed = 0;
  #lastTick = performance.now();
  #wake: (() => void) | null = null;
  // Receiving: the peer stream we apply and how far.
  #recvStream = "";
  #recvOffset = -1;
  #lastHeard = performance.now();
  #lastSent = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  #initialReceived = false;
  /** The stream frame just applied is news to pass on (groups). */
  #forwardDue = false;

  /**
   * Wrap an authenticated connection (`keys`: the stream is sealed, null:
   * plain). Call {@linkcode start} next.
   */
  constructor(
    conn: Deno.Conn,
    role: "connector" | "acceptor",
    peerNode: string,
    repl: LinkOwner<Link>,
    keys: LinkKeys | null = null,
  ) {
    this.#conn = conn;
    this.#io = rawIo(conn);
    this.#keys = keys;
    this.#sealer = keys ? new Sealer(keys.send) : null;
    this.role = role;
    this.peerNode = peerNode;
    this.#repl = repl;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.peerAddress = `${addr.hostname}:${addr.port}`;
    this.done = new Promise((r) => (this.#resolveDone = r));
    this.#sender = new Sender(repl, peerNode, () => this.wake());
  }

  /** Our stream offset the peer has applied. */
  get acked(): number {
    return this.#sender.acked;
  }

  /** Phase for stats. */
  get phase(): LinkPhase {
    return this.#sender.copying || this.receivingCopy || !this.#initialReceived ||
        this.#repl.sweeping
      ? "copying"
      : "up";
  }

  /** True while this node is sending a full copy. */
  get sendingCopy(): boolean {
    return this.#sender.copying;
  }

  /** True once our stream flows to the peer (acks mean something). */
  get streaming(): boolean {
    return this.#sender.streaming && !this.closed;
  }

  /**
   * Start: decide partial resync or full copy from the peer's state, apply
   * `rest` (bytes that came with the handshake), then run.
   */
  start(peer: StreamState, rest: Uint8Array): void {
    const repl = this.#repl;
    this.#agreed = repl.agreedWith(this.peerNode, peer.knownStream, peer.knownOffset);
    this.#sender.start(peer, this.#agreed);
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

  /** In a group: what this node holds of the other members' streams moved; HAVE follows. */
  haveMoved(): void {
    if (this.#repl.heard !== undefined && this.#sender.have()) this.wake();
  }

  /** Close the link (idempotent); `reason` is logged by the replicator. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.#timer);
    this.#sender.close(); // the replicator keeps its copy for the next link
    try {
      this.#conn.close();
    } catch { /* closed */ }
    this.wake();
    this.#resolveDone(reason);
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
    this.#repl.refreshAgreement(this);
    if (now - this.#lastHeard > timeout && !this.draining) {
      this.close(`timeout: nothing from the peer for ${Math.round(now - this.#lastHeard)} ms`);
      return;
    }
    if (now - this.#lastSent >= timeout / 4 && this.#sender.ping()) this.wake();
  }

  async #writeLoop(): Promise<void> {
    const sender = this.#sender;
    const out = this.#out;
    while (!this.closed) {
      out.length = 0;
      const copied = sender.fill(out, this.#recvOffset);
      if (out.length === 0) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      this.#lastSent = performance.now();
      await this.#send(out);
      if (out.buf.length > 4 * 1048576) out.reset();
      if (copied) {
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
      await this.#writeAll(out.buf.subarray(0, out.length));
      return;
    }
    for (let off = 0; off < out.length; off += RECORD_MAX) {
      await this.#writeAll(sealer.seal(out.buf, off, Math.min(out.length, off + RECORD_MAX)));
    }
  }

  async #writeAll(data: Uint8Array): Promise<void> {
    const io = this.#io;
    for (let off = 0; off < data.length;) off += await io.write(data.subarray(off));
  }

  async #readLoop(rest: Uint8Array): Promise<void> {
    const keys = this.#keys;
    const opened = keys ? new OpenedConn(this.#conn, keys.recv, rest) : null;
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
          if (this.#forwardDue) {
            this.#forwardDue = false;
            this.#repl.forward?.(
              rb.buf,
              rb.start,
              rb.start + used,
              this.#recvStream,
              this.#recvOffset,
            );
          }
          if (parser.kind <= Frame.FLUSH || parser.kind === Frame.SKIP) applied = true;
          rb.start += used;
        }
      } finally {
        this.#repl.unlockStore();
      }
      // Time spent applying what arrived is ours, not the peer's silence.
      if (applied || this.receivingCopy) this.#lastHeard = performance.now();
      if (applied) this.#applied();
      if (this.closed) return;
      // Plain: straight into the buffer through the op (rb.fill would add a promise per read).
      const got = opened === null
        ? await this.#io.read(rb.space(parser.need))
        : (await rb.fill(opened, parser.need) ? 1 : 0);
      if (opened === null) rb.end += got;
      if (got === 0) {
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
        const ic = this.#inCopy;
        const merger = repl.merger;
        let result: number;
        if (ic === null || p.kind !== Frame.ITEM) {
          result = merger.applyFrame(p);
        } else {
          // Alongside a copy the same floor holds, and what the sender streams it has: keep it.
          result = merger.applyFrame(p, ic.rejectUpTo);
          if (merger.handle >= 0) ic.mark(merger.handle);
        }
        this.#count(result, p);
        if (result === Applied.CHANGED && !this.receivingCopy) {
          // How late the change came: from its version's clock (wall ms) to now.
          const made = p.kind === Frame.ITEM ? Math.max(p.version, p.touch) : p.version;
          repl.applyLags.add(Math.max(0, Date.now() - versionTime(made)));
        }
        this.#forwardDue = merger.fresh && repl.forward !== undefined;
        return true;
      }
      case Frame.COPY_ITEM: {
        const ic = this.#inCopy;
        if (!this.receivingCopy || ic === null) {
          return this.#protocolError("copy frame outside a copy");
        }
        stats.itemsCopiedReceived++;
        const merger = repl.merger;
        this.#count(merger.applyFrame(p, ic.rejectUpTo), p);
        if (merger.handle >= 0) ic.mark(merger.handle);
        return true;
      }
      case Frame.COPY_DELETE:
        if (!this.receivingCopy) return this.#protocolError("copy frame outside a copy");
        this.#count(repl.merger.applyFrame(p), p);
        return true;
      case Frame.COPY:
        this.#startIncoming(p.text, p.nums[0], p.nums[1], p.nums[2], p.nums[3], p.nums[4]);
        return true;
      case Frame.MARK:
        if (!this.receivingCopy) return this.#protocolError("MARK outside a copy");
        this.#sender.copyMarked(p.nums[0]);
        this.wake();
        return true;
      case Frame.SKIP:
        if (this.#recvOffset < 0) return this.#protocolError("SKIP before RESUME/COPY");
        this.#recvOffset += p.nums[0];
        return true;
      case Frame.KNOWN: {
        const ic = this.#inCopy;
        if (!this.receivingCopy || ic === null) return this.#protocolError("KNOWN outside a copy");
        ic.learn({ member: p.nums[0], id: p.text, offset: p.nums[1] });
        return true;
      }
      case Frame.COPIED: {
        const ic = this.#inCopy;
        if (!this.receivingCopy || ic === null) return this.#protocolError("COPIED outside a copy");
        this.receivingCopy = false;
        const first = !ic.complete;
        ic.complete = true;
        if (first) stats.fullCopiesReceived++;
        log.debug(`replication: full copy received (${p.nums[0]} items)`);
        this.#sender.copyReceived(ic.id);
        this.wake();
        this.#publish();
        this.#initialReceived = true;
        this.#maybeStarted();
        if (first) {
          repl.sweepCopy(ic).catch((err) =>
            log.warn(`replication: sweep failed: ${errorText(err)}`)
          );
          repl.copied?.(ic.known);
        }
        return true;
      }
      case Frame.COPY_ACK:
        this.#sender.copyAcked(p.nums[0]);
        this.wake();
        return true;
      case Frame.COPY_DONE:
        if (this.#sender.copyDone(p.nums[0])) this.#maybeStarted();
        return true;
      case Frame.HAVE:
        // A run held for the peer may be left out now.
        if (this.#sender.peerHas(p.nums[0], p.text, p.nums[1], p.nums[2] === 1)) this.wake();
        return true;
      case Frame.RESUME: {
        const ic = repl.inCopy;
        if (ic !== null && !ic.complete && ic.stream === p.text) {
          // The peer forgot the copy we were in the middle of: only a new one can complete us.
          if (repl.link === this) repl.peerStream = null;
          return this.#protocolError("RESUME in the middle of a full copy");
        }
        if (repl.peerStream === null || p.text !== repl.peerStream.id) {
          return this.#protocolError("RESUME of an unknown stream");
        }
        this.#recvStream = p.text;
        this.#recvOffset = p.nums[0];
        this.#initialReceived = true;
        this.#maybeStarted();
        return true;
      }
      case Frame.ACK:
        this.#sender.peerAcked(p.nums[0]);
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

  /**
   * COPY: a full copy from stream `stream` begins at its `offset`, or the
   * one we were receiving goes on (same stream and id).
   */
  #startIncoming(
    stream: string,
    offset: number,
    items: number,
    epoch: number,
    agreed: number,
    id: number,
  ): void {
    const repl = this.#repl;
    if (!repl.hlc.accepts(agreed)) {
      // A floor beyond any sane version would refuse every copied item we lack.
      repl.rejectedVersion(agreed, "a copy's agreed point");
      agreed = 0;
    }
    let ic = repl.inCopy;
    if (ic === null || ic.stream !== stream || ic.id !== id) {
      ic = new IncomingCopy(stream, id, this.#agreed, agreed);
      repl.inCopy = ic;
      if (items > 0) log.info(`replication: marugoto copying (receiving ${items} items)`);
    } else {
      // The copy goes on (or, when its CDONE was lost, its tail comes again).
      log.info(`replication: marugoto copying (receiving, resumed at stream offset ${offset})`);
    }
    this.#inCopy = ic;
    this.#recvStream = stream;
    this.#recvOffset = offset;
    this.receivingCopy = true;
    // Published at once: a new link names this point, so the sender can go on from it.
    this.#publish();
    if (!repl.merger.adoptEpoch(epoch)) repl.rejectedVersion(epoch, "flush epoch");
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
    this.#publish();
    this.#repl.heard?.();
    this.#sender.ack();
    this.wake();
  }

  /** Make our position in the peer's stream the replicator's (for the next partial resync). */
  #publish(): void {
    if (this.#repl.link === this && this.#recvOffset >= 0) {
      this.#repl.peerStream = { id: this.#recvStream, offset: this.#recvOffset };
    }
  }

  #maybeStarted(): void {
    if (this.#sender.initialSent && this.#initialReceived) this.#repl.started(this);
  }

  #protocolError(why: string): false {
    this.close(`protocol error: ${why}`);
    return false;
  }
}
