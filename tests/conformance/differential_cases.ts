/**
 * Scripts for the differential suite: byte sequences whose replies from
 * `memrep serve` must match memcached 1.6's byte for byte (after the
 * normalising in differential.ts). Chosen from memcached's doc/protocol.txt and
 * the behaviours its t/*.t tests pin down.
 * @module
 */

import type { Case, Step } from "./differential.ts";
import { FOUND_CASES } from "./differential_found_cases.ts";

/** `set`-family command with its data block. */
function store(cmd: string, key: string, value: string, flags = 0, exp = 0, extra = ""): string {
  return `${cmd} ${key} ${flags} ${exp} ${value.length}${extra}\r\n${value}\r\n`;
}
/** `set key 0 0 n\r\nvalue\r\n`. */
function set(key: string, value: string, flags = 0, exp = 0): string {
  return store("set", key, value, flags, exp);
}
/** One `ms` with its data block. */
function ms(key: string, value: string, flags = ""): string {
  return `ms ${key} ${value.length}${flags ? " " + flags : ""}\r\n${value}\r\n`;
}
const ALL_BYTES = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("");
const K250 = "k".repeat(250);
const K251 = "k".repeat(251);

const basic: Case[] = [
  { name: "set then get returns the value", steps: [set("foo", "bar"), "get foo\r\n"] },
  { name: "get of a missing key is END", steps: ["get nokey\r\n"] },
  {
    name: "multi-key get returns hits in request order, skips misses, repeats duplicates",
    steps: [set("a", "1"), set("b", "22"), "get a nokey b a\r\n"],
  },
  {
    name: "gets returns a CAS that is stable across reads",
    steps: [set("foo", "x"), "gets foo\r\n", "gets foo\r\n"],
  },
  { name: "gets with several keys", steps: [set("a", "1"), set("b", "2"), "gets a b c\r\n"] },
  {
    name: "set overwrite changes the CAS",
    steps: [set("k", "1"), "gets k\r\n", set("k", "2"), "gets k\r\n"],
  },
  {
    name: "flags up to 2^32-1 round-trip",
    steps: [set("f", "x", 4294967295), "get f\r\n", set("g", "y", 123), "gets g\r\n"],
  },
  { name: "flags of 2^32 (33 bits)", steps: ["set f 4294967296 0 1\r\nx\r\n", "get f\r\n"] },
  { name: "negative flags are rejected", steps: ["set f -1 0 1\r\nx\r\n", "get f\r\n"] },
  { name: "empty value", steps: ["set e 0 0 0\r\n\r\n", "get e\r\n"] },
  {
    name: "value containing END and CRLF is framed by length",
    steps: [set("v", "END\r\n"), "get v\r\n", set("w", "\r\n\r\n"), "get v w\r\n"],
  },
  { name: "all 256 byte values round-trip", steps: [set("bin", ALL_BYTES), "get bin\r\n"] },
  { name: "key of 250 bytes works", steps: [set(K250, "ok"), `get ${K250}\r\n`] },
  { name: "get with a 251-byte key is a client error", steps: [`get ${K251}\r\n`] },
  { name: "set with a 251-byte key is a client error", steps: [set(K251, "v"), `get ${K251}\r\n`] },
  { name: "multi-get with one key too long", steps: [set("a", "1"), `get a ${K251} a\r\n`] },
  { name: "get without a key is an error", steps: ["get\r\n", "gets\r\n", "get \r\n"] },
  {
    name: "commands are case sensitive",
    steps: ["GET foo\r\n", "SET foo 0 0 1\r\nx\r\n", "Get foo\r\n"],
  },
  {
    name: "repeated spaces between tokens are accepted",
    steps: ["set  sp  0  0  2\r\nhi\r\n", "get   sp    sp\r\n", "get sp \r\n"],
  },
  {
    name: "bare LF line endings are accepted",
    steps: ["set lf 0 0 2\nhi\r\n", "get lf\n", "version\n"],
  },
  { name: "tab is not a token separator", steps: [set("t", "1"), "get\tt\r\n"] },
  { name: "unknown command is ERROR", steps: ["boguscommand slkdsldkfjsd\r\n", "foo\r\n"] },
  { name: "empty line is ERROR", steps: ["\r\n", "\n"] },
  { name: "line of only spaces", steps: [" \r\n", "   \r\n"] },
  {
    name: "control characters inside a key",
    steps: ["set a\x01b 0 0 1\r\nx\r\n", "get a\x01b\r\n", "get a\x7fb\r\n"],
  },
  {
    name: "non-ASCII key bytes are stored as given",
    steps: [set("cl\xe9", "x"), "get cl\xe9\r\n"],
  },
  { name: "version reply format", steps: ["version\r\n", "version extra\r\n"] },
  {
    name: "quit closes the connection",
    steps: [set("q", "1"), { send: "quit\r\n", mode: "close" }],
  },
  {
    name: "commands after quit in the same write are not run",
    steps: [{ send: "quit\r\nget q\r\n", mode: "close" }],
  },
  { name: "shutdown is refused by default", steps: ["shutdown\r\n"] },
];

