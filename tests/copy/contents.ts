/**
 * A server's whole contents for copy tests: every key `lru_crawler metadump`
 * lists, fetched with `mg`, compared byte for byte.
 * @module
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { Client, type Reply } from "../../lib/client/mod.ts";

/** One item as a server holds it: `ttl` is mg's remaining seconds (-1: none). */
export interface Held {
  value: Uint8Array;
  flags: number;
  ttl: number;
}

/** Hex of `b`, as map keys and in messages. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** base64 of `b`, for meta `b` keys. */
export function b64(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b));
}

/** Keys memcached's text tokenizer takes as they are (it splits on spaces only). */
export function rawKey(k: Uint8Array): boolean {
  return !k.some((c) => c === 0x20 || c === 0x0a || c === 0);
}

/** `mg` for any key: as is when text allows it, else base64 (`b`). */
export function mgKey(c: Client, k: Uint8Array, flags: string): Promise<Reply> {
  return rawKey(k) ? c.mg(k, flags) : c.mg(b64(k), `b ${flags}`);
}

/** Everything `port` holds: metadump's keys, each fetched with mg. */
export async function contents(port: number): Promise<Map<string, Held>> {
  const c = await Client.connect("127.0.0.1", port);
  try {
    const keys: Uint8Array[] = [];
    for await (const e of c.metadump("all")) keys.push(e.key.slice());
    const out = new Map<string, Held>();
    for (let i = 0; i < keys.length; i += 1000) {
      const part = keys.slice(i, i + 1000);
      const replies = await Promise.all(part.map((k) => mgKey(c, k, "v f t")));
      part.forEach((k, j) => {
        const r = replies[j];
        if (r.value === undefined) return; // expired meanwhile
        out.set(hex(k), { value: r.value.slice(), flags: r.flags, ttl: r.ttl });
      });
    }
    return out;
  } finally {
    c.close();
  }
}

/**
 * Target holds exactly the source's items: same keys, values and flags; the
 * remaining TTL at most `slack[0]` seconds under the source's and `slack[1]`
 * over it (a number: both), both read back to back.
 */
export function sameContents(
  src: Map<string, Held>,
  dst: Map<string, Held>,
  slack: number | [number, number],
): void {
  const [below, above] = typeof slack === "number" ? [slack, slack] : slack;
  deepEqual([...dst.keys()].sort(), [...src.keys()].sort(), "the same keys");
  for (const [k, s] of src) {
    const d = dst.get(k)!;
    ok(d.value.length === s.value.length, `${k}: ${d.value.length} bytes, want ${s.value.length}`);
    deepEqual(d.value, s.value, `${k}: value`);
    equal(d.flags, s.flags, `${k}: flags`);
    if (s.ttl === -1) equal(d.ttl, -1, `${k}: no TTL`);
    else {
      ok(d.ttl >= s.ttl - below && d.ttl <= s.ttl + above, `${k}: ttl ${d.ttl}, source ${s.ttl}`);
    }
  }
}
