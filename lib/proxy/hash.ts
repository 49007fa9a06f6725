/**
 * twemproxy's key hash functions (`hash:` in nutcracker.yml), each giving
 * the same 32-bit value as nutcracker on x86-64 for the same key bytes, so
 * both proxies place a key on the same server. Where nutcracker reads the
 * key as C's signed `char`, a byte of 128 or more is sign-extended here too.
 * @module
 */

import { md5 } from "./md5.ts";

/** A key hash over `buf[start, end)`, as an unsigned 32-bit number. */
export type HashFunction = (buf: Uint8Array, start: number, end: number) => number;

/** A byte as C's signed char widened to uint32 (what nutcracker does with `(uint32_t)key[i]`). */
function signed(c: number): number {
  return c < 128 ? c : (c | 0xffffff00) >>> 0;
}

function oneAtATime(buf: Uint8Array, start: number, end: number): number {
  let h = 0;
  for (let i = start; i < end; i++) {
    h = (h + signed(buf[i])) | 0;
    h = (h + (h << 10)) | 0;
    h ^= h >>> 6;
  }
  h = (h + (h << 3)) | 0;
  h ^= h >>> 11;
  h = (h + (h << 15)) | 0;
  return h >>> 0;
}

const digest = new Uint32Array(4);

function md5Hash(buf: Uint8Array, start: number, end: number): number {
  md5(buf, start, end, digest);
  return digest[0];
}

/** CRC-16/XMODEM table (polynomial 0x1021), built once. */
const CRC16: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
    t[i] = c & 0xffff;
  }
  return t;
})();

/** Reflected CRC-32 table (polynomial 0xEDB88320), built once. */
const CRC32: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc16(buf: Uint8Array, start: number, end: number): number {
  // nutcracker keeps the shifted-out bits (the register is 32 bits wide),
  // so the value is not masked to 16 bits.
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc = ((crc << 8) ^ CRC16[((crc >>> 8) ^ buf[i]) & 0xff]) >>> 0;
  }
  return crc;
}

function crc32Register(buf: Uint8Array, start: number, end: number): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC32[(crc ^ buf[i]) & 0xff];
  return crc >>> 0;
}

/** libmemcached's crc32: 15 bits of the inverted register. */
function crc32(buf: Uint8Array, start: number, end: number): number {
  return ((~crc32Register(buf, start, end) >>> 0) >>> 16) & 0x7fff;
}

/** The standard CRC-32. */
function crc32a(buf: Uint8Array, start: number, end: number): number {
  return (~crc32Register(buf, start, end)) >>> 0;
}

// nutcracker computes fnv1_64 in 64 bits and keeps the low 32: those bits
// depend only on the low 32 bits of the offset basis and the prime.
const FNV64_INIT_LOW = 0x84222325;
const FNV64_PRIME_LOW = 0x000001b3;
const FNV32_INIT = 0x811c9dc5;
const FNV32_PRIME = 0x01000193;

function fnv1(init: number, prime: number): HashFunction {
  return (buf, start, end) => {
    let h = init | 0;
    for (let i = start; i < end; i++) h = Math.imul(h, prime) ^ signed(buf[i]);
    return h >>> 0;
  };
}

function fnv1a(init: number, prime: number): HashFunction {
  return (buf, start, end) => {
    let h = init | 0;
    for (let i = start; i < end; i++) h = Math.imul(h ^ signed(buf[i]), prime);
    return h >>> 0;
  };
}

/** Little-endian 16 bits at `i` (bytes unsigned). */
function get16(buf: Uint8Array, i: number): number {
  return buf[i] | (buf[i + 1] << 8);
}

function hsieh(buf: Uint8Array, start: number, end: number): number {
  let len = end - start;
  if (len <= 0) return 0;
  const rem = len & 3;
  len >>>= 2;
  let h = 0;
  let p = start;
  for (; len > 0; len--) {
    h = (h + get16(buf, p)) | 0;
    const tmp = (get16(buf, p + 2) << 11) ^ h;
    h = (h << 16) ^ tmp;
    p += 4;
    h = (h + (h >>> 11)) | 0;
  }
  switch (rem) {
    case 3:
      h = (h + get16(buf, p)) | 0;
      h ^= h << 16;
      h ^= signed(buf[p + 2]) << 18;
      h = (h + (h >>> 11)) | 0;
      break;
    case 2:
      h = (h + get16(buf, p)) | 0;
      h ^= h << 11;
      h = (h + (h >>> 17)) | 0;
      break;
    case 1:
      h = (h + buf[p]) | 0;
      h ^= h << 10;
      h = (h + (h >>> 1)) | 0;
      break;
  }
  h ^= h << 3;
  h = (h + (h >>> 5)) | 0;
  h ^= h << 4;
  h = (h + (h >>> 17)) | 0;
  h ^= h << 25;
  h = (h + (h >>> 6)) | 0;
  return h >>> 0;
}

