/**
 * Key hashing over raw bytes (murmur3, 32 bit): keys are never turned into
 * JS strings on the hot path.
 * @module
 */

/** murmur3-32 of `src[start, end)` (seed 0), as a signed 32-bit integer. */
export function hashBytes(src: Uint8Array, start: number, end: number): number {
  const len = end - start;
  let h = 0;
  let i = start;
  const blocksEnd = start + (len & ~3);
  for (; i < blocksEnd; i += 4) {
    let k = src[i] | (src[i + 1] << 8) | (src[i + 2] << 16) | (src[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = len & 3;
  if (rest !== 0) {
    let k = src[i];
    if (rest > 1) k ^= src[i + 1] << 8;
    if (rest > 2) k ^= src[i + 2] << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