const storage: Case[] = [
  { name: "add on a missing key stores", steps: [store("add", "a", "1"), "get a\r\n"] },
  {
    name: "add on a present key is NOT_STORED and keeps the value",
    steps: [set("a", "1"), store("add", "a", "2"), "get a\r\n"],
  },
  {
    name: "replace on a missing key is NOT_STORED",
    steps: [store("replace", "r", "1"), "get r\r\n"],
  },
  {
    name: "replace on a present key stores",
    steps: [set("r", "1", 3), store("replace", "r", "22", 5), "get r\r\n"],
  },
  {
    name: "append and prepend on a missing key are NOT_STORED",
    steps: [store("append", "m", "x"), store("prepend", "m", "y"), "get m\r\n"],
  },
  {
    name: "append and prepend keep the original flags and join bytes",
    steps: [
      set("k", "a", 5),
      store("append", "k", "bc", 9),
      store("prepend", "k", "z", 7),
      "gets k\r\n",
    ],
  },
  {
    name: "append changes the CAS",
    steps: [set("k", "a"), "gets k\r\n", store("append", "k", "b"), "gets k\r\n"],
  },
  { name: "set with too few tokens is ERROR", steps: ["set k 0 0\r\n", "set k\r\n", "set\r\n"] },
  {
    name: "set with non-numeric flags is a client error and the data line is read as a command",
    steps: ["set k abc 0 1\r\nx\r\n", "get k\r\n"],
  },
  { name: "set with non-numeric exptime", steps: ["set k 0 abc 1\r\nx\r\n", "get k\r\n"] },
  { name: "set with non-numeric length", steps: ["set k 0 0 abc\r\nx\r\n", "get k\r\n"] },
  { name: "set with negative length", steps: ["set k 0 0 -1\r\n", "get k\r\n"] },
  { name: "set with trailing garbage token", steps: ["set k 0 0 1 garbage\r\nx\r\n", "get k\r\n"] },
  { name: "set with too many tokens", steps: ["set k 0 0 1 noreply x y\r\nx\r\n", "get k\r\n"] },
  {
    name: "data block longer than declared is a bad data chunk",
    steps: ["set k 0 0 3\r\nabcd\r\n", "get k\r\n"],
  },
  { name: "data block without CRLF after it", steps: ["set k 0 0 3\r\nabcXY", "get k\r\n"] },
  {
    name: "data block shorter than declared waits for more bytes",
    steps: [
      { send: "set k 0 0 5\r\nab\r\n", mode: "idle" },
      { send: "cd\r\n", mode: "idle" },
      "get k\r\n",
    ],
  },
  {
    name: "value over the item size limit is refused and its data swallowed",
    steps: [`set big 0 0 2000000\r\n${"x".repeat(2000000)}\r\n`, "get big\r\n"],
  },
  {
    name: "value over the limit replaces nothing: old value is gone",
    steps: [set("big", "old"), `set big 0 0 1100000\r\n${"x".repeat(1100000)}\r\n`, "get big\r\n"],
  },
  {
    name: "a large value (500 KB) round-trips",
    steps: [`set lv 0 0 500000\r\n${"v".repeat(500000)}\r\n`, "get lv\r\n"],
  },
  { name: "negative exptime expires immediately", steps: [set("e", "1", 0, -1), "get e\r\n"] },
  {
    name: "absolute exptime in the past expires immediately",
    steps: [set("e", "1", 0, 1000000000), "get e\r\n"],
  },
  {
    name: "absolute exptime in the future keeps the item",
    steps: ["set e 0 {now+100} 1\r\nx\r\n", "get e\r\n", "mg e t v\r\n"],
  },
  {
    name: "relative exptime is reported by mg t",
    steps: [set("e", "1", 0, 100), "mg e t\r\n", set("n", "1"), "mg n t\r\n"],
  },
  {
    name: "item with exptime 1 is gone after 2 seconds",
    steps: [set("e", "1", 0, 1), { send: "get e\r\n", sleepMs: 2100 }],
  },
  {
    name: "set after flush_all in the same second is visible",
    steps: [set("a", "1"), "flush_all\r\n", set("a", "2"), "get a\r\n"],
  },
];

const cas: Case[] = [
  { name: "cas on a missing key is NOT_FOUND", steps: ["cas nokey 0 0 1 1\r\nx\r\n"] },
  {
    name: "cas with the current CAS stores, a stale CAS is EXISTS",
    steps: [
      set("c", "1"),
      "gets c\r\n",
      "cas c 0 0 1 {cas}\r\n2\r\n",
      "cas c 0 0 1 {cas}\r\n3\r\n",
      "gets c\r\n",
    ],
  },
  {
    name: "cas with a wrong CAS is EXISTS",
    steps: [set("c", "1"), "gets c\r\n", "cas c 0 0 1 {cas+1}\r\n2\r\n", "get c\r\n"],
  },
  {
    name: "cas noreply",
    steps: [set("c", "1"), "gets c\r\n", "cas c 0 0 1 {cas} noreply\r\n2\r\n", "get c\r\n"],
  },
  {
    name: "cas with a non-numeric CAS",
    steps: [set("c", "1"), "cas c 0 0 1 abc\r\nx\r\n", "get c\r\n"],
  },
  { name: "cas without a CAS token", steps: [set("c", "1"), "cas c 0 0 1\r\nx\r\n", "get c\r\n"] },
  {
    name: "cas after delete is NOT_FOUND",
    steps: [set("c", "1"), "gets c\r\n", "delete c\r\n", "cas c 0 0 1 {cas}\r\n2\r\n"],
  },
  {
    name: "touch does not change the CAS",
    steps: [set("c", "1"), "gets c\r\n", "touch c 100\r\n", "gets c\r\n"],
  },
];

const noreply: Case[] = [
  {
    name: "noreply silences every storage command (t/noreply.t)",
    steps: [
      "flush_all noreply\r\n",
      "flush_all 0 noreply\r\n",
      "verbosity 0 noreply\r\n",
      store("add", "nr", "1", 0, 0, " noreply"),
      "get nr\r\n",
      store("set", "nr", "2", 0, 0, " noreply"),
      store("replace", "nr", "3", 0, 0, " noreply"),
      "get nr\r\n",
      store("append", "nr", "4", 0, 0, " noreply"),
      store("prepend", "nr", "5", 0, 0, " noreply"),
      "gets nr\r\n",
      "incr nr 3 noreply\r\n",
      "get nr\r\n",
      "decr nr 2 noreply\r\n",
      "get nr\r\n",
      "delete nr noreply\r\n",
      "get nr\r\n",
    ],
  },
  {
    name: "noreply on failing commands is silent too",
    steps: [
      set("p", "1"),
      store("add", "p", "2", 0, 0, " noreply"),
      store("replace", "missing", "2", 0, 0, " noreply"),
      "incr missing 1 noreply\r\n",
      "delete missing noreply\r\n",
      "touch missing 10 noreply\r\n",
      "get p\r\n",
    ],
  },
  {
    name: "noreply on client errors",
    steps: [
      set("t", "hi"),
      "incr t 1 noreply\r\n",
      "incr t abc noreply\r\n",
      "set k abc 0 1 noreply\r\nx\r\n",
    ],
  },
  { name: "touch noreply", steps: [set("t", "1"), "touch t 100 noreply\r\n", "mg t t\r\n"] },
  {
    name: "a misspelt noreply is a trailing token",
    steps: [set("t", "1"), "delete t norepl\r\n", "get t\r\n"],
  },
];

