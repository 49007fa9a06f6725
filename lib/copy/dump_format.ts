/**
 * The memrep dump file format ("MRD1"), written by
 * `memrep replicate --from H:P --dump FILE` and read by `--restore FILE`.
 *
 * A dump is a stream: written and read front to back in one pass, never
 * held in memory. All integers are big-endian and unsigned.
 *
 * ```text
 * file    = header record* end-record
 * header  = "MRD1"                 4 bytes: magic, the "1" is the format version
 *           u32  meta length M
 *           M bytes                UTF-8 JSON: {"created": <unix s>, "source": "<host:port>", "tool": "memrep"}
 *           u32  CRC-32 of the M bytes
 * record  = u32  body length L     at most 1 GiB + 64
 *           u32  CRC-32 of the body
 *           L bytes body
 * body    = u8   type              1 = item, 2 = end
 *   item:   u8   reserved (0)
 *           u16  key length K      1..65535 (memcached keys are <= 250 bytes; binary keys allowed)
 *           u32  client flags
 *           u64  expiry            absolute unix time in seconds; 0 = never expires
 *           K bytes key
 *           L - 16 - K bytes value
 *   end:    u8   reserved (0)
 *           u64  number of item records before it
 * ```
 *
 * CRC-32 is the IEEE polynomial (as zlib, PNG, `gzip`). Readers check every
 * record's CRC and stop at the first bad one, naming the item index (0-based
 * count of good items before it) and byte offset; a file that ends before the
 * end record (or whose end record's count disagrees) is reported truncated.
 * Items are stored with absolute expiry so a dump restored later skips what
 * has expired meanwhile and keeps the rest's remaining lifetime.
 * @module
 */

import { crc32 } from "./crc32.ts";

/** File magic; the trailing "1" is the format version. */
export const DUMP_MAGIC = "MRD1";
/** Record type: one item. */
export const RECORD_ITEM = 1;
/** Record type: end of dump, with the item count. */
export const RECORD_END = 2;
/** Bytes of an item body before the key. */
export const ITEM_FIXED = 16;
/** Largest record body a reader accepts. */
export const MAX_RECORD = (1 << 30) + 64;

const MAGIC_BYTES = new TextEncoder().encode(DUMP_MAGIC);
const FLUSH_AT = 1 << 20;

/** Where bytes go: a file, stdout... */
export interface ByteSink {
  /** Writes some of `p`, returning how many bytes (like Deno.FsFile.write). */
  write(p: Uint8Array): Promise<number>;
}

/** Where bytes come from. */
export interface ByteSource {
  /** Reads into `p`; null at end of stream (like Deno.FsFile.read). */
  read(p: Uint8Array): Promise<number | null>;
}

/** Header metadata of a dump. */
export interface DumpMeta {
  /** Unix seconds when the dump was started. */
  created: number;
  /** Where the items came from (`host:port`). */
  source: string;
  /** Always "memrep". */
  tool?: string;
}

/** One item as read from a dump. Views are valid until the next item is read. */
export interface DumpItem {
  /** Key bytes. */
  key: Uint8Array;
  /** Value bytes. */
  value: Uint8Array;
  /** Client flags. */
  flags: number;
  /** Absolute expiry, unix seconds; 0 = never. */
  exp: number;
}

/** A dump that cannot be read further: corrupted, truncated or not a dump. */
export class DumpError extends Error {
  /** Good items read before the break. */
  readonly itemIndex: number;
  /** Byte offset in the file where the bad record (or the cut) starts. */
  readonly offset: number;

  /** Builds the error; the message names the item index and offset. */
  constructor(message: string, itemIndex: number, offset: number) {
    super(`${message} at item ${itemIndex} (byte offset ${offset})`);
    this.name = "DumpError";
    this.itemIndex = itemIndex;
    this.offset = offset;
  }
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

function getU32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function putU64(b: Uint8Array, o: number, v: number): void {
  putU32(b, o, Math.floor(v / 0x100000000));
  putU32(b, o + 4, v >>> 0);
}

function getU64(b: Uint8Array, o: number): number {
  return getU32(b, o) * 0x100000000 + getU32(b, o + 4);
}

/** Streams items into a dump; buffered, one write per megabyte. */
export class DumpWriter {
  readonly #sink: ByteSink;
  #buf = new Uint8Array(FLUSH_AT + 65536);
  #len = 0;
  #count = 0;
  #ended = false;

