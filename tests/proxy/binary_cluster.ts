/**
 * Small helpers for the binary tests through the proxy: packets and one
 * round trip, on top of tests/helpers/binary.ts and ./cluster.ts.
 * @module
 */

import { equal } from "../helpers/assert.ts";
import type { TestConn } from "../helpers/mod.ts";
import { OP, packet, type Response, roundTrip, setExtras } from "../helpers/binary.ts";
import { directGet } from "./cluster.ts";

/** Concatenate packets. */
export function cat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A storage packet (set by default) with flags and no expiry. */
export function set(
  key: string,
  value: string,
  opaque = 0,
  op: number = OP.SET,
  flags = 0,
): Uint8Array {
  return packet({ op, key, value, extras: setExtras(flags, 0), opaque });
}

/** A get-family packet (get by default). */
export function get(key: string, op: number = OP.GET, opaque = 0): Uint8Array {
  return packet({ op, key, opaque });
}

/** Send `bytes` (one loud request) and return its one reply. */
export async function one(c: TestConn, bytes: Uint8Array): Promise<Response> {
  const r = await roundTrip(c, bytes, 10_000);
  equal(r.length, 1, `one reply, got ${r.length}`);
  return r[0];
}

/** `get <key>` straight on a memcached: the value or undefined. */
export async function directValue(port: number, key: string): Promise<string | undefined> {
  return await directGet(port, key);
}

/** What the binary proxy tests need installed. */
export const NEED = ["memcached"];
