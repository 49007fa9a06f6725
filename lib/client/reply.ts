/**
 * A complete server reply handed to callers: its own copy of the frame bytes
 * plus the parsed shape as offsets into that copy.
 * @module
 */

import {
  carveCopy,
  decodeAscii,
  isErrorKind,
  Item,
  ITEM_STRIDE,
  parseDecimalBigInt,
  REPLY_KIND_NAME,
  ReplyKind,
  type ReplyKindCode,
  type ReplyParser,
} from "../protocol/mod.ts";

const utf8 = new TextDecoder();

/** One VALUE item of a get reply, decoded for convenience (allocates). */
export interface ValueItem {
  /** The key (UTF-8 decoded). */
  key: string;
  /** Client flags. */
  flags: number;
  /** The value bytes (a view into the reply's bytes). */
  value: Uint8Array;
  /** CAS, for gets/gats. */
  cas?: bigint;
}

/**
 * One reply frame. Offsets are relative to {@linkcode Reply.bytes}; -1 marks
 * absent ranges.
 */
export class Reply {
  /** The raw frame, a copy safe to keep or relay. */
  readonly bytes: Uint8Array;
  /** What the frame is (see `ReplyKind`). */
  readonly kind: ReplyKindCode;
  /** VALUE items, STAT lines or dump lines (1 for VA). */
  readonly count: number;
  /** Data of a VA reply or of the first VALUE item. */
  readonly valueStart: number;
  /** End of that data. */
  readonly valueEnd: number;
  /** Text after the status keyword: error message, version, digits, meta return flags. */
  readonly textStart: number;
  /** End of that text. */
  readonly textEnd: number;
  /** Client flags of the first VALUE item or meta `f` flag (0 when absent). */
  readonly flags: number;
  /** Meta `t` flag: remaining TTL seconds, -1 for never, -2 when absent. */
  readonly ttl: number;
  readonly #casStart: number;
  readonly #casEnd: number;
  readonly #items: Float64Array | undefined;

  /** Copies the frame `buf[start, start + length)` the parser just parsed. */
  constructor(parser: ReplyParser, buf: Uint8Array, start: number, length: number) {
    this.bytes = carveCopy(buf, start, start + length);
    this.kind = parser.kind;
    this.count = parser.count;
    this.valueStart = parser.valueStart < 0 ? -1 : parser.valueStart - start;
    this.valueEnd = parser.valueEnd < 0 ? -1 : parser.valueEnd - start;
    this.textStart = parser.textStart - start;
    this.textEnd = parser.textEnd - start;
    if (this.textStart < 0) this.textStart = this.textEnd = 0;
    this.flags = parser.flags;
    this.ttl = parser.ttl;
    this.#casStart = parser.casStart < 0 ? -1 : parser.casStart - start;
    this.#casEnd = parser.casEnd < 0 ? -1 : parser.casEnd - start;
    const k = parser.kind;
    if (
      parser.count > 0 &&
      (k === ReplyKind.VALUES || k === ReplyKind.STATS || k === ReplyKind.DUMP)
    ) {
      // Keep item offsets, rebased to the copy.
      const n = parser.count * ITEM_STRIDE;
      const items = parser.items.slice(0, n);
      for (let b = 0; b < n; b += ITEM_STRIDE) {
        items[b] -= start;
        items[b + 1] -= start;
        items[b + 3] -= start;
        items[b + 4] -= start;
        if (items[b + 5] >= 0) {
          items[b + 5] -= start;
          items[b + 6] -= start;
        }
      }
      this.#items = items;
    }
  }

  /** The name of {@linkcode kind}, e.g. "STORED", "VA". */
  get kindName(): string {
    return REPLY_KIND_NAME[this.kind] ?? String(this.kind);
  }

  /** True for ERROR, CLIENT_ERROR and SERVER_ERROR. */
  get isError(): boolean {
    return isErrorKind(this.kind);
  }

  /** The value (VA data or first VALUE item) as a view of {@linkcode bytes}, or undefined. */
  get value(): Uint8Array | undefined {
    return this.valueStart < 0 ? undefined : this.bytes.subarray(this.valueStart, this.valueEnd);
  }

  /** The status text (error message, version, meta flags, ...) decoded. */
  get text(): string {
    return decodeAscii(this.bytes, this.textStart, this.textEnd);
  }

  /** The first line of the frame, for messages. */
  get line(): string {
    let e = this.bytes.indexOf(10);
    if (e < 0) e = this.bytes.length;
    if (e > 0 && this.bytes[e - 1] === 13) e--;
    return decodeAscii(this.bytes, 0, Math.min(e, 200));
  }

  /** CAS of the first VALUE item or the meta `c` flag. */
  get cas(): bigint | undefined {
    return this.#casStart < 0
      ? undefined
      : parseDecimalBigInt(this.bytes, this.#casStart, this.#casEnd);
  }

  /** An incr/decr result (NUMBER), else undefined. */
  get number(): bigint | undefined {
    return this.kind === ReplyKind.NUMBER
      ? parseDecimalBigInt(this.bytes, this.textStart, this.textEnd)
      : undefined;
  }

  /**
   * A meta return flag's token, e.g. `metaFlag("t")` → "30"; "" for a flag
   * without token; undefined when absent.
   */
  metaFlag(code: string): string | undefined {
    const c = code.charCodeAt(0);
    const b = this.bytes;
    let i = this.textStart;
    const e = this.textEnd;
    while (i < e) {
      let sp = b.indexOf(32, i);
      if (sp < 0 || sp > e) sp = e;
      if (b[i] === c) return decodeAscii(b, i + 1, sp);
      i = sp + 1;
    }
    return undefined;
  }

  /** Key bytes of item `i` (VALUE key, STAT name, whole dump line). */
  itemKey(i: number): Uint8Array {
    return this.bytes.subarray(this.#at(i, Item.KEY_START), this.#at(i, Item.KEY_END));
  }

  /** Data bytes of item `i` (VALUE data, STAT value). */
  itemValue(i: number): Uint8Array {
    return this.bytes.subarray(this.#at(i, Item.DATA_START), this.#at(i, Item.DATA_END));
  }

  /** Client flags of VALUE item `i`. */
  itemFlags(i: number): number {
    return this.#at(i, Item.FLAGS);
  }

  /** CAS of VALUE item `i`, if the reply carried one. */
  itemCas(i: number): bigint | undefined {
    const s = this.#at(i, Item.CAS_START);
    return s < 0 ? undefined : parseDecimalBigInt(this.bytes, s, this.#at(i, Item.CAS_END));
  }

  /** All VALUE items, decoded (allocates; for tests and tools). */
  items(): ValueItem[] {
    const out: ValueItem[] = [];
    for (let i = 0; i < this.count; i++) {
      const item: ValueItem = {
        key: utf8.decode(this.itemKey(i)),
        flags: this.itemFlags(i),
        value: this.itemValue(i),
      };
      const cas = this.itemCas(i);
      if (cas !== undefined) item.cas = cas;
      out.push(item);
    }
    return out;
  }

  /** STAT lines as a map name → value. */
  stats(): Map<string, string> {
    const out = new Map<string, string>();
    for (let i = 0; i < this.count; i++) {
      const key = this.itemKey(i);
      const value = this.itemValue(i);
      out.set(
        decodeAscii(key, 0, key.length),
        decodeAscii(value, 0, value.length),
      );
    }
    return out;
  }

  #at(i: number, field: number): number {
    const items = this.#items;
    if (items === undefined || i < 0 || i >= this.count) {
      throw new RangeError(`reply has no item ${i}`);
    }
    return items[i * ITEM_STRIDE + field];
  }
}
