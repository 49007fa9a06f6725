/**
 * Text command lines as bytes, for the requests the client builds itself
 * (its conveniences, metadump).
 * @module
 */

import { ascii, writeUint } from "../protocol/mod.ts";

/** The data block terminator. */
export const CRLF: Uint8Array = ascii("\r\n");

/** Builds `<word> <key> <n> <n> <n>\r\n`-style command lines as bytes. */
export function line(...parts: (string | number | Uint8Array)[]): Uint8Array {
  let n = 2;
  for (const p of parts) n += (typeof p === "number" ? 16 : p.length) + 1;
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out[o++] = 0x20;
    const p = parts[i];
    if (typeof p === "number") o = writeUint(out, o, p);
    else if (typeof p === "string") {
      for (let j = 0; j < p.length; j++) out[o++] = p.charCodeAt(j);
    } else {
      out.set(p, o);
      o += p.length;
    }
  }
  out[o++] = 13;
  out[o++] = 10;
  return out.subarray(0, o);
}
