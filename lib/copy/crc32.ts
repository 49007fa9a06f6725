/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial), for dump file records.
 * @module
 */

const TABLE = new Int32Array(256 * 4);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}
// Slicing-by-4 tables: four bytes per step.
for (let n = 0; n < 256; n++) {
  let c = TABLE[n];
  for (let t = 1; t < 4; t++) {
    c = TABLE[c & 0xff] ^ (c >>> 8);
    TABLE[t * 256 + n] = c;
  }
}

/**
 * CRC-32 of `buf[start, end)`, continuing from `crc` (pass the previous
 * result to checksum data in pieces). Returns an unsigned 32-bit number.
 */
export function crc32(buf: Uint8Array, start = 0, end = buf.length, crc = 0): number {
  let c = ~crc;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    c ^= buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    c = TABLE[768 + (c & 0xff)] ^ TABLE[512 + ((c >>> 8) & 0xff)] ^
      TABLE[256 + ((c >>> 16) & 0xff)] ^ TABLE[c >>> 24];
  }
  for (; i < end; i++) c = TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
