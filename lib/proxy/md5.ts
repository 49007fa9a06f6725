/**
 * MD5 over a byte range, for ketama points and key hashing (twemproxy's
 * `hash: md5`). Web Crypto has no MD5 and node:crypto allocates per call, so
 * this works on a reused block buffer: keys hash without allocation.
 * @module
 */

const SHIFT = new Uint8Array([7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21]);
const K = new Int32Array(64);
for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0;

const block = new Int32Array(16);
const tail = new Uint8Array(128);

/**
 * MD5 digest of `buf[start, end)` as four little-endian 32-bit words in
 * `out` (word i is bytes 4i..4i+3 of the digest, read little endian, which
 * is exactly how twemproxy turns digest bytes into ring values).
 */
export function md5(buf: Uint8Array, start: number, end: number, out: Uint32Array): void {
  let a = 0x67452301, b = 0xefcdab89 | 0, c = 0x98badcfe | 0, d = 0x10325476;
  const n = end - start;
  let p = start;
  // Whole 64-byte blocks straight from the input.
  for (; end - p >= 64; p += 64) {
    for (let i = 0; i < 16; i++) {
      const q = p + i * 4;
      block[i] = buf[q] | (buf[q + 1] << 8) | (buf[q + 2] << 16) | (buf[q + 3] << 24);
    }
    [a, b, c, d] = round(a, b, c, d);
  }
  // The rest, the 0x80 marker and the bit length: one or two more blocks.
  const rest = end - p;
  tail.fill(0);
  for (let i = 0; i < rest; i++) tail[i] = buf[p + i];
  tail[rest] = 0x80;
  const blocks = rest < 56 ? 1 : 2;
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
    [a, b, c, d] = round(a, b, c, d);
  }
  out[0] = a;
  out[1] = b;
  out[2] = c;
  out[3] = d;
}

const state: [number, number, number, number] = [0, 0, 0, 0];

/** One 64-step MD5 compression of `block` into the state (a, b, c, d). */
function round(a0: number, b0: number, c0: number, d0: number): [number, number, number, number] {
  let a = a0, b = b0, c = c0, d = d0;
  for (let i = 0; i < 64; i++) {
    let f: number, g: number;
    if (i < 16) {
      f = (b & c) | (~b & d);
      g = i;
    } else if (i < 32) {
      f = (d & b) | (~d & c);
      g = (5 * i + 1) & 15;
    } else if (i < 48) {
      f = b ^ c ^ d;
      g = (3 * i + 5) & 15;
    } else {
      f = c ^ (b | ~d);
      g = (7 * i) & 15;
    }
    const s = SHIFT[((i >> 4) << 2) | (i & 3)];
    const x = (a + f + K[i] + block[g]) | 0;
    a = d;
    d = c;
    c = b;
    b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
  }
  state[0] = (a0 + a) | 0;
  state[1] = (b0 + b) | 0;
  state[2] = (c0 + c) | 0;
  state[3] = (d0 + d) | 0;
  return state;
}
