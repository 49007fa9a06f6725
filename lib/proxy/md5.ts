/**
 * MD5 over a byte range, for ketama points and key hashing (twemproxy's
 * `hash: md5`). Web Crypto has no MD5 and node:crypto allocates per call, so
 * this works on a reused block buffer: keys hash without allocation. The 64
 * steps are written out with the state and the block words in locals: a
 * multi-get hashes every key, and the looped form with the state in typed
 * arrays cost several times as much.
 * @module
 */

/** One 64-byte block as bytes and, over the same memory, as 16 words. */
const bytes = new Uint8Array(64);
const words = new Int32Array(bytes.buffer);
/** The words view reads little endian (else blocks are assembled byte by byte). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** The running state (a, b, c, d). */
const st = new Int32Array(4);

/** One MD5 compression of `words` into `st`. */
function compress(): void {
  const w = words;
  const x0 = w[0], x1 = w[1], x2 = w[2], x3 = w[3], x4 = w[4], x5 = w[5], x6 = w[6], x7 = w[7];
  const x8 = w[8], x9 = w[9], x10 = w[10], x11 = w[11], x12 = w[12], x13 = w[13], x14 = w[14];
  const x15 = w[15];
  let a = st[0], b = st[1], c = st[2], d = st[3], t = 0;
  t = (a + (d ^ (b & (c ^ d))) + x0 - 680876936) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + (c ^ (a & (b ^ c))) + x1 - 389564586) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + (b ^ (d & (a ^ b))) + x2 + 606105819) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + (a ^ (c & (d ^ a))) + x3 - 1044525330) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + (d ^ (b & (c ^ d))) + x4 - 176418897) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + (c ^ (a & (b ^ c))) + x5 + 1200080426) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + (b ^ (d & (a ^ b))) + x6 - 1473231341) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + (a ^ (c & (d ^ a))) + x7 - 45705983) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + (d ^ (b & (c ^ d))) + x8 + 1770035416) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + (c ^ (a & (b ^ c))) + x9 - 1958414417) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + (b ^ (d & (a ^ b))) + x10 - 42063) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + (a ^ (c & (d ^ a))) + x11 - 1990404162) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + (d ^ (b & (c ^ d))) + x12 + 1804603682) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + (c ^ (a & (b ^ c))) + x13 - 40341101) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + (b ^ (d & (a ^ b))) + x14 - 1502002290) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + (a ^ (c & (d ^ a))) + x15 + 1236535329) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + (c ^ (d & (b ^ c))) + x1 - 165796510) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + (b ^ (c & (a ^ b))) + x6 - 1069501632) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + (a ^ (b & (d ^ a))) + x11 + 643717713) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + (d ^ (a & (c ^ d))) + x0 - 373897302) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + (c ^ (d & (b ^ c))) + x5 - 701558691) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + (b ^ (c & (a ^ b))) + x10 + 38016083) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + (a ^ (b & (d ^ a))) + x15 - 660478335) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + (d ^ (a & (c ^ d))) + x4 - 405537848) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + (c ^ (d & (b ^ c))) + x9 + 568446438) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + (b ^ (c & (a ^ b))) + x14 - 1019803690) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + (a ^ (b & (d ^ a))) + x3 - 187363961) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + (d ^ (a & (c ^ d))) + x8 + 1163531501) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + (c ^ (d & (b ^ c))) + x13 - 1444681467) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + (b ^ (c & (a ^ b))) + x2 - 51403784) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + (a ^ (b & (d ^ a))) + x7 + 1735328473) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + (d ^ (a & (c ^ d))) + x12 - 1926607734) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + (b ^ c ^ d) + x5 - 378558) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + x8 - 2022574463) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + x11 + 1839030562) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + x14 - 35309556) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + x1 - 1530992060) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + x4 + 1272893353) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + x7 - 155497632) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + x10 - 1094730640) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + x13 + 681279174) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + x0 - 358537222) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + x3 - 722521979) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + x6 + 76029189) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + x9 - 640364487) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + x12 - 421815835) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + x15 + 530742520) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + x2 - 995338651) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (c ^ (b | ~d)) + x0 - 198630844) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + x7 + 1126891415) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + x14 - 1416354905) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + x5 - 57434055) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + x12 + 1700485571) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + x3 - 1894986606) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + x10 - 1051523) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + x1 - 2054922799) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + x8 + 1873313359) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + x15 - 30611744) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + x6 - 1560198380) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + x13 + 1309151649) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + x4 - 145523070) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + x11 - 1120210379) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + x2 + 718787259) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + x9 - 343485551) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;

  st[0] = (st[0] + a) | 0;
  st[1] = (st[1] + b) | 0;
  st[2] = (st[2] + c) | 0;
  st[3] = (st[3] + d) | 0;
}

/** Big endian only: the block's words from its bytes. */
function wordsFromBytes(): void {
  if (LITTLE_ENDIAN) return;
  const b = bytes.slice();
  for (let i = 0; i < 16; i++) {
    const q = i * 4;
    words[i] = b[q] | (b[q + 1] << 8) | (b[q + 2] << 16) | (b[q + 3] << 24);
  }
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
    bytes.set(buf.subarray(p, p + 64));
    wordsFromBytes();
    compress();
  }
  // The rest, the 0x80 marker and the bit length: one or two more blocks.
  const rest = end - p;
  bytes.fill(0);
  for (let i = 0; i < rest; i++) bytes[i] = buf[p + i];
  bytes[rest] = 0x80;
  if (rest >= 56) {
    wordsFromBytes();
    compress();
    bytes.fill(0);
  }
  const bits = n * 8;
  bytes[56] = bits & 0xff;
  bytes[57] = (bits >>> 8) & 0xff;
  bytes[58] = (bits >>> 16) & 0xff;
  bytes[59] = (bits >>> 24) & 0xff;
  const high = Math.floor(bits / 2 ** 32);
  bytes[60] = high & 0xff;
  bytes[61] = (high >>> 8) & 0xff;
  wordsFromBytes();
  compress();
  out[0] = st[0];
  out[1] = st[1];
  out[2] = st[2];
  out[3] = st[3];
}
