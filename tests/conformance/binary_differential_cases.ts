/**
 * Binary protocol scripts run by binary_differential_test.ts against real
 * memcached 1.6.18 and memrep: every opcode, quiet variants, errors and
 * memcached's handling of malformed packets.
 * @module
 */

import {
  arithExtras,
  OP,
  packet,
  type PacketSpec,
  setExtras,
  u32Extras,
} from "../helpers/binary.ts";
import type { BinCase, BinStep } from "./binary_differential.ts";

let nextOpaque = 0x1000;
/** A packet with a fresh opaque (so echoing is checked on every reply). */
function p(spec: PacketSpec): Uint8Array {
  return packet({ opaque: nextOpaque++, ...spec });
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, b) => a + b.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const x of parts) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

function set(key: string, value: string, flags = 0, exptime = 0, op: number = OP.SET, cas = 0n) {
  return p({ op, key, value, extras: setExtras(flags, exptime), cas });
}
function get(key: string, op: number = OP.GET) {
  return p({ op, key });
}
function arith(
  key: string,
  delta: bigint,
  initial = 0n,
  exptime = 0xffffffff,
  op: number = OP.INCR,
  cas = 0n,
) {
  return p({ op, key, extras: arithExtras(delta, initial, exptime), cas });
}
/** A step built from the latest CAS seen; its opaque is fixed now, like every other packet's. */
function withCas(make: (cas: bigint) => Uint8Array): BinStep {
  const opaque = nextOpaque++;
  return {
    send: (v) => {
      const b = make(v.cas);
      new DataView(b.buffer, b.byteOffset).setUint32(12, opaque);
      return b;
    },
  };
}
const close = (send: Uint8Array): BinStep => ({ send, mode: "close" });
const idle = (send: Uint8Array): BinStep => ({ send, mode: "idle" });

const big = "x".repeat(1024 * 1024 + 10);