const arith: Case[] = [
  {
    name: "incr and decr basics, decr floors at 0 (t/incrdecr.t)",
    steps: [
      set("num", "1"),
      "incr num 1\r\n",
      "incr num 8\r\n",
      "decr num 1\r\n",
      "decr num 9\r\n",
      "decr num 5\r\n",
      "get num\r\n",
    ],
  },
  {
    name: "incr wraps at 2^64",
    steps: [set("num", "18446744073709551615"), "incr num 1\r\n", "get num\r\n"],
  },
  {
    name: "incr past 2^63",
    steps: [set("b", "9223372036854775807"), "incr b 1\r\n", "incr b 1\r\n", "decr b 1\r\n"],
  },
  { name: "incr of 2^32", steps: [set("num", "4294967296"), "incr num 1\r\n"] },
  {
    // The value is a C string to strtoull: a NUL ends the number as white space does.
    name: "incr of a value with a NUL after its digits",
    steps: [
      set("z", "1\0"),
      "incr z 1\r\n",
      "get z\r\n",
      set("y", "5\0zz"),
      "decr y 2\r\n",
      "get y\r\n",
    ],
  },
  {
    name: "incr with the largest delta",
    steps: [set("z", "0"), "incr z 18446744073709551615\r\n", "incr z 18446744073709551610\r\n"],
  },
  {
    name: "incr with a delta over 2^64 is invalid",
    steps: [set("z", "0"), "incr z 18446744073709551616\r\n", "get z\r\n"],
  },
  {
    name: "incr with a non-numeric delta",
    steps: [set("z", "0"), "incr z abc\r\n", "incr z -1\r\n", "decr z 1x\r\n", "incr z\r\n"],
  },
  { name: "incr on a missing key is NOT_FOUND", steps: ["incr nokey 1\r\n", "decr nokey 1\r\n"] },
  {
    name: "incr on a non-numeric value",
    steps: [set("text", "hi"), "incr text 1\r\n", "decr text 1\r\n"],
  },
  { name: "incr on an empty value", steps: ["set e 0 0 0\r\n\r\n", "incr e 1\r\n"] },
  { name: "incr on a negative number", steps: [set("n", "-5"), "incr n 1\r\n"] },
  {
    name: "incr on a number with spaces",
    steps: [set("n", " 5"), "incr n 1\r\n", set("m", "5 "), "incr m 1\r\n"],
  },
  {
    name: "incr that grows the length",
    steps: [set("n", "99"), "incr n 1\r\n", "get n\r\n", "gets n\r\n"],
  },
  {
    name: "decr that shrinks the length pads in place",
    steps: [set("n", "100"), "decr n 1\r\n", "get n\r\n", "incr n 1\r\n", "get n\r\n"],
  },
  {
    name: "incr on a value longer than 20 digits",
    steps: [set("n", "0000000000000000000000001"), "incr n 1\r\n", "get n\r\n"],
  },
  {
    name: "incr on a value of leading zeros",
    steps: [set("n", "007"), "incr n 1\r\n", "get n\r\n"],
  },
  {
    name: "incr keeps flags and changes the CAS",
    steps: [set("n", "1", 42), "gets n\r\n", "incr n 1\r\n", "gets n\r\n"],
  },
  {
    name: "incr on a value of 2^64 (overflowing digits)",
    steps: [set("n", "18446744073709551616"), "incr n 1\r\n"],
  },
];

const touchGat: Case[] = [
  { name: "touch hit and miss", steps: [set("t", "1"), "touch t 10\r\n", "touch nokey 10\r\n"] },
  {
    name: "touch with an invalid exptime",
    steps: [set("t", "1"), "touch t abc\r\n", "touch t\r\n"],
  },
  {
    name: "touch with a negative exptime expires the item",
    steps: [set("t", "1"), "touch t -1\r\n", "get t\r\n"],
  },
  {
    name: "gat returns the value and sets the TTL",
    steps: [set("g", "val"), "gat 100 g\r\n", "mg g t\r\n"],
  },
  { name: "gats returns the CAS", steps: [set("g", "val"), "gats 100 g\r\n", "gets g\r\n"] },
  {
    name: "gat with several keys and a miss",
    steps: [set("a", "1"), set("b", "2"), "gat 50 a x b\r\n"],
  },
  { name: "gat of a missing key", steps: ["gat 10 nokey\r\n"] },
  { name: "gat with an invalid exptime", steps: [set("g", "1"), "gat abc g\r\n"] },
  { name: "gat without a key", steps: ["gat 10\r\n", "gat\r\n"] },
  {
    name: "gat with a negative exptime returns then expires",
    steps: [set("g", "1"), "gat -1 g\r\n", "get g\r\n"],
  },
];

const del: Case[] = [
  {
    name: "delete hit then miss",
    steps: [set("d", "1"), "delete d\r\n", "delete d\r\n", "get d\r\n"],
  },
  {
    name: "delete with a 0 time argument is allowed",
    steps: [set("d", "1"), "delete d 0\r\n", "get d\r\n"],
  },
  {
    name: "delete with a non-zero time is an error",
    steps: [set("d", "1"), "delete d 5\r\n", "get d\r\n"],
  },
  {
    name: "delete noreply variants",
    steps: [
      set("d", "1"),
      set("e", "1"),
      "delete d noreply\r\n",
      "delete e 0 noreply\r\n",
      "get d e\r\n",
    ],
  },
  { name: "delete without a key", steps: ["delete\r\n"] },
  {
    name: "delete with too many tokens",
    steps: [set("d", "1"), "delete d 0 noreply extra\r\n", "get d\r\n"],
  },
];

const flush: Case[] = [
  { name: "flush_all empties the cache", steps: [set("a", "1"), "flush_all\r\n", "get a\r\n"] },
  { name: "flush_all 0", steps: [set("a", "1"), "flush_all 0\r\n", "get a\r\n"] },
  { name: "flush_all with an invalid delay", steps: ["flush_all invalid\r\n", "flush_all -1\r\n"] },
  {
    name: "flush_all with a far delay keeps items for now",
    steps: [set("a", "1"), "flush_all 86400\r\n", "get a\r\n", set("b", "2"), "get a b\r\n"],
  },
  {
    name: "flush_all with a 1 s delay flushes at once (memcached counts the current second)",
    steps: [set("a", "1"), "flush_all 1\r\n", "get a\r\n"],
  },
  {
    name: "flush_all with a 3 s delay keeps items, then flushes",
    steps: [
      set("a", "1"),
      "flush_all 3\r\n",
      "get a\r\n",
      set("b", "2"),
      { send: "get a b\r\n", sleepMs: 3200 },
    ],
  },
  {
    // memcached's LRU maintainer takes flushed items away: a later delayed flush_all,
    // replacing the one that came, does not bring them back.
    name: "a delayed flush_all after one that came leaves its items flushed",
    steps: [
      set("a", "1"),
      set("b", "2"),
      "flush_all 1\r\n",
      { send: "flush_all 60\r\n", sleepMs: 3200 },
      "get a b\r\n",
      "flush_all 0\r\n",
    ],
  },
  {
    name: "flush_all at an absolute time",
    steps: [set("a", "1"), "flush_all {now+100}\r\n", "get a\r\n"],
  },
  { name: "flush_all noreply", steps: [set("a", "1"), "flush_all noreply\r\n", "get a\r\n"] },
  { name: "flush_all with too many tokens", steps: ["flush_all 0 noreply extra\r\n"] },
];

