/**
 * Seeded random memcached requests for chaos runs: every kind of write and
 * read, text, meta (with flags) and binary, on a small key space so that
 * writers on several nodes conflict.
 * @module
 */

import { Op, type OpCode } from "../../lib/protocol/mod.ts";
import { arithExtras, OP, packet, setExtras, u32Extras } from "./binary.ts";

const enc = new TextEncoder();

/** One text or meta request: its bytes and the op its single reply is parsed as. */
export interface ChaosRequest {
  /** The request, value block included. */
  bytes: Uint8Array;
  /** How the reply parses (Client.request). */
  op: OpCode;
}

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)];
}

/** Mostly no expiry, some long, a few 2 s (they expire during the run). */
function ttl(rnd: () => number): number {
  const r = rnd();
  if (r < 0.7) return 0;
  if (r < 0.95) return 1000 + Math.floor(rnd() * 100);
  return 2;
}

/** A value naming its writer; one in 20 is 3-23 KB. */
function value(rnd: () => number, tag: string): string {
  const n = rnd() < 0.05 ? 3000 + Math.floor(rnd() * 20000) : 1 + Math.floor(rnd() * 30);
  return `${tag}.${"x".repeat(n)}`;
}

/**
 * A random request on keys `k0..k<keySpace-1>` and counters `n0..n4`: set,
 * add, replace, append, prepend, cas, incr, decr, touch, gat(s), delete,
 * flush_all (rare), ms/md/ma/mg with flags, get(s). One reply each (no
 * noreply, no q).
 */
export function chaosRequest(rnd: () => number, keySpace: number, tag: string): ChaosRequest {
  const key = `k${Math.floor(rnd() * keySpace)}`;
  const ctr = `n${Math.floor(rnd() * 5)}`;
  const flags = Math.floor(rnd() * 4);
  const req = (s: string, op: OpCode) => ({ bytes: enc.encode(s), op });
  const store = (word: string, op: OpCode, extra = "") => {
    const v = value(rnd, tag);
    return req(`${word} ${key} ${flags} ${ttl(rnd)} ${v.length}${extra}\r\n${v}\r\n`, op);
  };
  switch (Math.floor(rnd() * 24)) {
    case 0:
    case 1:
    case 2:
      return store("set", Op.SET);
    case 3:
      return store("add", Op.ADD);
    case 4:
      return store("replace", Op.REPLACE);
    case 5:
      return store("append", Op.APPEND);
    case 6:
      return store("prepend", Op.PREPEND);
    case 7:
      return store("cas", Op.CAS, ` ${Math.floor(rnd() * 2 ** 40)}`);
    case 8:
      return req(`incr ${ctr} ${1 + Math.floor(rnd() * 5)}\r\n`, Op.INCR);
    case 9:
      return req(`decr ${ctr} ${1 + Math.floor(rnd() * 5)}\r\n`, Op.DECR);
    case 10:
      return req(`set ${ctr} 0 0 3\r\n${100 + Math.floor(rnd() * 900)}\r\n`, Op.SET);
    case 11:
      return req(`touch ${key} ${ttl(rnd)}\r\n`, Op.TOUCH);
    case 12:
      return req(`gat ${ttl(rnd)} ${key} k${Math.floor(rnd() * keySpace)}\r\n`, Op.GAT);
    case 13:
    case 14:
      return req(`delete ${key}\r\n`, Op.DELETE);
    case 15: {
      const v = value(rnd, tag);
      const f = pick(rnd, ["", " MA", " MP", " MR", " ME", " MA N0", " MP N100", " I", " F7 T0"]);
      return req(`ms ${key} ${v.length}${f}\r\n${v}\r\n`, Op.MS);
    }
    case 16:
      return req(`md ${key}${pick(rnd, ["", " I", " I T30", " T0", " C12345"])}\r\n`, Op.MD);
    case 17: {
      const f = pick(rnd, [
        "",
        " N0",
        " N0 J13",
        " MD",
        " MI D7",
        " N100 J5 MD D2",
        " v",
        " T1200",
      ]);
      return req(`ma ${ctr}${f}\r\n`, Op.MA);
    }
    case 18:
      return req(
        `mg ${key} ${pick(rnd, ["v", "v T1300", "v N1400", "s t c", "k v t"])}\r\n`,
        Op.MG,
      );
    case 19:
      return req(`gets ${key}\r\n`, Op.GETS);
    case 20:
      return rnd() < 0.02 ? req("flush_all\r\n", Op.FLUSH_ALL) : req(`get ${key}\r\n`, Op.GET);
    case 21:
      return req(`gats ${ttl(rnd)} ${key}\r\n`, Op.GATS);
    case 22:
      return req(`ms ${ctr} 2 MS\r\n${10 + Math.floor(rnd() * 89)}\r\n`, Op.MS);
    default:
      return store("set", Op.SET);
  }
}

/** A random binary request (never quiet) on the same keys, with `opaque`. */
export function chaosPacket(
  rnd: () => number,
  keySpace: number,
  tag: string,
  opaque: number,
): Uint8Array {
  const key = `k${Math.floor(rnd() * keySpace)}`;
  const v = value(rnd, tag);
  switch (Math.floor(rnd() * 10)) {
    case 0:
    case 1:
      return packet({
        op: OP.SET,
        key,
        extras: setExtras(flagsOf(rnd), ttl(rnd)),
        value: v,
        opaque,
      });
    case 2:
      return packet({ op: OP.ADD, key, extras: setExtras(1, ttl(rnd)), value: v, opaque });
    case 3:
      return packet({ op: OP.REPLACE, key, extras: setExtras(2, ttl(rnd)), value: v, opaque });
    case 4:
      return packet({ op: OP.APPEND, key, value: v, opaque });
    case 5:
      return packet({ op: OP.DELETE, key, opaque });
    case 6: {
      const create = rnd() < 0.5 ? 0 : 0xffffffff;
      const extras = arithExtras(BigInt(1 + Math.floor(rnd() * 9)), 50n, create);
      const op = rnd() < 0.5 ? OP.INCR : OP.DECR;
      return packet({ op, key: `n${Math.floor(rnd() * 5)}`, extras, opaque });
    }
    case 7:
      return packet({ op: OP.TOUCH, key, extras: u32Extras(ttl(rnd)), opaque });
    case 8:
      return packet({ op: OP.GAT, key, extras: u32Extras(ttl(rnd)), opaque });
    default:
      return packet({ op: OP.PREPEND, key, value: v, opaque });
  }
}

function flagsOf(rnd: () => number): number {
  return Math.floor(rnd() * 4);
}
