/**
 * The authenticated stream of a link with a shared secret: after the
 * handshake every byte travels in records
 *
 * ```
 * <length: u32 big endian> <payload: length bytes> <tag: 32 bytes>
 * tag = HMAC-SHA256(direction key, seq: u64 big endian | length | payload)
 * ```
 * one per write batch (at most {@linkcode RECORD_MAX} bytes, so a copy
 * chunk is one record, and a heartbeat too). `seq` counts the records of
 * one direction from 0 and is not sent: a replayed, reordered, dropped,
 * injected or altered record fails its tag, and a record is delivered to
 * the frame parser only once its tag checked out, so nothing of it is
 * applied before. Each direction has its own key, derived from the secret
 * and both handshake nonces, so one link's records are worthless on
 * another or reflected back. Without a secret the stream stays plain
 * (no records, no cost).
 * @module
 */

import { createHash, createHmac, type Hash, timingSafeEqual } from "node:crypto";
import { Writer } from "../protocol/mod.ts";
import { type Readable, ReadBuffer } from "../transport/mod.ts";

/** Largest payload of one record. */
export const RECORD_MAX = 256 * 1024;
const HEADER = 4;
const TAG = 32;

/** The two keys of a link: one per direction. */
export interface LinkKeys {
  /** Seals what this node sends. */
  send: Uint8Array;
  /** Opens what the peer sends. */
  recv: Uint8Array;
}

/**
 * Keys for a link whose handshake greetings (both nonces and node ids, the
 * acceptor's first) were `greetings`; `connector` tells which side we are.
 */
export function deriveLinkKeys(secret: string, greetings: string, connector: boolean): LinkKeys {
  const session = createHmac("sha256", secret).update(`session\n${greetings}`).digest();
  const toAcceptor = createHmac("sha256", session).update("connector to acceptor").digest();
  const toConnector = createHmac("sha256", session).update("acceptor to connector").digest();
  return connector
    ? { send: toAcceptor, recv: toConnector }
    : { send: toConnector, recv: toAcceptor };
}

/**
 * HMAC-SHA256 of record tags under one key (RFC 2104, keys up to 64
 * bytes): the padded-key states are hashed once and copied per tag, half
 * the cost of a createHmac per record.
 */
class RecordTagger {
  #inner: Hash;
  #outer: Hash;
  #seq = new Uint8Array(8);
  #seqView = new DataView(this.#seq.buffer);

  constructor(key: Uint8Array) {
    const pad = (x: number) => new Uint8Array(64).map((_, i) => (key[i] ?? 0) ^ x);
    this.#inner = createHash("sha256").update(pad(0x36));
    this.#outer = createHash("sha256").update(pad(0x5c));
  }

  /** Tag of record `seq` whose header (length) and payload are given. */
  tag(seq: number, header: Uint8Array, payload: Uint8Array): Uint8Array {
    this.#seqView.setUint32(0, Math.floor(seq / 0x100000000));
    this.#seqView.setUint32(4, seq >>> 0);
    const inner = this.#inner.copy().update(this.#seq).update(header).update(payload).digest();
    return this.#outer.copy().update(inner).digest();
  }
}

/** Seals outgoing bytes into records, in order. */
export class Sealer {
  #tagger: RecordTagger;
  #seq = 0;
  #out = new Writer(RECORD_MAX + HEADER + TAG);

  /** A sealer with this direction's key (32 bytes). */
  constructor(key: Uint8Array) {
    this.#tagger = new RecordTagger(key);
  }

  /**
   * Seal src[start, end) (at most {@linkcode RECORD_MAX} bytes) as the next
   * record; the result is a view, valid until the next call.
   */
  seal(src: Uint8Array, start: number, end: number): Uint8Array {
    const n = end - start;
    if (n > RECORD_MAX || n < 0) throw new RangeError(`record of ${n} bytes`);
    const out = this.#out;
    out.length = 0;
    out.reserve(HEADER + n + TAG);
    new DataView(out.buf.buffer, out.buf.byteOffset).setUint32(0, n);
    out.length = HEADER;
    out.bytes(src, start, end);
    const payload = src.subarray(start, end);
    out.bytes(this.#tagger.tag(this.#seq++, out.buf.subarray(0, HEADER), payload));
    return out.buf.subarray(0, out.length);
  }
}

/**
 * The peer's records as a plain byte stream: `read` delivers only payload
 * bytes whose record's tag checked out. On a bad record it returns null
 * (like end of stream) and says why in {@linkcode failure}.
 */
export class OpenedConn implements Readable {
  /** Why the stream stopped on a bad record ("" otherwise). */
  failure = "";
  #conn: Readable;
  #tagger: RecordTagger;
  #seq = 0;
  #raw: ReadBuffer;
  /** Payload bytes of the checked record at raw.start not delivered yet. */
  #left = 0;

  /** Open `conn`'s records with the peer's key; `primed`: bytes already received. */
  constructor(conn: Readable, key: Uint8Array, primed?: Uint8Array) {
    this.#conn = conn;
    this.#tagger = new RecordTagger(key);
    this.#raw = new ReadBuffer(2 * (RECORD_MAX + HEADER + TAG), primed);
  }

  /** Read checked payload bytes into p; null at end of stream or on a bad record. */
  async read(p: Uint8Array): Promise<number | null> {
    const raw = this.#raw;
    for (;;) {
      if (this.#left > 0) {
        const n = Math.min(p.length, this.#left);
        p.set(raw.buf.subarray(raw.start, raw.start + n));
        raw.start += n;
        this.#left -= n;
        if (this.#left === 0) raw.start += TAG;
        return n;
      }
      const have = raw.end - raw.start;
      let need = HEADER;
      if (have >= HEADER) {
        const header = raw.buf.subarray(raw.start, raw.start + HEADER);
        const n = new DataView(header.buffer, header.byteOffset).getUint32(0);
        if (n > RECORD_MAX) return this.#bad(`record of ${n} bytes`);
        need = HEADER + n + TAG;
        if (have >= need) {
          const payloadStart = raw.start + HEADER;
          const payload = raw.buf.subarray(payloadStart, payloadStart + n);
          const want = this.#tagger.tag(this.#seq++, header, payload);
          const got = raw.buf.subarray(payloadStart + n, payloadStart + n + TAG);
          if (!timingSafeEqual(want, got)) return this.#bad("tag mismatch");
          raw.start = payloadStart;
          this.#left = n;
          if (n === 0) raw.start += TAG;
          continue;
        }
      }
      if (!await raw.fill(this.#conn, need)) return null;
    }
  }

  #bad(why: string): null {
    this.failure = why;
    return null;
  }
}