const misc: Case[] = [
  {
    name: "verbosity",
    steps: [
      "verbosity 1\r\n",
      "verbosity 0\r\n",
      "verbosity\r\n",
      "verbosity noreply\r\n",
      "verbosity 1 noreply\r\n",
    ],
  },
  { name: "verbosity with a bad level", steps: ["verbosity abc\r\n", "verbosity 1 2 3\r\n"] },
  {
    name: "a line over 2048 bytes that is not a get closes the connection",
    steps: [{ send: `set ${"x".repeat(5000)}`, mode: "idle" }],
  },
  {
    name: "a very long multi-get line works",
    steps: [
      set("a", "1"),
      `get ${Array.from({ length: 300 }, (_, i) => `key${i}_${"p".repeat(90)}`).join(" ")} a\r\n`,
    ],
  },
  {
    name: "an HTTP request line closes the connection",
    steps: [{ send: "GET / HTTP/1.0\r\n", mode: "idle" }],
  },
];

/** Item 16 of issue 9: where memrep used to differ from memcached 1.6.18. */
const edges: Case[] = [
  {
    name: "a NUL byte ends the command line (memcached reads it as a C string)",
    steps: [
      "set a\x00b 0 0 1\r\nx\r\n",
      "get a\x00b\r\n",
      "set \x00 0 0 1\r\nx\r\n",
      set("a", "1") + "get a\x00b\r\nget x \x00 a\r\n",
      "mg a\x00b v\r\nms a\x00b 1\r\nx\r\n",
      "delete a\x00junk\r\nincr a\x00b 1\r\ntouch a\x00b 1\r\n",
      "set n 0 0 1\x00junk\r\ny\r\nget n\r\n",
      "\x00version\r\n",
    ],
  },
  {
    name: "stats cachedump: arguments, bad class ids, an empty class",
    steps: [
      "stats cachedump\r\n",
      "stats cachedump 1\r\n",
      "stats cachedump a b\r\n",
      "stats cachedump 1 x\r\n",
      "stats cachedump -1 0\r\n",
      "stats cachedump 64 0\r\nstats cachedump 4294967360 0\r\n",
      "stats cachedump 63 0\r\nstats cachedump 0 0\r\nstats cachedump 40 0 extra\r\n",
    ],
  },
  {
    name: "stats detail on, dump, off; prefixes counted for get, set, delete",
    steps: [
      "stats detail\r\nstats detail bogus\r\n",
      "stats detail dump\r\n",
      "stats detail on\r\n",
      set("a:1", "x") + "get a:1 c:2 nocolon\r\n" + set("e:f", "z") + "delete a:1\r\n",
      "gets a:1\r\ngat 0 e:f\r\nmg m:1 v\r\n" + ms("m:2", "v"),
      "stats detail dump\r\n",
      "stats detail off\r\nget a:1\r\nstats detail dump\r\n",
      "stats detail on extra\r\nstats reset\r\nstats detail dump\r\nstats detail off\r\n",
    ],
  },
  {
    name: "lru_crawler metadump with bad or empty class lists",
    // One per step (memcached may refuse a metadump behind queued replies),
    // refusals only: memcached runs a started dump on another thread, so
    // commands pipelined after it come back in no fixed order, and an empty
    // list (NOTSTARTED) wedges its crawler for later dumps.
    steps: [
      "lru_crawler metadump 0\r\n",
      "lru_crawler metadump 64\r\n",
      "lru_crawler metadump abc\r\n",
      "lru_crawler metadump -1\r\n",
      "lru_crawler metadump 1,abc\r\n",
      "lru_crawler metadump 1x\r\n",
      "lru_crawler metadump\r\nlru_crawler metadump all extra\r\n",
    ],
  },
  {
    name: "a refused too-large set is answered once its data is swallowed",
    steps: [
      { send: "set big 0 0 2000000\r\n", mode: "idle" },
      { send: "x".repeat(1000000), mode: "idle" },
      { send: "x".repeat(1000000), mode: "idle" },
      { send: "\r\n", mode: "idle" },
      "get big\r\n",
    ],
  },
  {
    name: "replies before a too-large ms go at once, its refusal once its data is swallowed",
    steps: [
      { send: "get nokey\r\nms big 2000000 T0\r\n" + "x".repeat(100), mode: "idle" },
      { send: "x".repeat(1999900) + "\r\n", mode: "idle" },
      "mg big v\r\n",
    ],
  },
  {
    name: "a get line decided before its newline is answered once the newline comes",
    steps: [
      set("a", "1"),
      { send: "get a " + "k".repeat(3000), mode: "idle" },
      { send: "k".repeat(3000), mode: "idle" },
      { send: "\r\nget a\r\n", mode: "idle" },
      { send: "get a\x00" + "b ".repeat(2000), mode: "idle" },
      { send: "b".repeat(5000) + "\r\nversion\r\n", mode: "idle" },
      { send: "gets a " + "x ".repeat(1500) + "\x00" + "y".repeat(300), mode: "idle" },
      { send: "\n", mode: "idle" },
    ],
  },
  {
    name: "a 10 MB get line without a newline keeps the connection",
    steps: [
      { send: "get " + "k".repeat(10_000_000), mode: "idle", idleMs: 500 },
      { send: "\r\nversion\r\n", mode: "idle", idleMs: 500 },
    ],
  },
];

