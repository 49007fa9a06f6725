/**
 * The parsed request both parsers fill (text and meta in parser.ts, binary
 * in binary.ts) and the server, the proxy and the copier read: offsets into
 * the read buffer plus the command's numbers, one per connection, reused.
 * @module
 */

import { base64Decode, MAX_KEY_LENGTH } from "./keys.ts";
import { Op, type OpCode } from "./ops.ts";

/** Result of a request parser (text or binary) when the connection must be closed. */
export const PARSE_CLOSE: number = -1;

/**
 * One parsed request. A connection owns one and reuses it for every
 * command: all positions are offsets into the buffer given to the parser,
 * valid until that buffer is compacted.
 */
export class Request {
  /** What to do; {@linkcode Op.ERROR} when {@linkcode error} must be sent. */
  op: OpCode = Op.ERROR;
  /** The reply (with "\r\n") for a rejected request. */
  error: Uint8Array | null = null;
  /** Suppress replies (text `noreply`, meta `q` for nominal replies). */
  noreply = false;
  /** Bytes following the line to discard (data of a rejected storage command). */
  swallow = 0;
  /** Close the connection without a reply (memcached does for HTTP requests). */
  close = false;
  /**
   * Discard the rest of the line, through its newline: a get line still
   * arriving was decided already (a NUL ends it, or a key is too long).
   */
  swallowLine = false;
  /**
   * A get whose key is too long: memcached drops every reply it had not
   * sent yet (conn_release_items), not only this get's, before its error.
   */
  cull = false;
  /**
   * A get/gat refused for a too-long key: that key's token index (0: none).
   * memcached looked up the keys before it (`firstKey` on; bumped, touched
   * by a gat with `exptime`, counted) before it refused the line.
   */
  longKeyAt = 0;
  /** With {@linkcode longKeyAt}: the refused command was a gat/gats. */
  longKeyTouch = false;
  /**
   * Replies of earlier requests memcached has not written out yet (its
   * resp_has_stack, noreply ones included): set by the connection before
   * the request runs; `watch` and `lru_crawler metadump` refuse to start
   * behind them.
   */
  stacked = false;
  /** Progress of the parser's scan of a long get line still without its newline. */
  readonly longLine: { buf: Uint8Array | null; start: number; pos: number; run: number } = {
    buf: null,
    start: -1,
    pos: 0,
    run: 0,
  };
  /** Total bytes the request needs when the parser returned 0 (need more). */
  need = 0;
  /** The buffer the request was parsed from. */
  buf: Uint8Array = new Uint8Array(0);
  /** The command line, without its line ending. */
  lineStart = 0;
  /** End of the command line (exclusive, before "\r\n"). */
  lineEnd = 0;
  /** Number of tokens on the line. */
  ntokens = 0;
  /** Token start offsets. */
  tokStart: Int32Array = new Int32Array(32);
  /** Token end offsets (exclusive). */
  tokEnd: Int32Array = new Int32Array(32);
  /** Index of the first key token (get family: several keys follow). */
  firstKey = 1;
  /** Bytes holding the key: the read buffer, or a scratch buffer for base64 keys. */
  keyBuf: Uint8Array = new Uint8Array(0);
  /** Key start in keyBuf. */
  keyStart = 0;
  /** Key end in keyBuf (exclusive). */
  keyEnd = 0;
  /** Client flags (storage commands, meta `F`). */
  flags = 0;
  /** Client exptime as sent (int32); gat/touch/storage and meta `T`. */
  exptime = 0;
  /** Value length (storage commands, ms). */
  vlen = 0;
  /** Compare-and-swap value (`cas`, meta `C`); -1 when absent. */
  cas: number = -1;
  /** incr/decr delta or meta `D` (exact when ≤ 2**53; see deltaBig). */
  delta = 1;
  /** Full 64-bit delta. */
  deltaBig = 1n;
  /** Start of the value bytes in buf. */
  dataStart = 0;
  /** End of the value bytes (exclusive, before "\r\n"). */
  dataEnd = 0;
  /** The value block did not end with "\r\n". */
  badChunk = false;
  /** The value was too large to buffer and is being swallowed. */
  tooLarge = false;
  // --- meta protocol ---
  /** Meta mode switch (`M` flag) as a char code, 0 when absent. */
  mode = 0;
  /** Meta `N` autovivify exptime (client value). */
  vivify = 0;
  /** Meta `R` recache exptime (client value). */
  recache = 0;
  /** Meta `E` explicit new CAS, -1 when absent. */
  explicitCas: number = -1;
  /**
   * Largest meta `E` accepted, a setting of the connection (kept across
   * requests): a larger one is a bad token; -1 makes `E` an unknown flag,
   * as in memcached 1.6.18. The default takes any 64-bit value.
   */
  explicitCasMax: number = Infinity;
  /** Meta `J` initial value for `ma` autovivify (exact when ≤ 2**53). */
  initial = 0;
  /** Full 64-bit initial value. */
  initialBig = 0n;
  /** Key was base64 (`b` flag). */
  keyBinary = false;
  #seen = new Uint32Array(128);
  #tok = new Uint8Array(128);
  #gen = 0;
  #keyScratch = new Uint8Array(MAX_KEY_LENGTH);

