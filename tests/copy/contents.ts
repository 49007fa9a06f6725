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

/**
 * Every key `c`'s server lists, as hex, with its bytes. The hash walk sees
 * each item once; memcached's LRU walk (`all`) can miss items its LRU
 * maintainer moves meanwhile.
 */
async function listKeys(c: Client): Promise<Map<string, Uint8Array>> {
  const keys = new Map<string, Uint8Array>();
  for await (const e of c.metadump("hash")) keys.set(hex(e.key), e.key.slice());
  return keys;
}

/** What `port` holds: metadump's keys, each fetched with mg. */
export async function contents(port: number): Promise<Map<string, Held>> {
  const c = await Client.connect("127.0.0.1", port);
  try {
    const out = new Map<string, Held>();
    for (const [h, k] of await listKeys(c)) {
      const r = await mgKey(c, k, "v f t");
      if (r.value !== undefined) out.set(h, { value: r.value.slice(), flags: r.flags, ttl: r.ttl });
    }
    return out;
  } finally {
    c.close();
  }
}

/**
 * Server `dst` holds exactly `src`'s items: the same keys (metadump), values
 * and flags; the remaining TTL at most `slack[0]` seconds under the source's
 * and `slack[1]` over it (a number: both). Each key is read from both at
 * once, so only rounding separates them: three clocks count whole seconds
 * (the source's, the copier's, the target's), 2 s either way. Resolves with
 * the item count.
 */
export async function sameAs(
  src: number,
  dst: number,
  slack: number | readonly [number, number] = 2,
): Promise<number> {
  const [below, above] = typeof slack === "number" ? [slack, slack] : slack;
  const a = await Client.connect("127.0.0.1", src);
  const b = await Client.connect("127.0.0.1", dst);
  try {
    const keys = await listKeys(a);
    const other = await listKeys(b);
    const only = (x: Map<string, Uint8Array>, y: Map<string, Uint8Array>) =>
      [...x.keys()].filter((k) => !y.has(k)).slice(0, 5);
    ok(
      other.size === keys.size && only(keys, other).length === 0,
      `${keys.size} keys, ${other.size} on the target; only on the source: ` +
        `${only(keys, other)}; only on the target: ${only(other, keys)}`,
    );
    const all = [...keys];
    for (let i = 0; i < all.length; i += 200) {
      const part = all.slice(i, i + 200);
      const [ra, rb] = await Promise.all([
        Promise.all(part.map(([, k]) => mgKey(a, k, "v f t"))),
        Promise.all(part.map(([, k]) => mgKey(b, k, "v f t"))),
      ]);
      part.forEach(([h], j) => {
        const s = ra[j], d = rb[j];
        ok(s.value !== undefined && d.value !== undefined, `${h}: gone while compared`);
        equal(d.value.length, s.value.length, `${h}: value length`);
        deepEqual(d.value, s.value, `${h}: value`);
        equal(d.flags, s.flags, `${h}: flags`);
        if (s.ttl === -1) equal(d.ttl, -1, `${h}: no TTL`);
        else {
          ok(
            d.ttl >= s.ttl - below && d.ttl <= s.ttl + above,
            `${h}: ttl ${d.ttl}, source ${s.ttl}`,
          );
        }
      });
    }
    return all.length;
  } finally {
    a.close();
    b.close();
  }
}