const metaGet: Case[] = [
  { name: "mn answers MN", steps: ["mn\r\n"] },
  {
    name: "mg miss is EN, hit without flags is HD",
    steps: ["mg foo\r\n", set("foo", "hi"), "mg foo\r\n"],
  },
  { name: "mg v returns the value", steps: [set("foo", "hi"), "mg foo v\r\n"] },
  {
    name: "mg with s v f k O flags in order",
    steps: [set("foo", "hello", 77), "mg foo s v f k Oabc\r\n", "mg foo Oxyz k f s\r\n"],
  },
  {
    name: "mg c returns the CAS seen by gets",
    steps: [set("foo", "hi"), "mg foo c\r\n", "gets foo\r\n"],
  },
  { name: "mg t without a TTL is -1", steps: [set("foo", "hi"), "mg foo t v\r\n"] },
  {
    name: "mg q hides a miss, shows a hit",
    steps: [set("foo", "hi"), "mg nokey v q\r\nmg foo v q\r\nmg nokey2 q k\r\n"],
  },
  { name: "mg q with k and O on a miss", steps: ["mg nokey q k Oo1\r\nmg nokey k Oo2\r\n"] },
  { name: "mg k on a miss", steps: ["mg nokey k v\r\n"] },
  {
    name: "mg h and l report hits and last access",
    steps: [set("foo", "hi"), "mg foo h l\r\n", "mg foo h l\r\n", "mg foo h\r\n"],
  },
  {
    name: "mg T updates the TTL",
    steps: [set("foo", "hi", 0, 100), "mg foo T300 t\r\n", "mg foo t\r\n"],
  },
  {
    name: "mg T-1 expires the item",
    steps: [set("foo", "hi", 0, 100), "mg foo T-1\r\n", "mg foo v\r\n"],
  },
  {
    name: "mg N vivifies a miss and hands out the win once",
    steps: ["mg viv N30 s c v t\r\n", "mg viv N30 s v c\r\n", "mg viv v\r\n"],
  },
  {
    name: "mg N vivify: Z on every later mg (with or without N) until a set replaces it",
    steps: [
      "mg viz N30 s v\r\n",
      "mg viz N30 s v\r\n",
      "mg viz s v f\r\n",
      ms("viz", "new", "T30 F5"),
      "mg viz N30 s v f\r\n",
    ],
  },
  {
    name: "mg R hands out a recache win when the TTL is low",
    steps: [set("r", "v", 0, 20), "mg r R30 v t\r\n", "mg r R30 v t\r\n", "mg r R5 v\r\n"],
  },
  {
    name: "mg base64 key with b",
    steps: [ms("44OG44K544OI", "po", "b"), "mg 44OG44K544OI v\r\n", "mg 44OG44K544OI b v k\r\n"],
  },
  { name: "mg with an invalid base64 key", steps: ["mg !!!! b v\r\n", "mg abc b v\r\n"] },
  {
    // memcached's decoder skips bytes outside the alphabet and stops after a padded group.
    name: "base64 keys: stray bytes skipped, = ends the key, too much padding refused",
    steps: [
      ms("Y.W.J.j", "1", "b"),
      "mg YWJj b v k\r\n",
      "get abc\r\n",
      ms("QQ==QQ==", "2", "b"),
      "mg QQ== b v k\r\n",
      ms("b=g=", "3", "b"),
      "mg bA== b v k\r\n",
      "mg n`D'\r*md b v k\r\n",
      "ma A=== b\r\n",
      "md ==== b\r\n",
      "mg YWJjZA b v\r\n",
    ],
  },
  { name: "mg without a key", steps: ["mg\r\n", "mg \r\n"] },
  { name: "mg with a 251-byte key", steps: [`mg ${K251} v\r\n`, `mg ${K250} v\r\n`] },
  {
    name: "mg with an unknown flag",
    steps: [set("foo", "hi"), "mg foo !\r\n", "mg foo v 9\r\n", "mg foo vv\r\n"],
  },
  {
    name: "mg with a long opaque",
    steps: [set("foo", "hi"), `mg foo O${"o".repeat(31)}\r\n`, `mg foo O${"o".repeat(40)}\r\n`],
  },
  {
    name: "mg E sets the CAS of a vivified item (newer than 1.6.18, t/metaget.t)",
    steps: ["mg e1 N30 c E9876\r\n", "mg e1 c E5\r\n"],
    expect: ["HD c9876 W\r\n", "HD c9876 Z\r\n"],
  },
  { name: "mg ignores P and L hint tokens", steps: [set("foo", "hi"), "mg foo Lpath/ v Pzz\r\n"] },
  { name: "mg u does not bump, still returns", steps: [set("foo", "hi"), "mg foo u v\r\n"] },
  { name: "me on a missing key", steps: ["me nokey\r\n"] },
  {
    // do_item_update, not do_item_bump: changes that are not reads leave fetch=no.
    name: "incr in place, ma and add of an existing key do not mark the item fetched",
    steps: [
      set("n", "10"),
      "incr n 5\r\n",
      "me n\r\n",
      "ma n D2\r\n",
      "me n\r\n",
      "add n 0 0 1\r\nx\r\n",
      "me n\r\n",
      "incr n 1000\r\n",
      "me n\r\n",
      "get n\r\n",
      "me n\r\n",
    ],
  },
  {
    name: "me on a hit shows the item's metadata fields",
    steps: [set("foo", "abc", 0, 100), "me foo\r\n", set("bar", "x"), "get bar\r\n", "me bar\r\n"],
  },
  {
    name: "mg after classic set sees classic flags",
    steps: [set("foo", "abc", 99), "mg foo f v s\r\n"],
  },
  { name: "mg on an expired item is a miss", steps: [set("foo", "abc", 0, -1), "mg foo v\r\n"] },
];

