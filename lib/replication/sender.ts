/**
 * What one link sends the peer: this node's stream from where the peer
 * stands. At the start that is a partial resync from the backlog (RESUME),
 * the full copy the peer was receiving, resumed, or a new full copy with
 * the live stream interleaved; later a new copy whenever the backlog
 * overran what the peer has. Each write batch carries the control frames
 * due (ACK, PING, CACK, HAVE), the backlog since the last batch and, while
 * a copy is sent, its next chunk. link.ts does the socket I/O and reads
 * the peer's frames; those about our stream (ACK, CACK, CDONE, HAVE) come
 * here.
 * @module
 */

import { Writer } from "../protocol/mod.ts";
import { log } from "../log.ts";
import type { StreamState } from "./handshake.ts";
import type { LinkOwner } from "./link_owner.ts";
import { RelayFilter } from "./relay.ts";
import { COPY_CHUNK, OutgoingCopy, Snapshot } from "./snapshot.ts";
import { writeControl } from "./stream.ts";

function writeSkip(out: Writer, n: number): void {
  writeControl(out, "SKIP", n);
}

/** The sending half of one link (see the module doc). */
export class Sender {
  /** Our stream offset the peer has applied. */
  acked = 0;
  #repl: LinkOwner<unknown>;
  #peerNode: string;
  #control = new Writer(1024);
  // Next backlog offset to send (-1 before the first RESUME/COPY).
  #cursor = -1;
  /** The full copy this link sends (the replicator's outCopy while it is ours). */
  #copy: OutgoingCopy | null = null;
  #initialSent = false;
  #ackDue = false;
  #pingDue = false;
  /** Latest MARK of an incoming copy to acknowledge (0: none due). */
  #copyAckDue = 0;
  /** Our HAVE frames are due (groups): what we hold of the others' streams moved. */
  #haveDue: boolean;
  /** Which passed-on changes the peer gets (groups). */
  #relay: RelayFilter;

  /** The sender to `peerNode`; `wake` starts the link's next write batch. */
  constructor(repl: LinkOwner<unknown>, peerNode: string, wake: () => void) {
    this.#repl = repl;
    this.#peerNode = peerNode;
    this.#haveDue = repl.heard !== undefined;
    this.#relay = new RelayFilter(repl.index, repl.timeoutMs, wake);
  }

  /** True while this link sends a full copy. */
  get copying(): boolean {
    return this.#copy !== null;
  }

  /** True once our stream flows to the peer (RESUME or COPY sent). */
  get streaming(): boolean {
    return this.#cursor >= 0;
  }

  /** True once the peer has our stream's start: resumed, or its full copy applied. */
  get initialSent(): boolean {
    return this.#initialSent;
  }

  /**
   * Decide from the peer's state (`agreed`: our versions it had) how it
   * catches up: the copy it was receiving goes on, a partial resync from
   * the backlog, or a new full copy.
   */
  start(peer: StreamState, agreed: number): void {
    const repl = this.#repl;
    const backlog = repl.backlog;
    const holds = peer.knownStream === repl.streamId && backlog.holds(peer.knownOffset);
    const pending = repl.outCopy !== null && repl.outCopy.peerNode === this.#peerNode
      ? repl.outCopy
      : null;
    if (pending !== null && holds && peer.knownOffset >= pending.startOffset) {
      // The peer is that copy's receiver and we still hold the stream since: go on with it.
      pending.resume();
      this.#copy = pending;
      this.#cursor = peer.knownOffset;
      this.acked = peer.knownOffset;
      this.#writeCopyHeader(pending);
      repl.stats.copyResumes++;
      log.info(
        `replication: marugoto copying (resuming after ${pending.snapshot.items} items, stream from offset ${peer.knownOffset})`,
      );
    } else if (pending === null && holds) {
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
      this.#beginCopy(agreed);
    }
  }

  /** An ACK is due (stream frames were applied; it carries the offset the batch is written at). */
  ack(): void {
    this.#ackDue = true;
  }

