/**
 * Client expiration times to absolute clock seconds (memcached realtime()).
 * @module
 */

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