const metaSet: Case[] = [
  { name: "ms stores, classic get reads it", steps: [ms("k", "abc"), "get k\r\n"] },
  {
    name: "ms flags do not bleed between commands",
    steps: [
      ms("a", "1"),
      ms("a", "1", "c"),
      ms("a", "1", "Otest"),
      ms("a", "1", "s"),
      ms("a", "1", "k"),
      ms("a", "1"),
    ],
  },
  {
    name: "ms F sets client flags",
    steps: [
      ms("a", "1", "F123"),
      "mg a f\r\n",
      ms("a", "1", "F4294967295"),
      "get a\r\n",
      ms("a", "1", "F4294967296"),
      ms("a", "1", "Fx"),
    ],
  },
  {
    name: "ms T sets the TTL",
    steps: [ms("a", "1", "T100"), "mg a t\r\n", ms("a", "1", "T-1"), "mg a v\r\n"],
  },
  {
    name: "ms q is silent on success, not on failure",
    steps: [ms("a", "1", "q"), ms("a", "1", "q ME"), ms("a", "1", "q MR"), "mg a v\r\n"],
  },
  { name: "ms mode E (add)", steps: [ms("a", "1", "ME"), ms("a", "2", "ME"), "mg a v\r\n"] },
  {
    name: "ms mode R (replace)",
    steps: [ms("r", "1", "MR"), ms("r", "1"), ms("r", "2", "MR"), "mg r v\r\n"],
  },
  {
    name: "ms mode A and P (append, prepend)",
    steps: [
      ms("x", "1", "MA"),
      ms("x", "mid", "F5"),
      ms("x", ">", "MA"),
      ms("x", "<", "MP"),
      "mg x v f\r\n",
    ],
  },
  {
    name: "ms mode S (set) and lower-case modes",
    steps: [ms("a", "1", "MS"), ms("a", "2", "Ms"), ms("a", "3", "Ma"), "mg a v\r\n"],
  },
  {
    name: "ms with an invalid mode",
    steps: [ms("a", "1", "MZ"), "mg a v\r\n", ms("a", "1", "M"), ms("a", "1", "MAA")],
  },
  {
    name: "ms append with N on a miss",
    steps: [ms("av", "x", "MA N30"), "mg av v t\r\n", ms("av", "y", "MA N30"), "mg av v\r\n"],
  },
  {
    name: "ms C compares the CAS",
    steps: [
      "mg nope c\r\n",
      ms("c", "1", "C1"),
      ms("c", "1", "c"),
      ms("c", "2", "C{cas+1} c"),
      ms("c", "3", "C{cas} c"),
      "mg c v\r\n",
    ],
  },
  {
    name: "ms E sets an explicit CAS (newer than 1.6.18, t/metaget.t)",
    steps: [ms("e", "ji", "E973"), "mg e c\r\n", ms("e", "lo", "c C973 E4000"), "gets e\r\n"],
    expect: ["HD\r\n", "HD c973\r\n", "HD c4000\r\n", "VALUE e 0 2 4000\r\nlo\r\nEND\r\n"],
  },
  {
    name: "ms with a base64 key and k",
    steps: [ms("Zm9v", "bar", "b k"), "get foo\r\n", "mg Zm9v b k v\r\n"],
  },
  {
    name: "ms s k O flags in the reply",
    steps: [ms("s", "12345", "s k Oop c"), ms("s", "abc", "MA s")],
  },
  { name: "ms with a non-numeric length", steps: ["ms k abc\r\nx\r\n", "ms k\r\n", "ms\r\n"] },
  { name: "ms with a negative length", steps: ["ms k -1\r\n", "mg k v\r\n"] },
  { name: "ms bad data chunk", steps: ["ms k 2\r\nabc\r\n", "mg k v\r\n"] },
  {
    name: "ms over the size limit",
    steps: [`ms big 2000000 T0\r\n${"x".repeat(2000000)}\r\n`, "mg big v\r\n"],
  },
  {
    name: "ms with an invalid flag",
    steps: ["ms k 1 !\r\nx\r\n", "ms k 1 v\r\nx\r\n", "mg k v\r\n"],
  },
  {
    name: "ms I with an older CAS on a stale item",
    steps: [
      ms("i", "1", "c"),
      "md i I\r\n",
      "mg i c v\r\n",
      ms("i", "2", "I C1 c"),
      "mg i v c\r\n",
      ms("i", "3", "C{cas} c"),
      "mg i v\r\n",
    ],
  },
  { name: "ms on a 251-byte key", steps: [ms(K251, "x"), `mg ${K251}\r\n`] },
  {
    name: "ms with T and then gat changes TTL",
    steps: [ms("t", "x", "T1000"), "gat 100 t\r\n", "mg t t\r\n"],
  },
];

const metaDelete: Case[] = [
  {
    name: "md hit, miss, q",
    steps: [
      ms("d", "1"),
      "md d\r\n",
      "md d\r\n",
      "md d q\r\n",
      ms("d", "1"),
      "md d q\r\n",
      "mg d v\r\n",
    ],
  },
  { name: "md with k and O", steps: [ms("d", "1"), "md d k Oabc\r\n", "md d k Oabc\r\n"] },
  {
    name: "md C compares the CAS",
    steps: [ms("d", "1"), "mg d c\r\n", "md d C{cas+1}\r\n", "md d C{cas}\r\n", "mg d v\r\n"],
  },
  {
    name: "md I marks stale; mg shows X and W, then Z",
    steps: [
      ms("d", "val", "T100"),
      "md d I T30\r\n",
      "mg d v c t\r\n",
      "mg d v c\r\n",
      ms("d", "new"),
      "mg d v\r\n",
    ],
  },
  { name: "md with a base64 key", steps: [ms("Zm9v", "x", "b"), "md Zm9v b\r\n", "get foo\r\n"] },
  { name: "md without a key and with a bad flag", steps: ["md\r\n", "md k !\r\n"] },
  {
    name: "md E sets the CAS of an invalidated item (newer than 1.6.18, t/metaget.t)",
    steps: [ms("d", "m", "E1234"), "md d C1234 E5678 I\r\n", "mg d c\r\n"],
    expect: ["HD\r\n", "HD\r\n", "HD c5678 X W\r\n"],
  },
];

