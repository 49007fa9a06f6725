/**
 * `--repl-sync` on a connection: the replies to writes wait until the peer
 * applied them, and the replies of writes it did not confirm in time are
 * replaced by an error (the item stays stored on this node).
 * @module
 */

import {
  ascii,
  BINARY_RESPONSE_MAGIC,
  BinaryStatus,
  REPLY,
  writeBinaryHeader,
  type Writer,
} from "../protocol/mod.ts";

/**
 * `--repl-sync`: replies to writes wait until the peer applied them.
 * Positions are offsets in the thread's change stream; they grow with
 * every change this thread makes, and only then.
 */
export interface SyncBarrier {
  /** Position just after the changes made so far. */
  position(): number;
  /**
   * Wait (bounded) until the peer applied the changes up to `target`;
   * `writes` replies wait for it. Resolves with the position the peer is
   * known to have applied: a write that ends after it was not confirmed.
   */
  wait(target: number, writes: number): Promise<number> | number;
  /** `writes` replies were answered with an error: the peer did not confirm them. */
  refused(writes: number): void;
}

const SERVER_ERROR = ascii("SERVER_ERROR");

/** Text of the binary error that replaces an unconfirmed --repl-sync write's reply. */
const PEER_UNAVAILABLE = ascii("replication peer unavailable");

/** Replace the binary reply at copy[at] by a "temporary failure" for the same opcode and opaque. */
function refuseBinary(out: Writer, copy: Uint8Array, at: number): void {
  const opaque = ((copy[at + 12] << 24) | (copy[at + 13] << 16) | (copy[at + 14] << 8) |
    copy[at + 15]) >>> 0;
  writeBinaryHeader(
    out,
    copy[at + 1],
    BinaryStatus.ETMPFAIL,
    opaque,
    0,
    0,
    0,
    PEER_UNAVAILABLE.length,
  );
  out.bytes(PEER_UNAVAILABLE);
}

/**
 * The reply at buf[at] is an error (a write's own error, not an
 * acknowledgement): a text SERVER_ERROR or a binary packet with a status.
 */
function isErrorReply(buf: Uint8Array, at: number): boolean {
  if (buf[at] === BINARY_RESPONSE_MAGIC) return buf[at + 6] !== 0 || buf[at + 7] !== 0;
  if (buf.length - at < SERVER_ERROR.length) return false;
  for (let i = 0; i < SERVER_ERROR.length; i++) if (buf[at + i] !== SERVER_ERROR[i]) return false;
  return true;
}

/** The write replies of one batch that wait for the peer. */
export class SyncReplies {
  #barrier: SyncBarrier;
  /** (reply start, reply end, stream position) of each write of the batch. */
  #writes: number[] = [];
  #position = 0;
  #at = 0;

  /** Replies of this connection wait on `barrier`. */
  constructor(barrier: SyncBarrier) {
    this.#barrier = barrier;
  }

  /** Call before executing a request whose reply starts at `at`. */
  before(at: number): void {
    this.#position = this.#barrier.position();
    this.#at = at;
  }

  /** Call after it: a write that answered (not noreply/quiet) waits for the peer. */
  after(end: number): void {
    const position = this.#barrier.position();
    if (position !== this.#position && end > this.#at) this.#writes.push(this.#at, end, position);
  }

  /** The replies from offset `at` on were dropped (memcached's cull): forget their writes. */
  cut(at: number): void {
    const writes = this.#writes;
    let n = writes.length;
    while (n > 0 && writes[n - 3] >= at) n -= 3;
    writes.length = n;
  }

  /**
   * Wait until the peer confirmed the batch's writes (bounded); rewrite the
   * replies of those it did not. Returns where offset `keep` (a reply
   * boundary, or -1) of `out` is now.
   */
  async confirm(out: Writer, keep: number): Promise<number> {
    const writes = this.#writes;
    if (writes.length === 0) return keep;
    const target = writes[writes.length - 1];
    const w = this.#barrier.wait(target, writes.length / 3);
    const applied = typeof w === "number" ? w : await w;
    if (applied < target) {
      const copy = out.buf.slice(0, out.length);
      let from = 0, refused = 0, shift = 0;
      out.length = 0;
      for (let i = 0; i < writes.length; i += 3) {
        // An error reply stays as it is (a too-large set also dropped the old item).
        if (writes[i + 2] <= applied || isErrorReply(copy, writes[i])) continue;
        out.bytes(copy, from, writes[i]);
        const start = out.length;
        if (copy[writes[i]] === BINARY_RESPONSE_MAGIC) refuseBinary(out, copy, writes[i]);
        else out.bytes(REPLY.REPL_PEER_UNAVAILABLE);
        if (writes[i + 1] <= keep) shift += out.length - start - (writes[i + 1] - writes[i]);
        from = writes[i + 1];
        refused++;
      }
      out.bytes(copy, from, copy.length);
      this.#barrier.refused(refused);
      if (keep >= 0) keep += shift;
    }
    writes.length = 0;
    return keep;
  }
}
