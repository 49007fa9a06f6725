/**
 * Clients that pipeline large gets and never read, for the memory tests of
 * serve and proxy: the items, the pipelines (text gets, 10-key text gets,
 * binary getks in turn), the connections, and the process's RSS.
 * @module
 */

import { equal } from "./assert.ts";
import type { TestConn } from "./conn.ts";
import { OP, packet } from "./binary.ts";

/** Size of the items the hogs ask for (a few bytes less for later keys). */
export const HOG_VALUE = 256 * 1024;
/** How many distinct items they ask for. */
export const HOG_KEYS = 20;

/** Item `i`: key `hog:<i>`, its letter repeated. */
export function hogItem(i: number): [string, string] {
  return [`hog:${i}`, String.fromCharCode(97 + i % 26).repeat(HOG_VALUE - i)];
}

/** Stores the items through `c`. */
export async function storeHogItems(c: TestConn): Promise<void> {
  for (let i = 0; i < HOG_KEYS; i++) {
    const [key, value] = hogItem(i);
    equal(await c.request(`set ${key} 0 0 ${value.length}\r\n${value}`), "STORED\r\n");
  }
}

/** The process's resident set (bytes), from /proc. */
export async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb[1]) * 1024;
}

/** Pipeline `kind` (0 text gets, 1 text gets of 10 keys, 2 binary getks) of `gets` requests. */
function pipeline(kind: number, gets: number): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (let g = 0; g < gets; g++) {
    const i = g % HOG_KEYS;
    if (kind === 0) parts.push(enc.encode(`get hog:${i}\r\n`));
    else if (kind === 1) {
      const keys = Array.from({ length: 10 }, (_, j) => `hog:${(i + j) % HOG_KEYS}`);
      parts.push(enc.encode(`get ${keys.join(" ")}\r\n`));
    } else parts.push(packet({ op: OP.GETK, key: `hog:${i}` }));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Opens `n` connections to `port`, each writing `gets` pipelined gets (the
 * three kinds in turn) that it never reads. Close them when done.
 */
export async function openHogs(port: number, n: number, gets = 200): Promise<Deno.Conn[]> {
  const batches = [0, 1, 2].map((k) => pipeline(k, gets));
  const hogs: Deno.Conn[] = [];
  for (let c = 0; c < n; c++) {
    const h = await Deno.connect({ hostname: "127.0.0.1", port });
    hogs.push(h);
    // Never awaited to the end: the server stops reading once it holds what it may.
    h.write(batches[c % 3]).catch(() => {});
  }
  return hogs;
}

/** Closes the hogs. */
export function closeHogs(hogs: Deno.Conn[]): void {
  for (const h of hogs) {
    try {
      h.close();
    } catch { /* closed */ }
  }
}

/**
 * Samples the RSS of `pid` every 500 ms until it moved less than 2 MB for
 * 3 samples in a row (or `timeoutMs` passed), running `meanwhile` at each
 * sample; returns the peak.
 */
export async function settledPeak(
  pid: number,
  meanwhile: () => Promise<void>,
  timeoutMs = 20_000,
): Promise<number> {
  const end = Date.now() + timeoutMs;
  let peak = 0, last = -1, still = 0;
  while (Date.now() < end && still < 3) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await rss(pid);
    peak = Math.max(peak, now);
    still = Math.abs(now - last) < 2 * 1048576 ? still + 1 : 0;
    last = now;
    await meanwhile();
  }
  return peak;
}

/**
 * `count` pipelined text gets a reading client sends while hogs load the
 * server (single and 10-key gets in turn), and the length of memcached's
 * replies to them.
 */
export function readerGets(count: number): [Uint8Array, number] {
  let text = "", total = 0;
  for (let g = 0; g < count; g++) {
    const n = g % 2 === 0 ? 1 : 10;
    const keys: string[] = [];
    for (let j = 0; j < n; j++) {
      const i = (g + j) % HOG_KEYS;
      const [key, value] = hogItem(i);
      keys.push(key);
      total += `VALUE ${key} 0 ${value.length}\r\n`.length + value.length + 2;
    }
    text += `get ${keys.join(" ")}\r\n`;
    total += 5;
  }
  return [new TextEncoder().encode(text), total];
}

/** Reads exactly `n` bytes from `c`. */
export async function readExactly(c: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let have = 0;
  while (have < n) {
    const k = await c.read(out.subarray(have));
    if (k === null) throw new Error(`connection ended after ${have} of ${n} bytes`);
    have += k;
  }
  return out;
}