const metaArith: Case[] = [
  {
    name: "ma miss, incr a set value, non-numeric",
    steps: [
      "ma mo\r\n",
      "ma mo D1\r\n",
      set("mo", "1"),
      "ma mo\r\n",
      "get mo\r\n",
      set("mo", "q"),
      "ma mo\r\n",
    ],
  },
  {
    name: "ma N seeds a miss with 0",
    steps: ["ma mu N90\r\n", "mg mu s t v\r\n", "ma mu T300 v t\r\n"],
  },
  {
    name: "ma J initial, D delta, MD decrement, floor at 0",
    steps: [
      "ma mi N0 J13 v t\r\n",
      "ma mi N0 J13 v t\r\n",
      "ma mi N0 J13 v t D30\r\n",
      "ma mi N0 J13 v t MD D22\r\n",
      "ma mi N0 J13 v t MD D9000\r\n",
    ],
  },
  {
    name: "ma q is silent",
    steps: [set("m", "1"), "ma m q D1\r\n", "ma nokey q\r\n", "mg m v\r\n"],
  },
  {
    name: "ma modes I, i, +, D, d, -",
    steps: [
      set("m", "10"),
      "ma m MI v\r\n",
      "ma m Mi v\r\n",
      "ma m M+ v\r\n",
      "ma m MD v\r\n",
      "ma m Md v\r\n",
      "ma m M- v\r\n",
      "ma m MX v\r\n",
    ],
  },
  { name: "ma c, k, O, t flags", steps: [set("m", "5"), "ma m c k Oo t v\r\n", "gets m\r\n"] },
  {
    name: "ma C compares the CAS",
    steps: [set("m", "5"), "mg m c\r\n", "ma m C{cas+1} v\r\n", "ma m C{cas} v\r\n"],
  },
  {
    name: "ma E sets an explicit CAS (newer than 1.6.18, t/metaget.t)",
    steps: ["ma me v N0 c E4321 J5\r\n", "ma me C4321 c v\r\n", "ma me c v E8765\r\n"],
    expect: ["VA 1 c4321\r\n5\r\n", /^VA 1 c(?!4321\r)\d+\r\n6\r\n$/, "VA 1 c8765\r\n7\r\n"],
  },
  {
    name: "ma with an invalid delta",
    steps: [set("m", "5"), "ma m Dabc\r\n", "ma m D18446744073709551616\r\n", "ma m D-1\r\n"],
  },
  { name: "ma wraps at 2^64", steps: [set("m", "18446744073709551615"), "ma m v\r\n"] },
  { name: "ma with an invalid J", steps: ["ma j N0 Jabc v\r\n"] },
  {
    name: "ma that grows and shrinks the value",
    steps: [set("m", "99"), "ma m v\r\n", "mg m s v\r\n", "ma m MD v\r\n", "mg m s v\r\n"],
  },
  { name: "ma without a key", steps: ["ma\r\n"] },
];

const pipelined: Case[] = [
  {
    name: "many commands in one write",
    steps: [
      set("p1", "a") + set("p2", "bb") + "get p1 p2\r\nincr p1 1\r\n" + set("n", "5") +
      "incr n 10\r\ndecr n 3\r\ndelete p2\r\nmg p1 v\r\nmg p2 v\r\n" + ms("p3", "xyz", "c") +
      "mn\r\nversion\r\ntouch n 10\r\nget n\r\n",
    ],
  },
  {
    name: "100 pipelined sets then one get of all",
    steps: [
      Array.from({ length: 100 }, (_, i) => set(`pk${i}`, `value-${i}`)).join("") +
      `get ${Array.from({ length: 100 }, (_, i) => `pk${i}`).join(" ")}\r\n`,
    ],
  },
  {
    name: "pipelined quiet meta gets with a closing mn",
    steps: [ms("a", "1") + ms("c", "3") + "mg a v q k\r\nmg b v q k\r\nmg c v q k\r\nmn\r\n"],
  },
  {
    name: "pipelined errors do not break the stream",
    steps: ["bogus\r\nget a\r\nset k abc 0 1\r\nx\r\n" + set("k", "ok") + "get k\r\nincr k 1\r\n"],
  },
  {
    // proto_text.c's conn_release_items: the replies not yet written out go (the stores stay).
    name: "a get with a 251-byte key drops the replies pipelined before it",
    steps: [
      "version\r\n" + set("c1", "a") + "incr c1 1\r\ndelete nokey\r\n" + `get ${K251}\r\n` +
      "version\r\nget c1\r\n",
      "verbosity 1\r\n" + `gets a ${K251} b\r\n` + "get c1\r\n",
      "version\r\n" + `gat 10 ${K251}\r\n` + "version\r\n" + `gats 0 ${K251}\r\n`,
    ],
  },
  {
    // Over 1 MB of reply a multi-get goes on in parts: the same bytes, in order, then the rest.
    name: "a multi-get of several MB of values, pipelined with more commands",
    steps: [
      set("mg1", "m".repeat(300_000)) + set("mg2", "2"),
      `gets ${"mg1 nokey mg2 ".repeat(12)}mg1\r\nget mg2\r\nincr mg2 5\r\ngat 0 mg1 mg2\r\n`,
    ],
  },
  {
    // resp_has_stack: any reply not written out yet, noreply ones included (a get wrote out).
    name: "lru_crawler metadump refuses to start behind pipelined replies",
    steps: [
      "version\r\nlru_crawler metadump all\r\n",
      "touch nokey 1 noreply\r\nlru_crawler metadump all\r\n",
      "set md 0 0 1 noreply\r\nx\r\nlru_crawler metadump 1\r\n",
      `get ${K251}\r\nlru_crawler metadump all\r\n`,
      "verbosity 1\r\nlru_crawler metadump 99\r\n",
    ],
  },
  {
    // memcached writes out after a get, a gat, an mn (and at the end of each read): not before.
    name: "a too-long get key keeps what a get or an mn before it wrote out",
    steps: [
      set("c2", "x") + "get c2\r\nversion\r\n" + `get ${K251}\r\n`,
      "mn\r\nversion\r\n" + `get ${K251}\r\n` + "gat 0 c2\r\nincr nokey 1\r\n" +
      `get ${K251}\r\n`,
      "get nokey\r\nversion\r\n" + `get ${K251}\r\nget c2\r\n`,
    ],
  },
];

// Run-time tuning commands (proto_text.c's slabs/lru/lru_crawler/cache_memlimit handlers; t/strtol-testing.t,
// t/lru-crawler.t, t/dyn-maxbytes.t). Each case ends by restoring memcached's defaults: the servers
// keep their settings from case to case.
const RESTORE = "slabs automove 1\r\nslabs automove ratio 0.8\r\nlru mode segmented\r\n" +
  "lru tune 20 40 0.2 2\r\nlru temp_ttl 61\r\nlru temp_ttl -1\r\nlru_crawler sleep 100\r\n" +
  "lru_crawler tocrawl 0\r\ncache_memlimit 64\r\n";