  /** A PING is due; false when one already is. */
  ping(): boolean {
    if (this.#pingDue) return false;
    this.#pingDue = true;
    return true;
  }

  /** Our HAVE frames are due (groups); false when they already are. */
  have(): boolean {
    if (this.#haveDue) return false;
    this.#haveDue = true;
    return true;
  }

  /** The peer's full copy to us reached MARK `mark`: a CACK is due. */
  copyMarked(mark: number): void {
    this.#copyAckDue = mark;
  }

  /** The peer's full copy `id` to us is complete: CDONE goes next. */
  copyReceived(id: number): void {
    writeControl(this.#control, "CDONE", id);
  }

  /** ACK: the peer applied our stream up to `offset`. */
  peerAcked(offset: number): void {
    if (offset > this.acked) {
      this.acked = Math.min(offset, this.#repl.backlog.end);
      this.#repl.acked(this.acked, this.#copy !== null);
    }
  }

  /** CACK: the peer applied our copy up to MARK `mark`. */
  copyAcked(mark: number): void {
    this.#copy?.acked(mark);
  }

  /** CDONE of copy `id`; true when it completes the copy this link sends. */
  copyDone(id: number): boolean {
    const repl = this.#repl;
    const copy = this.#copy;
    if (copy === null || copy.id !== id || !copy.generated) return false; // a replaced copy's
    this.#copy = null;
    if (repl.outCopy === copy) repl.outCopy = null;
    repl.stats.fullCopiesSent++;
    repl.stats.itemsCopiedSent += copy.snapshot.items;
    log.debug(
      `replication: full copy sent (${copy.snapshot.items} items, ${copy.snapshot.tombstones} tombstones)`,
    );
    this.#initialSent = true;
    // The peer applied the copy: with the changes acknowledged, it holds our stream up to
    // `acked` (sync writes waiting behind the copy are confirmed now).
    repl.confirm(this.acked);
    return true;
  }

  /** HAVE from the peer (groups); true when a run held for it may now be left out. */
  peerHas(member: number, stream: string, offset: number, held: boolean): boolean {
    this.#relay.report(member, stream, offset, held);
    return this.#cursor < this.#repl.backlog.end;
  }

  /** The link closed: no more wake-ups, and the copy stays the replicator's for the next link. */
  close(): void {
    this.#relay.close();
    this.#copy = null;
  }

  /**
   * Write the next batch into `out` (empty: nothing to send); `recvOffset`
   * is the peer's stream offset an ACK names. True when it carries a copy
   * chunk and more are to come.
   */
  fill(out: Writer, recvOffset: number): boolean {
    const repl = this.#repl;
    const backlog = repl.backlog;
    if (this.#cursor < backlog.start) {
      // The backlog overran what the peer has: only a full copy can catch it up.
      repl.stats.backlogOverflows++;
      log.info("replication: backlog overflow, full copy follows");
      this.#beginCopy(repl.agreedWith(this.#peerNode, repl.streamId, this.acked));
    }
    if (this.#control.length > 0) {
      out.bytes(this.#control.buf, 0, this.#control.length);
      this.#control.length = 0;
    }
    // One ACK and one PING at most, with the latest values, however long the last write took.
    if (this.#ackDue) {
      writeControl(out, "ACK", recvOffset);
      this.#ackDue = false;
    }
    if (this.#pingDue) {
      writeControl(out, "PING", repl.hlc.last);
      this.#pingDue = false;
    }
    if (this.#copyAckDue > 0) {
      writeControl(out, "CACK", this.#copyAckDue);
      this.#copyAckDue = 0;
    }
    if (this.#haveDue) this.#relay.writeHave(out, repl.knownStreams!());
    this.#haveDue = false;
    const end = backlog.end;
    if (end > this.#cursor) {
      // A group: what the peer has of the changes we pass on goes as a SKIP (relay.ts).
      this.#cursor = backlog.sendTo(out, this.#cursor, end, this.#relay, writeSkip);
    }
    const copy = this.#copy;
    // At most COPY_WINDOW chunks unacknowledged: heartbeats and the stream never queue
    // behind more, and a dropped link loses little.
    if (copy === null || copy.generated || !copy.canSend || out.length >= COPY_CHUNK) return false;
    const before = out.length;
    repl.lockStore();
    let complete: boolean;
    try {
      complete = copy.snapshot.fill(out, COPY_CHUNK);
    } finally {
      repl.unlockStore();
    }
    if (complete) {
      for (const k of copy.known) writeControl(out, "KNOWN", k.member, k.id, k.offset);
      writeControl(out, "COPIED", copy.snapshot.items);
      copy.generated = true;
    } else writeControl(out, "MARK", copy.mark());
    repl.stats.copyBytesSent += out.length - before;
    return !complete;
  }

  /** A new full copy (replacing any unfinished one); `agreed` goes with it. */
  #beginCopy(agreed: number): void {
    const repl = this.#repl;
    this.#cursor = repl.backlog.end;
    this.acked = this.#cursor;
    const snap = new Snapshot(repl.store, repl.merger, repl.clock.processStartUnix);
    const copy = new OutgoingCopy(
      this.#peerNode,
      ++repl.copyIds,
      this.#cursor,
      agreed,
      snap,
      repl.knownStreams?.(),
    );
    repl.outCopy = copy;
    this.#copy = copy;
    this.#writeCopyHeader(copy);
    repl.copyBegun();
    const items = repl.store.stats.currItems;
    if (items > 0) log.info(`replication: marugoto copying (sending ${items} items)`);
  }

  #writeCopyHeader(copy: OutgoingCopy): void {
    const repl = this.#repl;
    const items = repl.store.stats.currItems;
    writeControl(
      this.#control,
      "COPY",
      repl.streamId,
      this.#cursor,
      items,
      repl.merger.epoch(),
      copy.agreed,
      copy.id,
    );
  }
}