  /** Was meta flag `c` (a char code) given? */
  has(c: number): boolean {
    return this.#seen[c] === this.#gen;
  }

  /** Token index of meta flag `c`, or 0 when absent. */
  flagToken(c: number): number {
    return this.#seen[c] === this.#gen ? this.#tok[c] : 0;
  }

  /** Start a new request: clear everything the previous one set. */
  reset(buf: Uint8Array): void {
    this.buf = buf;
    this.op = Op.ERROR;
    this.error = null;
    this.noreply = false;
    this.swallow = 0;
    this.close = false;
    this.swallowLine = false;
    this.cull = false;
    this.longKeyAt = 0;
    this.longKeyTouch = false;
    this.stacked = false;
    this.need = 0;
    this.ntokens = 0;
    this.firstKey = 1;
    this.cas = -1;
    this.delta = 1;
    this.deltaBig = 1n;
    this.badChunk = false;
    this.tooLarge = false;
    this.mode = 0;
    this.explicitCas = -1;
    this.initial = 0;
    this.initialBig = 0n;
    this.keyBinary = false;
    this.exptime = 0;
    this.flags = 0;
    this.#gen = (this.#gen + 1) >>> 0 || 1;
  }

  /** Point the key at token i of the line. */
  keyFromToken(i: number): void {
    this.keyBuf = this.buf;
    this.keyStart = this.tokStart[i];
    this.keyEnd = this.tokEnd[i];
  }

  /** Length of token i. */
  tokenLength(i: number): number {
    return this.tokEnd[i] - this.tokStart[i];
  }

  /** Does token i equal the ASCII text? */
  tokenIs(i: number, text: string): boolean {
    if (i >= this.ntokens) return false;
    const s = this.tokStart[i];
    if (this.tokEnd[i] - s !== text.length) return false;
    for (let j = 0; j < text.length; j++) if (this.buf[s + j] !== text.charCodeAt(j)) return false;
    return true;
  }

  /** Reject the request with a reply; `force` shows it even under noreply (meta errors). */
  reject(reply: Uint8Array, force = false): void {
    this.op = Op.ERROR;
    this.error = reply;
    if (force) this.noreply = false;
  }

  /** Record meta flag char c at token i; false when it repeats. */
  markFlag(c: number, i: number): boolean {
    if (this.#seen[c] === this.#gen) return false;
    this.#seen[c] = this.#gen;
    this.#tok[c] = i;
    return true;
  }

  /** Decode the base64 key in place into the scratch buffer; false when invalid. */
  decodeKey(): boolean {
    const n = base64Decode(this.buf, this.keyStart, this.keyEnd, this.#keyScratch);
    this.keyBuf = this.#keyScratch;
    this.keyStart = 0;
    this.keyEnd = n;
    return n > 0;
  }

  /** Append a token. */
  pushToken(s: number, e: number): void {
    if (this.ntokens === this.tokStart.length) {
      const a = new Int32Array(this.ntokens * 2), b = new Int32Array(this.ntokens * 2);
      a.set(this.tokStart);
      b.set(this.tokEnd);
      this.tokStart = a;
      this.tokEnd = b;
    }
    this.tokStart[this.ntokens] = s;
    this.tokEnd[this.ntokens++] = e;
  }
}
