/**
 * MD5 over a byte range, for ketama points and key hashing (twemproxy's
 * `hash: md5`). Web Crypto has no MD5 and node:crypto allocates per call, so
 * this works on a reused block buffer: keys hash without allocation.
 * @module
 */

const K = new Int32Array(64);
for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0;
const block = new Int32Array(16);
const tail = new Uint8Array(128);
/** The running state (a, b, c, d). */
const st = new Int32Array(4);
function rotl(x: number, s: number) {
  return (x << s) | (x >>> (32 - s));
}
/** One MD5 compression of `block` into `st`; the four rounds unrolled by four steps. */
function compress(): void {
  const x = block;
  let a = st[0], b = st[1], c = st[2], d = st[3];
  for (let i = 0; i < 16; i += 4) {
    a = (b + rotl((a + ((b & c) | (~b & d)) + K[i] + x[i]) | 0, 7)) | 0;
    d = (a + rotl((d + ((a & b) | (~a & c)) + K[i + 1] + x[i + 1]) | 0, 12)) | 0;
    c = (d + rotl((c + ((d & a) | (~d & b)) + K[i + 2] + x[i + 2]) | 0, 17)) | 0;
    b = (c + rotl((b + ((c & d) | (~c & a)) + K[i + 3] + x[i + 3]) | 0, 22)) | 0;
  }
  for (let i = 16; i < 32; i += 4) {
    a = (b + rotl((a + ((b & d) | (c & ~d)) + K[i] + x[(5 * i + 1) & 15]) | 0, 5)) | 0;
    d = (a + rotl((d + ((a & c) | (b & ~c)) + K[i + 1] + x[(5 * i + 6) & 15]) | 0, 9)) | 0;
    c = (d + rotl((c + ((d & b) | (a & ~b)) + K[i + 2] + x[(5 * i + 11) & 15]) | 0, 14)) | 0;
    b = (c + rotl((b + ((c & a) | (d & ~a)) + K[i + 3] + x[(5 * i + 16) & 15]) | 0, 20)) | 0;
  }
  for (let i = 32; i < 48; i += 4) {
    a = (b + rotl((a + (b ^ c ^ d) + K[i] + x[(3 * i + 5) & 15]) | 0, 4)) | 0;
    d = (a + rotl((d + (a ^ b ^ c) + K[i + 1] + x[(3 * i + 8) & 15]) | 0, 11)) | 0;
    c = (d + rotl((c + (d ^ a ^ b) + K[i + 2] + x[(3 * i + 11) & 15]) | 0, 16)) | 0;
    b = (c + rotl((b + (c ^ d ^ a) + K[i + 3] + x[(3 * i + 14) & 15]) | 0, 23)) | 0;
  }
  for (let i = 48; i < 64; i += 4) {
    a = (b + rotl((a + (c ^ (b | ~d)) + K[i] + x[(7 * i) & 15]) | 0, 6)) | 0;
    d = (a + rotl((d + (b ^ (a | ~c)) + K[i + 1] + x[(7 * i + 7) & 15]) | 0, 10)) | 0;
    c = (d + rotl((c + (a ^ (d | ~b)) + K[i + 2] + x[(7 * i + 14) & 15]) | 0, 15)) | 0;
    b = (c + rotl((b + (d ^ (c | ~a)) + K[i + 3] + x[(7 * i + 21) & 15]) | 0, 21)) | 0;
  }
  st[0] = (st[0] + a) | 0;
  st[1] = (st[1] + b) | 0;
  st[2] = (st[2] + c) | 0;
  st[3] = (st[3] + d) | 0;
}
/**
 * MD5 digest of `buf[start, end)` as four little-endian 32-bit words in
 * `out` (word i is bytes 4i..4i+3 of the digest, read little endian, which
 * is exactly how twemproxy turns digest bytes into ring values).
 */
export function md5(buf: Uint8Array, start: number, end: number, out: Uint32Array): void {
  st[0] = 0x67452301;
  st[1] = 0xefcdab89 | 0;
  st[2] = 0x98badcfe | 0;
  st[3] = 0x10325476;
  const n = end - start;
  let p = start;
  // Whole 64-byte blocks straight from the input.
  for (; end - p >= 64; p += 64) {
    for (let i = 0; i < 16; i++) {
      const q = p + i * 4;
      block[i] = buf[q] | (buf[q + 1] << 8) | (buf[q + 2] << 16) | (buf[q + 3] << 24);
    }
    compress();
  }
  // The rest, the 0x80 marker and the bit length: one or two more blocks.
  const rest = end - p;
  const blocks = rest < 56 ? 1 : 2;
  tail.fill(0, 0, blocks * 64);
  for (let i = 0; i < rest; i++) tail[i] = buf[p + i];
  tail[rest] = 0x80;
  const bits = n * 8;
  const at = blocks * 64 - 8;
  tail[at] = bits & 0xff;
  tail[at + 1] = (bits >>> 8) & 0xff;
  tail[at + 2] = (bits >>> 16) & 0xff;
  tail[at + 3] = (bits >>> 24) & 0xff;
  const high = Math.floor(bits / 2 ** 32);
  tail[at + 4] = high & 0xff;
  tail[at + 5] = (high >>> 8) & 0xff;
  for (let k = 0; k < blocks; k++) {
    for (let i = 0; i < 16; i++) {
      const q = k * 64 + i * 4;
      block[i] = tail[q] | (tail[q + 1] << 8) | (tail[q + 2] << 16) | (tail[q + 3] << 24);
    }
    compress();
  }
  out[0] = st[0];
  out[1] = st[1];
  out[2] = st[2];
  out[3] = st[3];
}