/** The scripts. */
export const BINARY_CASES: BinCase[] = [
  { name: "version and noop", steps: [p({ op: OP.VERSION }), p({ op: OP.NOOP })] },
  {
    name: "set, get, getk, getq and getkq hits and misses",
    steps: [
      set("k1", "hello", 0xdeadbeef, 0),
      get("k1"),
      get("k1", OP.GETK),
      get("nope"),
      get("nope", OP.GETK),
      cat(get("k1", OP.GETQ), get("nope", OP.GETQ), get("k1", OP.GETKQ), get("nope", OP.GETKQ)),
      cat(get("nope", OP.GETQ), get("k1")),
      set("empty", ""),
      get("empty"),
    ],
  },
  {
    name: "add, replace and their quiet forms",
    steps: [
      set("a", "1", 0, 0, OP.ADD),
      set("a", "2", 0, 0, OP.ADD),
      set("r", "1", 0, 0, OP.REPLACE),
      set("a", "3", 5, 0, OP.REPLACE),
      get("a"),
      set("a", "4", 0, 0, OP.ADDQ),
      set("a2", "4", 0, 0, OP.ADDQ),
      set("r2", "1", 0, 0, OP.REPLACEQ),
      set("a", "5", 0, 0, OP.REPLACEQ),
      set("q", "v", 0, 0, OP.SETQ),
      cat(get("a"), get("a2"), get("q")),
    ],
  },
  {
    name: "cas on set, replace, add and delete",
    steps: [
      set("c", "v1"),
      withCas((cas) => set("c", "v2", 0, 0, OP.SET, cas)),
      withCas((cas) => set("c", "v3", 0, 0, OP.SET, cas + 1000n)),
      withCas((cas) => set("c", "v3", 0, 0, OP.REPLACE, cas)),
      set("missing", "v", 0, 0, OP.SET, 12345n),
      set("c", "v4", 0, 0, OP.ADD, 1n),
      get("c"),
      withCas((cas) => p({ op: OP.DELETE, key: "c", cas: cas + 1n })),
      withCas((cas) => p({ op: OP.DELETE, key: "c", cas })),
      get("c"),
      set("c", "v", 0, 0, OP.SETQ, 999n),
    ],
  },
  {
    name: "delete and deleteq",
    steps: [
      set("d", "v"),
      p({ op: OP.DELETE, key: "d" }),
      p({ op: OP.DELETE, key: "d" }),
      set("d", "v"),
      p({ op: OP.DELETEQ, key: "d" }),
      p({ op: OP.DELETEQ, key: "d" }),
    ],
  },
  {
    name: "incr and decr: hits, non-numeric, misses, initial value, wrap, floor",
    steps: [
      set("n", "10"),
      arith("n", 5n),
      arith("n", 3n, 0n, 0xffffffff, OP.DECR),
      arith("n", 100n, 0n, 0xffffffff, OP.DECR),
      get("n"),
      arith("n", 99n),
      arith("n", 1n),
      get("n"),
      set("s", "abc"),
      arith("s", 1n),
      set("e", ""),
      arith("e", 1n),
      arith("none", 1n),
      arith("none", 1n, 0n, 0xffffffff, OP.DECR),
      arith("init", 1n, 42n, 0),
      arith("init", 1n, 42n, 0),
      get("init"),
      arith("init2", 9n, 7n, 100, OP.DECR),
      set("w", "18446744073709551615"),
      arith("w", 2n),
      arith("big", 0xffffffffffffffffn, 0xfffffffffffffffen, 0),
      arith("big", 1n),
      arith("n", 1n, 0n, 0xffffffff, OP.INCRQ),
      arith("nothere", 1n, 0n, 0xffffffff, OP.INCRQ),
      arith("q2", 1n, 5n, 0, OP.DECRQ),
      get("q2"),
      withCas((cas) => arith("q2", 1n, 0n, 0xffffffff, OP.INCR, cas)),
      withCas((cas) => arith("q2", 1n, 0n, 0xffffffff, OP.INCR, cas + 7n)),
      { send: arith("n", 1n, 0n, 0xffffffff, OP.INCR, 1n) },
    ],
  },
  {
    name: "append and prepend",
    steps: [
      set("ap", "mid", 7),
      p({ op: OP.APPEND, key: "ap", value: "-end" }),
      p({ op: OP.PREPEND, key: "ap", value: "start-" }),
      get("ap"),
      p({ op: OP.APPEND, key: "apnone", value: "x" }),
      p({ op: OP.PREPEND, key: "apnone", value: "x" }),
      p({ op: OP.APPENDQ, key: "ap", value: "!" }),
      p({ op: OP.APPENDQ, key: "apnone", value: "!" }),
      p({ op: OP.PREPENDQ, key: "ap", value: "<" }),
      withCas((cas) => p({ op: OP.APPEND, key: "ap", value: "#", cas: cas + 1n })),
      get("ap"),
      withCas((cas) => p({ op: OP.APPEND, key: "ap", value: "#", cas })),
      get("ap"),
    ],
  },
  {
    name: "touch, gat, gatq, gatk and gatkq",
    steps: [
      set("t", "tv", 3, 100),
      p({ op: OP.TOUCH, key: "t", extras: u32Extras(200) }),
      p({ op: OP.TOUCH, key: "tnone", extras: u32Extras(200) }),
      p({ op: OP.GAT, key: "t", extras: u32Extras(300) }),
      p({ op: OP.GATK, key: "t", extras: u32Extras(300) }),
      p({ op: OP.GAT, key: "tnone", extras: u32Extras(300) }),
      p({ op: OP.GATK, key: "tnone", extras: u32Extras(300) }),
      cat(
        p({ op: OP.GATQ, key: "t", extras: u32Extras(0) }),
        p({ op: OP.GATQ, key: "tnone", extras: u32Extras(0) }),
        p({ op: OP.GATKQ, key: "t", extras: u32Extras(0) }),
        p({ op: OP.GATKQ, key: "tnone", extras: u32Extras(0) }),
      ),
      p({ op: OP.TOUCH, key: "t", extras: u32Extras(0xffffffff) }),
      get("t"),
      p({ op: OP.TOUCH, key: "t", extras: u32Extras(200), value: "trailing" }),
    ],
  },
  {
    name: "expired items miss",
    concurrent: true,
    steps: [
      set("ex", "v", 0, 1),
      set("ex2", "v", 0, 100),
      p({ op: OP.TOUCH, key: "ex2", extras: u32Extras(1) }),
      arith("ex3", 1n, 9n, 1),
      { send: cat(get("ex"), get("ex2"), get("ex3")), sleepMs: 2600 },
    ],
  },
  {
    name: "gat sets a new expiry",
    concurrent: true,
    steps: [
      set("ge", "v", 0, 100),
      p({ op: OP.GAT, key: "ge", extras: u32Extras(1) }),
      set("ge2", "v", 0, 1),
      p({ op: OP.GATK, key: "ge2", extras: u32Extras(0) }),
      { send: cat(get("ge"), get("ge2")), sleepMs: 2600 },
    ],
  },
  {
    name: "flush, flushq and flush with a delay",
    steps: [
      set("f", "v"),
      p({ op: OP.FLUSH }),
      get("f"),
      set("f", "v"),
      p({ op: OP.FLUSHQ }),
      get("f"),
      set("f", "v"),
      p({ op: OP.FLUSH, extras: u32Extras(2) }),
      get("f"),
      { send: get("f"), sleepMs: 3500 },
      p({ op: OP.FLUSHQ, extras: u32Extras(0) }),
    ],
  },
  {
    name: "stat groups",
    steps: [
      { send: p({ op: OP.STAT }), statsShape: true },
      { send: p({ op: OP.STAT, key: "settings" }), statsShape: true },
      set("si", "v"),
      { send: p({ op: OP.STAT, key: "items" }), statsShape: true },
      { send: p({ op: OP.STAT, key: "slabs" }), statsShape: true },
      p({ op: OP.STAT, key: "sizes" }),
      p({ op: OP.STAT, key: "reset" }),
      p({ op: OP.STAT, key: "bogus" }),
      p({ op: OP.STAT, key: "conns" }),
      p({ op: OP.STAT, key: "detail on" }),
      p({ op: OP.STAT, key: "detail off" }),
      p({ op: OP.STAT, key: "detail" }),
      p({ op: OP.STAT, key: "detail dump" }),
    ],
  },
  {
    name: "stat counters follow binary commands",
    steps: [
      p({ op: OP.STAT, key: "reset" }),
      set("sc", "1"),
      set("sc", "2", 0, 0, OP.SETQ),
      cat(get("sc"), get("sc-miss"), get("sc", OP.GETQ), get("sc-miss", OP.GETKQ)),
      p({ op: OP.TOUCH, key: "sc", extras: u32Extras(100) }),
      p({ op: OP.GAT, key: "sc-miss", extras: u32Extras(100) }),
      arith("sc", 1n),
      arith("sc-miss", 1n),
      arith("sc-miss", 1n, 0n, 0xffffffff, OP.DECR),
      arith("sc-new", 1n, 5n, 0),
      withCas((cas) => set("sc", "x", 0, 0, OP.SET, cas + 1n)),
      set("sc-nocas", "x", 0, 0, OP.SET, 5n),
      withCas((cas) => set("sc-new", "x", 0, 0, OP.SET, cas)),
      p({ op: OP.DELETE, key: "sc" }),
      p({ op: OP.DELETE, key: "sc" }),
      p({ op: OP.FLUSHQ }),
      {
        send: p({ op: OP.STAT }),
        statsKeys: [
          "cmd_get",
          "cmd_set",
          "cmd_flush",
          "cmd_touch",
          "get_hits",
          "get_misses",
          "delete_misses",
          "delete_hits",
          "incr_misses",
          "incr_hits",
          "decr_misses",
          "decr_hits",
          "cas_misses",
          "cas_hits",
          "cas_badval",
          "touch_hits",
          "touch_misses",
          "auth_cmds",
          "auth_errors",
        ],
      },
    ],
  },
  {
    name: "cas turns add and replace into compare-and-swap",
    steps: [
      set("cr", "v"),
      withCas((cas) => set("cr", "w", 0, 0, OP.ADD, cas)),
      withCas((cas) => set("cr", "w", 0, 0, OP.ADD, cas + 1n)),
      set("cr-none", "w", 0, 0, OP.REPLACE, 77n),
      set("cr-none", "w", 0, 0, OP.ADD, 77n),
      withCas((cas) => set("cr", "z", 0, 0, OP.REPLACEQ, cas)),
      get("cr"),
      set("cr", "v", 0, 0, OP.SET, 0xffffffffffffffffn),
    ],
  },
  {
    name: "verbosity, unknown opcodes and SASL without -S",
    steps: [
      p({ op: OP.VERBOSITY, extras: u32Extras(1) }),
      p({ op: 0x50 }),
      p({ op: 0x50, key: "kk", value: "body" }),
      p({ op: OP.SASL_LIST }),
      p({ op: OP.SASL_AUTH, key: "PLAIN", value: "\0user\0pass" }),
      p({ op: OP.SASL_STEP, key: "PLAIN", value: "data" }),
      // Unknown opcode with extras and key: memcached swallows bodylen bytes after them.
      cat(p({ op: 0x44, extras: u32Extras(1), key: "key" }), new Uint8Array(7), get("x")),
    ],
  },
  {
    // memcached swallows bodylen bytes after the extras: 4 of the next packet. It answers
    // once they are read, and the noop's remaining 20 bytes then start a bad header.
    name: "verbosity with extras answers only once it swallowed the next packet's first bytes",
    steps: [
      idle(p({ op: OP.VERBOSITY, extras: u32Extras(1) })),
      idle(p({ op: OP.NOOP, opaque: 9 })),
      close(p({ op: OP.NOOP, opaque: 10 })),
    ],
  },
  {
    name: "sasl list mechs with a body is a protocol error",
    steps: [close(p({ op: OP.SASL_LIST, key: "x" }))],
  },
  { name: "sasl auth without a key is a protocol error", steps: [close(p({ op: OP.SASL_AUTH }))] },
  {
    name: "quit answers then closes",
    steps: [set("qk", "v"), close(p({ op: OP.QUIT }))],
  },
  { name: "quitq closes silently", steps: [close(p({ op: OP.QUITQ }))] },
  { name: "quit with a key is a protocol error", steps: [close(p({ op: OP.QUIT, key: "k" }))] },
  {
    name: "bad magic closes",
    steps: [set("m", "v"), close(p({ op: OP.GET, key: "m", magic: 0x81 }))],
  },
  {
    name: "bad magic after a good packet in one write",
    steps: [close(cat(get("m"), p({ op: OP.GET, key: "m", magic: 0x00 })))],
  },
  ...[20, 21, 45].map((n): BinCase => ({
    name:
      `bad magic after ${n} hits: memcached sent only what it had transmitted (every 20 requests)`,
    steps: [
      set("m", "v"),
      close(
        cat(...Array.from({ length: n }, () => get("m")), p({ op: OP.GET, key: "m", magic: 0 })),
      ),
    ],
  })),
  {
    name: "bad magic after hits and an error: the error flushed the hits before it",
    steps: [
      set("m", "v"),
      close(cat(get("m"), get("m"), get("none"), get("m"), p({ op: OP.GET, key: "m", magic: 0 }))),
    ],
  },
  {
    name: "bad magic after an error that skips a body: the error is lost with it",
    steps: [
      set("m", "v"),
      close(cat(get("m"), p({ op: 0x50, value: "abcde" }), p({ op: OP.GET, magic: 0 }))),
    ],
  },
  {
    name: "bad magic after SASL with data (no -S): the reply is lost",
    steps: [close(cat(p({ op: OP.SASL_AUTH, key: "PLAIN", value: "x" }), p({ op: 0, magic: 0 })))],
  },
  {
    name: "bad magic after SASL without data (no -S): the reply was sent",
    steps: [close(cat(p({ op: OP.SASL_AUTH, key: "PLAIN" }), p({ op: OP.GET, magic: 0 })))],
  },
  {
    name: "bad magic after an error skipping 100 KB: the skip ended the read, the error was sent",
    steps: [close(cat(p({ op: 0x50, value: "z".repeat(100000) }), p({ op: OP.GET, magic: 0 })))],
  },
  {
    name: "text after binary closes",
    steps: [p({ op: OP.NOOP }), close(new TextEncoder().encode("get foo\r\n" + " ".repeat(20)))],
  },
  {
    name: "key length beyond the body",
    steps: [close(p({ op: OP.GET, key: "abc", bodylen: 2 }))],
  },
  {
    name: "key plus extras beyond the body",
    steps: [close(p({ op: OP.SET, key: "abc", extras: setExtras(0, 0), value: "", bodylen: 10 }))],
  },
  { name: "key over 250 bytes", steps: [close(get("k".repeat(251)))] },
  {
    name: "key of 250 bytes is fine",
    steps: [set("k".repeat(250), "v"), get("k".repeat(250), OP.GETK)],
  },
  { name: "get with extras", steps: [close(p({ op: OP.GET, key: "k", extras: u32Extras(1) }))] },
  { name: "get without a key", steps: [close(p({ op: OP.GET }))] },
  {
    name: "set with short extras",
    steps: [close(p({ op: OP.SET, key: "k", extras: u32Extras(1), value: "v" }))],
  },
  {
    name: "set without a key",
    steps: [close(p({ op: OP.SET, extras: setExtras(0, 0), value: "v" }))],
  },
  { name: "noop with a body", steps: [close(p({ op: OP.NOOP, value: "x" }))] },
  { name: "version with a key", steps: [close(p({ op: OP.VERSION, key: "x" }))] },
  { name: "delete with a value", steps: [close(p({ op: OP.DELETE, key: "k", value: "x" }))] },
  {
    name: "incr with short extras",
    steps: [close(p({ op: OP.INCR, key: "k", extras: setExtras(1, 0) }))],
  },
  { name: "flush with a key", steps: [close(p({ op: OP.FLUSH, key: "k" }))] },
  {
    name: "flush with 8 bytes of extras",
    steps: [close(p({ op: OP.FLUSH, extras: setExtras(1, 0) }))],
  },
  { name: "touch without extras", steps: [close(p({ op: OP.TOUCH, key: "k" }))] },
  {
    name: "append with extras",
    steps: [close(p({ op: OP.APPEND, key: "k", extras: u32Extras(1), value: "v" }))],
  },
  { name: "stat with extras", steps: [close(p({ op: OP.STAT, extras: u32Extras(1) }))] },
  {
    name: "value too large: E2BIG, the old item goes, the value is swallowed",
    steps: [
      set("tl", "old"),
      set("tl", big),
      get("tl"),
      set("tl2", "old"),
      set("tl2", big, 0, 0, OP.SETQ),
      set("tl3", big, 0, 0, OP.ADD),
      p({ op: OP.APPEND, key: "tl2", value: big }),
      get("tl2"),
    ],
  },
  {
    name: "body length over 2 GiB: E2BIG and nothing swallowed",
    steps: [
      cat(p({ op: OP.SET, key: "ov", extras: setExtras(0, 0), bodylen: 0xfffffff0 }), get("ov")),
    ],
  },
  {
    name: "body length far beyond the item size: E2BIG, then swallowing",
    steps: [
      idle(
        cat(p({ op: OP.SET, key: "ov", extras: setExtras(0, 0), bodylen: 0x10000000 }), get("ov")),
      ),
    ],
  },
  {
    name: "truncated header, then the rest",
    steps: [
      idle(set("tr", "value").subarray(0, 10)),
      set("tr", "value").subarray(10),
      idle(cat(get("tr"), get("tr")).subarray(0, 30)),
      { send: get("tr") },
    ],
  },
  {
    name: "truncated value waits for the rest",
    steps: [
      idle(set("tv", "0123456789").subarray(0, 40)),
      new TextEncoder().encode("89"),
      get("tv"),
    ],
  },
  {
    name: "packets split into single bytes",
    steps: [{
      send: cat(set("sp", "split", 9), get("sp", OP.GETK), arith("spn", 1n, 3n, 0)),
      chunk: 7,
    }],
  },
  {
    name: "quiet replies come out at the next loud command",
    steps: [
      cat(
        set("p1", "a", 0, 0, OP.SETQ),
        set("p1", "b", 0, 0, OP.ADDQ),
        get("p1", OP.GETQ),
        get("p-miss", OP.GETKQ),
        p({ op: OP.DELETEQ, key: "p-miss" }),
        arith("p1", 1n, 0n, 0xffffffff, OP.INCRQ),
        get("p1", OP.GETK),
      ),
    ],
  },
  {
    name: "a multi-get of 30 keys as getkq + noop",
    steps: [
      cat(...Array.from({ length: 15 }, (_, i) => set(`mg${i * 2}`, `v${i}`, i, 0, OP.SETQ))),
      cat(...Array.from({ length: 30 }, (_, i) => get(`mg${i}`, OP.GETKQ)), p({ op: OP.NOOP })),
    ],
  },
  {
    // Found by the random differential: memrep padded in place.
    name: "an incr of an item a getq reply not yet written holds makes a new item (not padded)",
    steps: [
      set("pin", "10"),
      cat(get("pin", OP.GETQ), arith("pin", 1n, 0n, 0xffffffff, OP.DECR)),
      get("pin"),
      // A noop writes the replies out first: then the decr pads in place.
      cat(get("pin", OP.GETQ), p({ op: OP.NOOP }), arith("pin", 1n, 0n, 0xffffffff, OP.DECR)),
      get("pin"),
    ],
  },
  {
    // Found by the random differential: the proxy's touch-then-read answered a miss.
    name: "gat and touch with an absolute time already past answer the hit, then it is gone",
    steps: [
      set("past", "v", 7),
      p({ op: OP.GAT, key: "past", extras: u32Extras(2592001) }),
      get("past"),
      set("past", "v", 7),
      p({ op: OP.TOUCH, key: "past", extras: u32Extras(2592001) }),
      get("past"),
      set("past", "v", 7),
      cat(p({ op: OP.GATKQ, key: "past", extras: u32Extras(2592001) }), p({ op: OP.NOOP })),
      get("past"),
    ],
  },
  {
    name: "binary key bytes",
    steps: [
      set("\x00\xff\r\n key", "\x00\x01\r\n\x80"),
      get("\x00\xff\r\n key", OP.GETK),
    ],
  },
];
