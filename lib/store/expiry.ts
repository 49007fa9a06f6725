/**
 * Client expiration times to absolute clock seconds (memcached realtime()),
 * and when an item is dead: expired, or killed by a delayed flush that has
 * come (read by the store's lookups and scans and by the allocator).
 * @module
 */

import {
  I_FLUSH_CAS_HI,
  I_FLUSH_CAS_LO,
  I_OLDEST_LIVE,
  M_CASHI,
  M_TIME,
  W_CASLO,
  W_EXPTIME,
  W_META,
  W_TIME,
} from "./slabs.ts";

/** Relative exptimes above this many seconds (30 days) are unix timestamps. */
export const REALTIME_MAXDELTA = 60 * 60 * 24 * 30;

/** Largest absolute exptime the item header can hold (int32). */
const MAX_EXPTIME = 0x7fffffff;

/**
 * Converts a client exptime to absolute clock seconds: 0 → 0 (never);
 * negative or a unix time already past → a non-zero value ≤ now (expired);
 * ≤ 30 days → now + exptime; larger → unix time minus `processStartUnix`.
 */
export function toAbsoluteExptime(exptime: number, now: number, processStartUnix: number): number {
  if (exptime === 0) return 0;
  // Expired must still be non-zero (0 means never): 1 when the clock allows it, else -1.
  const expired = now >= 1 ? 1 : -1;
  if (exptime < 0) return expired;
  if (exptime <= REALTIME_MAXDELTA) return Math.min(now + exptime, MAX_EXPTIME);
  const abs = Math.floor(exptime - processStartUnix);
  if (abs <= now) return expired;
  return Math.min(abs, MAX_EXPTIME);
}

/**
 * Is the item whose header is at word `w` of `i32` expired, or invalidated
 * by a delayed flush that has come, at clock second `now`? `ctl`: the
 * store's int32 scalars (I_*).
 */
export function itemDead(ctl: Int32Array, i32: Int32Array, w: number, now: number): boolean {
  const exp = i32[w + W_EXPTIME];
  if (exp !== 0 && exp <= now) return true;
  const ol = ctl[I_OLDEST_LIVE];
  return ol !== 0 && now >= ol && flushedBefore(ctl, i32, w, ol);
}

/**
 * Does the delayed flush of clock second `ol` (come) invalidate the item at
 * word `w`? By CAS when replication set one (flushBefore), else by time.
 */
export function flushedBefore(ctl: Int32Array, i32: Int32Array, w: number, ol: number): boolean {
  const hi = ctl[I_FLUSH_CAS_HI], lo = ctl[I_FLUSH_CAS_LO];
  if (hi === 0 && lo === 0) return (i32[w + W_TIME] & M_TIME) <= ol;
  const cas = (i32[w + W_META] & M_CASHI) * 4294967296 + (i32[w + W_CASLO] >>> 0);
  return cas < hi * 4294967296 + (lo >>> 0);
}
