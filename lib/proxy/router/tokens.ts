/**
 * Which server a CAS token the proxy handed out came from. A token is one
 * server's counter value: the primary's, unless a read was answered by a
 * copy (the primary down or dirty for the key), whose counter is its own.
 * A `cas` (text, meta `C`, binary CAS) sent anywhere else compares the
 * number with an unrelated counter and stores when it happens to match, a
 * write made since overwritten (a primary restarted or hung and cleaned:
 * its counter is behind the backups'). There it is sent with a token that
 * matches no item instead: memcached's EXISTS (NOT_FOUND without an item).
 * @module
 */

import { decodeAscii } from "../../protocol/mod.ts";
import type { Backend } from "../pool.ts";

/** Tokens from copies remembered at most (the oldest is forgotten: its origin is then the primary). */
const COPY_TOKENS = 65536;

/** 2**64 - 1: a CAS no memcached item reaches. */
export const UNMATCHABLE_CAS: Uint8Array = new TextEncoder().encode("18446744073709551615");

/** The last CAS token a copy gave out per key. */
export class CopyTokens {
  readonly #byKey = new Map<string, { from: Backend; cas: number }>();

  /** A read of `key` answered by the copy `from` handed out its CAS `cas`. */
  gave(key: Uint8Array, from: Backend, cas: bigint): void {
    const k = decodeAscii(key, 0, key.length);
    this.#byKey.delete(k);
    // As the request parser holds a token (a number: exact up to 2**53).
    this.#byKey.set(k, { from, cas: Number(cas) });
    if (this.#byKey.size > COPY_TOKENS) this.#byKey.delete(this.#byKey.keys().next().value!);
  }

  /** Tokens remembered. */
  get size(): number {
    return this.#byKey.size;
  }

  /**
   * A read of `key` (bytes `start`..`end` of `buf`) arrived: the token the
   * client holds next is the one it answers (a copy's is remembered again),
   * and the primary may hand out the copy's number for its own item later.
   */
  forget(buf: Uint8Array, start: number, end: number): void {
    this.#byKey.delete(decodeAscii(buf, start, end));
  }

  /** The server `cas`, a token of `key`, came from: a copy that gave it, else the primary. */
  origin(key: Uint8Array, cas: number, primary: Backend): Backend {
    if (this.#byKey.size === 0) return primary;
    const e = this.#byKey.get(decodeAscii(key, 0, key.length));
    return e !== undefined && e.cas === cas ? e.from : primary;
  }
}

/**
 * `parts` (a `cas` line, or an `ms` line with `C<token>`, and its value) with
 * the token replaced by {@linkcode UNMATCHABLE_CAS}.
 */
export function unmatchable(parts: readonly Uint8Array[], meta: boolean): Uint8Array[] {
  let n = 0;
  for (const p of parts) n += p.length;
  const all = new Uint8Array(n);
  n = 0;
  for (const p of parts) all.set(p, n), n += p.length;
  let end = all.indexOf(13);
  if (end < 0) end = all.length;
  // Token boundaries on the line: text cas's 6th token, or meta's C flag after the key and length.
  let tok = 0, i = 0;
  while (i < end) {
    while (i < end && all[i] === 32) i++;
    const s = i;
    while (i < end && all[i] !== 32) i++;
    if (s === i) break;
    if (meta ? tok >= 3 && all[s] === 67 /* C */ : tok === 5) {
      const at = meta ? s + 1 : s;
      return [all.subarray(0, at), UNMATCHABLE_CAS, all.subarray(i)];
    }
    tok++;
  }
  return [all];
}