const tuning: Case[] = [
  {
    name: "slabs automove levels, and a level strtoul rejects (strtol-testing.t)",
    steps: [
      "slabs automove invalid\r\n",
      "slabs automove 0\r\nslabs automove 1\r\nslabs automove 2\r\nslabs automove 3\r\n",
      "slabs automove -1\r\nslabs automove 4294967297\r\nslabs automove 18446744073709551617\r\n",
      "slabs automove 1x\r\nslabs automove 2 noreply\r\nslabs automove\r\nslabs\r\nslabs foo\r\n",
      RESTORE,
    ],
  },
  {
    name: "slabs automove ratio parses like strtod",
    steps: [
      "slabs automove ratio\r\nslabs automove ratio 0.5\r\nslabs automove ratio abc\r\n",
      "slabs automove ratio 1e3\r\nslabs automove ratio 0x10\r\nslabs automove ratio .5\r\n",
      "slabs automove ratio 1e\r\nslabs automove ratio -2\r\nslabs automove ratio 5 noreply\r\n",
      RESTORE,
    ],
  },
  {
    name: "slabs reassign answers for bad, equal and page-less classes",
    steps: [
      "slabs reassign 1 2\r\nslabs reassign -1 2\r\nslabs reassign x y\r\nslabs reassign 1 x\r\n",
      "slabs reassign 1 1\r\nslabs reassign 0 1\r\nslabs reassign 1 0\r\nslabs reassign 39 1\r\n",
      "slabs reassign 40 1\r\nslabs reassign 1 40\r\nslabs reassign -2 1\r\nslabs reassign 1 -1\r\n",
      "slabs reassign -1 -1\r\nslabs reassign -1 0\r\nslabs reassign 99999999999 1\r\n",
      set("a", "x") + "slabs reassign 1 2\r\nslabs reassign 2 1\r\n",
      "slabs reassign 1 2 3\r\nslabs reassign 1\r\n",
    ],
  },
  {
    name: "cache_memlimit limits, number checks and noreply (dyn-maxbytes.t)",
    steps: [
      "cache_memlimit 100\r\ncache_memlimit abc\r\ncache_memlimit 0\r\ncache_memlimit 7\r\n",
      "cache_memlimit 8\r\ncache_memlimit -1\r\ncache_memlimit 1000000001\r\n",
      "cache_memlimit 4294967296\r\ncache_memlimit 100 noreply\r\ncache_memlimit 9 10\r\n",
      "cache_memlimit\r\ncache_memlimit 1 2 3\r\ncache_memlimit 12x\r\n",
      RESTORE,
    ],
  },
  {
    name: "lru_crawler sleep and tocrawl check their numbers",
    steps: [
      "lru_crawler sleep 100\r\nlru_crawler tocrawl 10\r\nlru_crawler sleep abc\r\n",
      "lru_crawler tocrawl x\r\nlru_crawler sleep 99999999\r\nlru_crawler sleep 1000000\r\n",
      "lru_crawler sleep 1000001\r\nlru_crawler sleep -1\r\nlru_crawler tocrawl -1\r\n",
      "lru_crawler tocrawl 4294967296\r\nlru_crawler sleep\r\nlru_crawler sleep 1 2\r\n",
      RESTORE,
    ],
  },
  {
    name: "lru_crawler crawl class lists",
    // A crawl runs in the background in memcached (BUSY meanwhile): one per step, after a pause.
    steps: [
      "lru_crawler crawl all\r\n",
      ...["1,2", "0", "64", "63", ",", "x", "hash", "1,,3", "-1"].map((c): Step => ({
        send: `lru_crawler crawl ${c}\r\n`,
        sleepMs: 300,
      })),
      "lru_crawler crawl\r\nlru_crawler crawl all extra\r\n",
      { send: set("a", "x") + "lru_crawler crawl 1\r\n", sleepMs: 300 },
    ],
  },
  {
    name: "lru_crawler disable and enable",
    steps: [
      // memcached's crawler thread stops asynchronously: a crawl sent before it did gets
      // "ERROR an unknown error happened"; a second later the answer is the settled one.
      "lru_crawler enable\r\nlru_crawler disable\r\nlru_crawler disable\r\n",
      { send: "lru_crawler crawl all\r\nlru_crawler metadump all\r\n", sleepMs: 1000 },
      "lru_crawler enable\r\nlru_crawler enable\r\n",
      { send: "lru_crawler crawl all\r\n", sleepMs: 300 },
      { send: "lru_crawler enable extra\r\nlru_crawler foo\r\nlru_crawler\r\n", sleepMs: 300 },
    ],
  },
  {
    name: "lru tune, mode and temp_ttl",
    steps: [
      "lru mode flat\r\nlru mode segmented\r\nlru mode foo\r\nlru mode\r\n",
      "lru temp_ttl 100\r\nlru temp_ttl -1\r\nlru temp_ttl x\r\nlru temp_ttl 99999999999\r\n",
      "lru tune 10 10 0.1 2\r\nlru tune 50 50 0.1 2\r\nlru tune 10 10 0 2\r\n",
      "lru tune 10 10 x 2\r\nlru tune 10 10\r\nlru tune -1 10 0.1 2\r\nlru foo\r\nlru\r\n",
      "lru mode flat noreply\r\nlru tune 10 10 0.1 2 noreply\r\n",
      RESTORE,
    ],
  },
];

function split(c: Case, chunk: number): Case {
  return {
    name: `${c.name} (sent ${chunk === 1 ? "byte by byte" : `in ${chunk}-byte pieces`})`,
    steps: c.steps.map((s): Step => (typeof s === "string" ? { send: s, chunk } : { ...s, chunk })),
  };
}

const splitCases: Case[] = [
  split({ name: "set and get", steps: [set("s", "split value"), "get s\r\n"] }, 1),
  split({
    name: "binary value with CRLF inside",
    steps: [set("s", "a\r\nb\r\n\x00\xff"), "gets s\r\n"],
  }, 1),
  split(
    { name: "meta set and get", steps: [ms("s", "hello", "T100 F3 c"), "mg s v f t c\r\n"] },
    1,
  ),
  split({
    name: "incr, noreply, delete",
    steps: [set("n", "1") + "incr n 5 noreply\r\nget n\r\ndelete n\r\n"],
  }, 1),
  split(pipelined[0], 3),
  split(pipelined[0], 7),
];

/** Every differential case, grouped by area. */
export const CASES: Case[] = [
  ...basic,
  ...storage,
  ...cas,
  ...noreply,
  ...arith,
  ...touchGat,
  ...del,
  ...flush,
  ...misc,
  ...edges,
  ...tuning,
  ...metaGet,
  ...metaSet,
  ...metaDelete,
  ...metaArith,
  ...pipelined,
  ...splitCases,
  ...FOUND_CASES,
];