  /** Starts a dump on `sink`; call {@linkcode writeHeader} first. */
  constructor(sink: ByteSink) {
    this.#sink = sink;
  }

  /** Items written so far. */
  get count(): number {
    return this.#count;
  }

  /** Writes the magic and metadata. */
  async writeHeader(meta: DumpMeta): Promise<void> {
    const json = new TextEncoder().encode(JSON.stringify({ ...meta, tool: "memrep" }));
    this.#reserve(12 + json.length);
    this.#buf.set(MAGIC_BYTES, this.#len);
    putU32(this.#buf, this.#len + 4, json.length);
    this.#buf.set(json, this.#len + 8);
    putU32(this.#buf, this.#len + 8 + json.length, crc32(json));
    this.#len += 12 + json.length;
    await this.#maybeFlush();
  }

  /**
   * Appends one item (`exp`: absolute unix seconds, 0 = never). Buffered:
   * a write happens once a megabyte has collected.
   */
  async add(key: Uint8Array, value: Uint8Array, flags: number, exp: number): Promise<void> {
    if (key.length === 0 || key.length > 0xffff) {
      throw new RangeError("dump keys are 1..65535 bytes");
    }
    const body = ITEM_FIXED + key.length + value.length;
    this.#reserve(8 + body);
    const b = this.#buf;
    const at = this.#len;
    const o = at + 8;
    b[o] = RECORD_ITEM;
    b[o + 1] = 0;
    b[o + 2] = key.length >>> 8;
    b[o + 3] = key.length;
    putU32(b, o + 4, flags >>> 0);
    putU64(b, o + 8, Math.max(0, exp));
    b.set(key, o + ITEM_FIXED);
    b.set(value, o + ITEM_FIXED + key.length);
    putU32(b, at, body);
    putU32(b, at + 4, crc32(b, o, o + body));
    this.#len = o + body;
    this.#count++;
    if (this.#len >= FLUSH_AT) await this.#flush();
  }

  /** Writes the end record and flushes. The sink is not closed. */
  async end(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#reserve(18);
    const b = this.#buf;
    const at = this.#len;
    b[at + 8] = RECORD_END;
    b[at + 9] = 0;
    putU64(b, at + 10, this.#count);
    putU32(b, at, 10);
    putU32(b, at + 4, crc32(b, at + 8, at + 18));
    this.#len += 18;
    await this.#flush();
  }

  /** Writes out what is buffered (without ending the dump). */
  async flush(): Promise<void> {
    await this.#flush();
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  async #maybeFlush(): Promise<void> {
    if (this.#len >= FLUSH_AT) await this.#flush();
  }

  async #flush(): Promise<void> {
    const b = this.#buf;
    const n = this.#len;
    let off = 0;
    while (off < n) off += await this.#sink.write(b.subarray(off, n));
    this.#len = 0;
    if (b.length > 4 * FLUSH_AT) this.#buf = new Uint8Array(FLUSH_AT + 65536);
  }
}

/** Streams items out of a dump, checking every record. */
export class DumpReader {
  readonly #source: ByteSource;
  #buf = new Uint8Array(FLUSH_AT);
  #start = 0;
  #end = 0;
  #offset = 0; // file offset of buf[#start]
  #eof = false;
  #count = 0;
  #meta: DumpMeta | undefined;
  #done = false;

  /** Reads from `source`; call {@linkcode readHeader} first. */
  constructor(source: ByteSource) {
    this.#source = source;
  }

  /** Items read so far. */
  get count(): number {
    return this.#count;
  }

  /** File offset of the next unread byte. */
  get offset(): number {
    return this.#offset;
  }

  /** Header metadata, after {@linkcode readHeader}. */
  get meta(): DumpMeta | undefined {
    return this.#meta;
  }

  /** Reads and checks the magic and metadata. */
  async readHeader(): Promise<DumpMeta> {
    if (!await this.#fill(8)) {
      throw new DumpError(`not a memrep dump (file shorter than its header)`, 0, 0);
    }
    const b = this.#buf;
    const s = this.#start;
    const magic = String.fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3]);
    if (magic !== DUMP_MAGIC) {
      if (magic.startsWith("MRD")) {
        throw new DumpError(
          `unsupported dump format version '${magic}' (this memrep reads ${DUMP_MAGIC})`,
          0,
          0,
        );
      }
      throw new DumpError(`not a memrep dump (bad magic)`, 0, 0);
    }
    const m = getU32(b, s + 4);
    if (m > 1 << 20) throw new DumpError("corrupt dump header (metadata too long)", 0, 4);
    if (!await this.#fill(12 + m)) throw new DumpError("truncated dump header", 0, 0);
    const bb = this.#buf;
    const ss = this.#start;
    if (crc32(bb, ss + 8, ss + 8 + m) !== getU32(bb, ss + 8 + m)) {
      throw new DumpError("corrupt dump header (checksum mismatch)", 0, 8);
    }
    let meta: DumpMeta;
    try {
      meta = JSON.parse(new TextDecoder().decode(bb.subarray(ss + 8, ss + 8 + m)));
    } catch {
      throw new DumpError("corrupt dump header (metadata is not JSON)", 0, 8);
    }
    this.#consume(12 + m);
    this.#meta = meta;
    return meta;
  }

  /**
   * The next item, or undefined after the end record. Throws
   * {@linkcode DumpError} on a bad checksum, an impossible length, or a
   * file that stops before its end record.
   */
  async next(): Promise<DumpItem | undefined> {
    if (this.#done) return undefined;
    if (!await this.#fill(8)) {
      const what = this.#end > this.#start
        ? "truncated dump (cut inside a record header)"
        : "truncated dump (no end record)";
      throw new DumpError(what, this.#count, this.#offset);
    }
    let b = this.#buf;
    let s = this.#start;
    const len = getU32(b, s);
    if (len < 10 || len > MAX_RECORD) {
      throw new DumpError(
        `corrupt dump (impossible record length ${len})`,
        this.#count,
        this.#offset,
      );
    }
    if (!await this.#fill(8 + len)) {
      throw new DumpError("truncated dump (cut inside a record)", this.#count, this.#offset);
    }
    b = this.#buf;
    s = this.#start;
    const o = s + 8;
    if (crc32(b, o, o + len) !== getU32(b, s + 4)) {
      throw new DumpError("corrupt dump (checksum mismatch)", this.#count, this.#offset);
    }
    const type = b[o];
    if (type === RECORD_END) {
      const n = getU64(b, o + 2);
      if (n !== this.#count) {
        throw new DumpError(
          `corrupt dump (end record counts ${n} items)`,
          this.#count,
          this.#offset,
        );
      }
      this.#consume(8 + len);
      this.#done = true;
      return undefined;
    }
    if (type !== RECORD_ITEM || len < ITEM_FIXED + 1) {
      throw new DumpError(`corrupt dump (unknown record type ${type})`, this.#count, this.#offset);
    }
    const keyLen = (b[o + 2] << 8) | b[o + 3];
    if (keyLen === 0 || ITEM_FIXED + keyLen > len) {
      throw new DumpError(`corrupt dump (bad key length ${keyLen})`, this.#count, this.#offset);
    }
    const item: DumpItem = {
      flags: getU32(b, o + 4),
      exp: getU64(b, o + 8),
      key: b.subarray(o + ITEM_FIXED, o + ITEM_FIXED + keyLen),
      value: b.subarray(o + ITEM_FIXED + keyLen, o + len),
    };
    this.#consume(8 + len);
    this.#count++;
    return item;
  }

  /** True once the end record was read. */
  get done(): boolean {
    return this.#done;
  }

  #consume(n: number): void {
    this.#start += n;
    this.#offset += n;
  }

  /** Makes `n` bytes available at #start; false when the stream ends first. */
  async #fill(n: number): Promise<boolean> {
    while (this.#end - this.#start < n) {
      if (this.#eof) return false;
      if (this.#buf.length - this.#start < n || this.#buf.length - this.#end < 65536) {
        const avail = this.#end - this.#start;
        const size = Math.max(this.#buf.length, n + 65536);
        const next = size > this.#buf.length ? new Uint8Array(size) : this.#buf;
        if (next === this.#buf) this.#buf.copyWithin(0, this.#start, this.#end);
        else next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
        this.#start = 0;
        this.#end = avail;
      }
      const r = await this.#source.read(this.#buf.subarray(this.#end));
      if (r === null) this.#eof = true;
      else this.#end += r;
    }
    return true;
  }
}