const MURMUR_M = 0x5bd1e995;

function murmur(buf: Uint8Array, start: number, end: number): number {
  let len = end - start;
  const seed = Math.imul(0xdeadbeef, len);
  let h = seed ^ len;
  let p = start;
  while (len >= 4) {
    let k = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24);
    k = Math.imul(k, MURMUR_M);
    k ^= k >>> 24;
    k = Math.imul(k, MURMUR_M);
    h = Math.imul(h, MURMUR_M) ^ k;
    p += 4;
    len -= 4;
  }
  // The tail cases fall through, as in nutcracker.
  if (len === 3) h ^= buf[p + 2] << 16;
  if (len >= 2) h ^= buf[p + 1] << 8;
  if (len >= 1) h = Math.imul(h ^ buf[p], MURMUR_M);
  h ^= h >>> 13;
  h = Math.imul(h, MURMUR_M);
  h ^= h >>> 15;
  return h >>> 0;
}

function rot(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Bob Jenkins' lookup3 (hashlittle) with nutcracker's initial value 13. */
function jenkins(buf: Uint8Array, start: number, end: number): number {
  let len = end - start;
  let a = (0xdeadbeef + len + 13) | 0;
  let b = a, c = a;
  let p = start;
  while (len > 12) {
    a = (a + (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24))) | 0;
    b = (b + (buf[p + 4] | (buf[p + 5] << 8) | (buf[p + 6] << 16) | (buf[p + 7] << 24))) | 0;
    c = (c + (buf[p + 8] | (buf[p + 9] << 8) | (buf[p + 10] << 16) | (buf[p + 11] << 24))) | 0;
    a = (a - c) | 0, a ^= rot(c, 4), c = (c + b) | 0;
    b = (b - a) | 0, b ^= rot(a, 6), a = (a + c) | 0;
    c = (c - b) | 0, c ^= rot(b, 8), b = (b + a) | 0;
    a = (a - c) | 0, a ^= rot(c, 16), c = (c + b) | 0;
    b = (b - a) | 0, b ^= rot(a, 19), a = (a + c) | 0;
    c = (c - b) | 0, c ^= rot(b, 4), b = (b + a) | 0;
    len -= 12;
    p += 12;
  }
  if (len === 0) return c >>> 0;
  // Last block: bytes 0..11 into a, b, c little-endian (missing bytes are 0).
  const word = (o: number): number => {
    let w = 0;
    for (let i = 3; i >= 0; i--) w = (w << 8) | (o + i < len ? buf[p + o + i] : 0);
    return w;
  };
  a = (a + word(0)) | 0;
  if (len > 4) b = (b + word(4)) | 0;
  if (len > 8) c = (c + word(8)) | 0;
  c ^= b, c = (c - rot(b, 14)) | 0;
  a ^= c, a = (a - rot(c, 11)) | 0;
  b ^= a, b = (b - rot(a, 25)) | 0;
  c ^= b, c = (c - rot(b, 16)) | 0;
  a ^= c, a = (a - rot(c, 4)) | 0;
  b ^= a, b = (b - rot(a, 14)) | 0;
  c ^= b, c = (c - rot(b, 24)) | 0;
  return c >>> 0;
}

/** Every `hash:` nutcracker accepts, by name. */
export const HASHES: Readonly<Record<string, HashFunction>> = {
  one_at_a_time: oneAtATime,
  md5: md5Hash,
  crc16,
  crc32,
  crc32a,
  fnv1_64: fnv1(FNV64_INIT_LOW, FNV64_PRIME_LOW),
  fnv1a_64: fnv1a(FNV64_INIT_LOW, FNV64_PRIME_LOW),
  fnv1_32: fnv1(FNV32_INIT, FNV32_PRIME),
  fnv1a_32: fnv1a(FNV32_INIT, FNV32_PRIME),
  hsieh,
  murmur,
  jenkins,
};

/** The hash function named `name`, or undefined for a name nutcracker does not know. */
export function hashFunction(name: string): HashFunction | undefined {
  return Object.hasOwn(HASHES, name) ? HASHES[name] : undefined;
}
