/**
 * Grammar-based generator of text and meta protocol scripts for the random
 * differential (random_differential_test.ts): seeded, over a small key space
 * so that commands interact, with near-miss inputs (bad lengths, long keys,
 * unknown flags, missing or extra tokens, bad numbers) mixed in.
 *
 * Only what two correct servers answer alike is generated. Left out, and why:
 * - meta `E` (explicit CAS): memrep takes newer memcached's `E`, 1.6.18 refuses
 *   it (README, serve: a documented difference);
 * - TTLs and flush delays of 1-9 s: they expire at a clock tick that two
 *   processes see at different moments (TTLs are 0, negative, absolute past,
 *   or >= 100 s, which the runner's normaliser rounds);
 * - values near `-I`: memrep's items carry 32-byte headers, so the exact
 *   too-large boundary is memrep's own (README, Limits);
 * - a data block longer than the rest of the write (the server waits for
 *   bytes that never come: a timeout on both sides tells nothing);
 * - `quit`, `shutdown`, administration and `stats` groups other than plain
 *   `stats` (covered by differential_cases.ts and stats_groups_test.ts);
 * - `flush_all` with an absolute time before the server started: 1.6.18 makes
 *   that `oldest_live` 0, which flushes nothing and revives items an earlier
 *   flush left unreclaimed, as its LRU maintainer has or has not got to them
 *   (memrep flushes; an open difference, see the report of this generator);
 * - a retrieval with a key over 250 bytes pipelined behind other commands or
 *   in a split write: it drops the replies not yet written, and which those
 *   are depends on where the server's reads end (README, serve);
 * - counters of 2^63 and more (stored values, `ma` J, incr deltas that could
 *   make one; decr takes any delta): 1.6.18's safe_strtoull then looks for a
 *   '-' with strchr, past the item's bytes into whatever memory follows, and
 *   answers non-numeric when it finds one; wrapping past 2^64-1 is left to
 *   differential_cases.ts;
 * - values of only white space: incr's strtoull skips them and reads on past
 *   the item;
 * - `{cas+1}`-style guessed CAS values: a neighbour's CAS is the allocator's
 *   business; wrong CAS values are ones no item can have.
 * @module
 */

import { mulberry32 } from "../helpers/random.ts";
import type { Case, Step } from "./differential.ts";

/** Seeded choices. */
export class Rand {
  #next: () => number;

  /** A generator for `seed`. */
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#next() * (hi - lo + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.#next() < p;
  }

  /** One element. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)];
  }

  /** A random subset of `xs`, in random order. */
  subset<T>(xs: readonly T[], p: number): T[] {
    const out = xs.filter(() => this.chance(p));
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}

/** One generated step: commands written together (pipelined), maybe in small chunks. */
export interface GenStep<T = string> {
  /** Commands (texts with their data blocks, or packets); sent as one write. */
  cmds: T[];
  /** Write in pieces of this many bytes. */
  chunk?: number;
}

/** What a text script may contain (the proxy run leaves out what it answers by design). */
export interface TextOptions {
  /** Plain `stats` (values masked): serve only, the proxy's stats are its own. */
  stats?: boolean;
  /** `me`: serve only (the proxy has no item internals to show). */
  me?: boolean;
  /** Number of steps. */
  steps?: number;
  /**
   * Leave out `ma` with both `N` and `q` (the proxy: memcached answers a
   * counter it created even under q, a hit it does not; the proxy, which
   * strips q and gets HD for both, cannot tell them apart: open).
   */
  noQuietVivify?: boolean;
}

const K250 = "k".repeat(250);
const K251 = "k".repeat(251);
const KEYS = ["a", "b", "c", "n", "n", "a"];
/** Keys that are not the usual few: edge lengths, control bytes, prefixes of others. */
const ODD_KEYS = [K250, K251, "a\x01", "aa", "n ", "\x7f"];
/** Keys only the binary protocol (or base64) can name. */
export const BINARY_ONLY_KEYS = ["a b", "\x00"];
/**
 * Every storable key the generators use: the runner deletes them before a
 * script, as a flush_all leaves its items to be reclaimed, and a later
 * delayed flush_all in memcached brings back the ones not reclaimed yet.
 */
export const KEY_SPACE: string[] = [...new Set([...KEYS, ...ODD_KEYS, ...BINARY_ONLY_KEYS])]
  .filter((k) => k.length <= 250);

/** One of the few keys, now and then an odd one. */
export function key(r: Rand): string {
  return r.chance(0.06) ? r.pick(ODD_KEYS) : r.pick(KEYS);
}

const NUMBERS = [
  "0",
  "1",
  "2",
  "42",
  "007",
  "18446744073709551616",
  "922337203685477580",
  "4294967296",
  "99999999999999999999",
];

/**
 * A value: numbers (for incr), near-numbers, framing look-alikes, long and
 * random bytes. Never only white space: memcached's incr parses such a value
 * with strtoull, which skips the whole item and reads the memory after it.
 */
export function value(r: Rand): string {
  const v = anyValue(r);
  return /^[ \t\n\v\f\r]+$/.test(v) ? "x" + v : v;
}

function anyValue(r: Rand): string {
  const k = r.int(0, 14);
  if (k < 5) return r.pick(NUMBERS);
  switch (k) {
    case 5:
      return "";
    case 6:
      return r.pick(["abc", "hello world", "x"]);
    case 7:
      return r.pick([" 12", "12 ", "1 2", "-1", "-0", "+5", "0x10", "1e3", "12\x00"]);
    case 8:
      // (Not `mn` or `MN` lines: the runner's barrier counts them.)
      return r.pick(["a\r\n", "END\r\n", "VALUE a 0 1\r\n", "EN\r\n", "\r\n1"]);
    case 9:
      return "v".repeat(r.int(100, 3000));
    case 10:
      return String(r.int(0, 1000000));
    default: {
      let s = "";
      for (let i = r.int(1, 12); i > 0; i--) s += String.fromCharCode(r.int(0, 255));
      return s.replace(/(^|\n)(mn|MN)\r?\n/gi, "$1xx\r\n");
    }
  }
}

const FLAGS = ["0", "0", "1", "4294967295", "123", "4294967296", "-1", "abc", "00"];
/** Whole seconds only where expiry cannot race the clock (see the module note). */
const EXPTIMES = ["0", "0", "-1", "-100", "100", "3600", "2592000", "2592001", "{now+100}", "x"];
const DELTAS = ["1", "0", "5", "100", "18446744073709551616", "-1", "abc", "1.5"];
/** Deltas of 2^63 and more: for decr only (see the module note). */
const BIG_DELTAS = ["18446744073709551615", "9223372036854775808"];

function storage(r: Rand): string {
  const cmd = r.pick(["set", "set", "add", "replace", "append", "prepend", "cas", "cas"]);
  const k = key(r);
  const v = value(r);
  const flags = r.chance(0.85) ? r.pick(FLAGS.slice(0, 5)) : r.pick(FLAGS);
  const exp = r.chance(0.8) ? r.pick(EXPTIMES.slice(0, 6)) : r.pick(EXPTIMES);
  let len = String(v.length);
  if (r.chance(0.06)) {
    // Near misses: shorter than the data (bad data chunk), not a number, negative.
    len = r.pick([v.length > 0 ? String(v.length - 1) : "0", "abc", "-1", " "]);
  }
  const tokens = [cmd, k, flags, exp, len];
  if (cmd === "cas") {
    const c = r.chance(0.7) ? "{cas}" : r.pick(["99999999999999", "0", "abc", "-1", ""]);
    if (c) tokens.push(c);
  }
  if (r.chance(0.15)) tokens.push("noreply");
  if (r.chance(0.03)) tokens.push(r.pick(["extra", "noreply", "0"]));
  if (r.chance(0.03)) tokens.splice(r.int(1, tokens.length - 1), 1); // a missing token
  const body = len === String(v.length) || /^\d+$/.test(len) ? `${v}\r\n` : "";
  return `${tokens.join(" ")}\r\n${body}`;
}

function keys(r: Rand, min: number): string {
  const n = r.int(min, 4);
  return Array.from({ length: n }, () => key(r)).join(" ");
}

function retrieval(r: Rand): string {
  const cmd = r.pick(["get", "get", "gets", "gat", "gats"]);
  const ks = keys(r, r.chance(0.03) ? 0 : 1);
  if (cmd === "gat" || cmd === "gats") {
    const exp = r.pick(["0", "100", "3600", "-1", "abc", "2592001"]);
    return r.chance(0.05) ? `${cmd} ${exp}\r\n` : `${cmd} ${exp} ${ks}\r\n`;
  }
  return `${cmd}${ks ? " " : ""}${ks}\r\n`;
}

function arith(r: Rand): string {
  const cmd = r.pick(["incr", "decr"]);
  const deltas = cmd === "decr" ? [...DELTAS, ...BIG_DELTAS] : DELTAS;
  const tokens = [cmd, key(r), r.chance(0.7) ? r.pick(DELTAS.slice(0, 4)) : r.pick(deltas)];
  if (r.chance(0.15)) tokens.push("noreply");
  if (r.chance(0.04)) tokens.splice(r.int(1, tokens.length - 1), 1);
  if (r.chance(0.03)) tokens.push("x");
  return tokens.join(" ") + "\r\n";
}

function del(r: Rand): string {
  const k = key(r);
  return r.pick([
    `delete ${k}\r\n`,
    `delete ${k}\r\n`,
    `delete ${k} noreply\r\n`,
    `delete ${k} 0\r\n`,
    `delete ${k} 0 noreply\r\n`,
    `delete ${k} 1\r\n`,
    `delete ${k} noreply 0\r\n`,
    `delete ${k} 0 0\r\n`,
    `delete\r\n`,
  ]);
}

function touch(r: Rand): string {
  const exp = r.pick(["0", "100", "3600", "-1", "abc", "2592001"]);
  const k = key(r);
  return r.pick([
    `touch ${k} ${exp}\r\n`,
    `touch ${k} ${exp}\r\n`,
    `touch ${k} ${exp} noreply\r\n`,
    `touch ${k}\r\n`,
  ]);
}

/** Immediate flushes: memcached's later delayed flush_all would revive what they flushed. */
const IMMEDIATE_FLUSH = /^flush_all( 0| -1)?( noreply)?\r\n$/;

function misc(r: Rand, o: TextOptions, flushed: { now: boolean }): string {
  const choices = [
    "flush_all\r\n",
    "flush_all 0\r\n",
    "flush_all noreply\r\n",
    "flush_all 0 noreply\r\n",
    "flush_all 100\r\n",
    "flush_all -1\r\n",
    "flush_all abc\r\n",
    "flush_all 0 0\r\n",
    "version\r\n",
    "verbosity 1\r\n",
    "verbosity 0 noreply\r\n",
    "verbosity\r\n",
    "mn\r\n",
    "bogus a b\r\n",
    "\r\n",
    "GET a\r\n",
  ];
  if (o.stats) choices.push("stats\r\n");
  const c = r.pick(choices);
  if (IMMEDIATE_FLUSH.test(c)) flushed.now = true;
  // 1.6.18: a delayed flush sets oldest_live ahead, so an earlier flush's items that its LRU
  // maintainer has not reclaimed yet are alive again (memrep keeps them flushed): a race.
  else if (flushed.now && c === "flush_all 100\r\n") return "flush_all\r\n";
  return c;
}

/** A key token for meta commands: base64 with `b` (sometimes not valid base64). */
function metaKey(r: Rand, flags: string[]): string {
  const k = key(r);
  if (!flags.includes("b")) return k;
  if (r.chance(0.1)) return r.pick(["!!!", "YQ", "====", "YWJj="]);
  return btoa(k);
}

function ttlToken(r: Rand, f: string): string {
  // R's recache time is compared with the item's exptime: never the TTLs items get (100, 3600),
  // where one second more between set and mg would decide the win.
  if (f === "R") return f + r.pick(["0", "50", "1000", "7200", "-1", "abc", ""]);
  return f + r.pick(["0", "100", "3600", "-1", "2592001", "abc", ""]);
}

function oddFlag(r: Rand): string {
  return r.pick(["z", "X", "!", "mg", "e", "ñ", "Zx", "P", "L", "x"]);
}

function metaFlags(r: Rand, pool: string[], p = 0.3): string[] {
  const fs = r.subset(pool, p).map((f) => {
    switch (f) {
      case "T":
      case "N":
      case "R":
        return ttlToken(r, f);
      case "O":
        return "O" + r.pick(["1", "opaque", "x".repeat(32), "x".repeat(33), ""]);
      case "F":
        return "F" + (r.chance(0.8) ? r.pick(FLAGS.slice(0, 5)) : r.pick(FLAGS));
      case "C":
        return "C" + (r.chance(0.8) ? "{cas}" : r.pick(["99999999999999", "0", "abc"]));
      case "D":
        return "D" + (r.chance(0.7) ? r.pick(DELTAS.slice(0, 4)) : r.pick(DELTAS));
      case "J":
        return "J" + r.pick(NUMBERS);
      default:
        return f;
    }
  });
  if (r.chance(0.05)) fs.push(oddFlag(r));
  if (r.chance(0.03) && fs.length) fs.push(fs[0]); // duplicate
  return fs;
}

function metaGet(r: Rand): string {
  const fs = metaFlags(r, [
    "b",
    "c",
    "f",
    "h",
    "k",
    "l",
    "O",
    "q",
    "s",
    "t",
    "v",
    "T",
    "N",
    "R",
    "u",
  ]);
  const k = metaKey(r, fs.map((f) => f[0]));
  if (r.chance(0.02)) return "mg\r\n";
  return `mg ${k}${fs.length ? " " : ""}${fs.join(" ")}\r\n`;
}

function metaSet(r: Rand): string {
  const fs = metaFlags(r, ["b", "c", "F", "I", "k", "O", "q", "T", "C", "M", "N", "s", "f"], 0.25)
    .map((f) => f === "M" ? "M" + r.pick(["E", "A", "P", "R", "S", "s", "a", "Z", "", "SS"]) : f);
  const k = metaKey(r, fs.map((f) => f[0]));
  const v = value(r);
  let len = String(v.length);
  if (r.chance(0.06)) len = r.pick([v.length > 0 ? String(v.length - 1) : "0", "abc", "-1"]);
  if (r.chance(0.02)) return `ms ${k}\r\n`;
  const body = /^\d+$/.test(len) ? `${v}\r\n` : "";
  return `ms ${k} ${len}${fs.length ? " " : ""}${fs.join(" ")}\r\n${body}`;
}

function metaDelete(r: Rand): string {
  const fs = metaFlags(r, ["b", "C", "I", "k", "O", "q", "T"], 0.3);
  return `md ${metaKey(r, fs.map((f) => f[0]))}${fs.length ? " " : ""}${fs.join(" ")}\r\n`;
}

function metaArith(r: Rand, o: TextOptions): string {
  let fs = metaFlags(r, ["b", "C", "N", "J", "D", "T", "M", "O", "q", "t", "c", "v", "k"], 0.3)
    .map((f) => f === "M" ? "M" + r.pick(["I", "D", "+", "-", "i", "d", "X", ""]) : f);
  if (o.noQuietVivify && fs.some((f) => f[0] === "N")) fs = fs.filter((f) => f !== "q");
  return `ma ${metaKey(r, fs.map((f) => f[0]))}${fs.length ? " " : ""}${fs.join(" ")}\r\n`;
}

function metaDebug(r: Rand): string {
  return r.pick([`me ${key(r)}\r\n`, `me ${btoa(key(r))} b\r\n`, "me\r\n"]);
}

/** One command of the grammar. */
export function textCommand(r: Rand, o: TextOptions = {}, flushed = { now: false }): string {
  const n = r.int(0, 99);
  if (n < 20) return storage(r);
  if (n < 34) return retrieval(r);
  if (n < 42) return arith(r);
  if (n < 47) return del(r);
  if (n < 50) return touch(r);
  if (n < 54) return misc(r, o, flushed);
  if (n < 68) return metaGet(r);
  if (n < 80) return metaSet(r);
  if (n < 85) return metaDelete(r);
  if (n < 94) return metaArith(r, o);
  if (n < 96 && o.me) return metaDebug(r);
  return `mn\r\n`;
}

/** A retrieval with a key over 250 bytes (it goes in a step of its own, see the module note). */
const TOO_LONG_GET = /^(get|gets|gat|gats) (\S+ )*k{251}/;

/** A script of `o.steps` (default 30) steps for `seed`. */
export function textScript(seed: number, o: TextOptions = {}): GenStep[] {
  const r = new Rand(seed);
  const out: GenStep[] = [];
  const flushed = { now: false };
  for (let i = 0; i < (o.steps ?? 30); i++) {
    const n = r.chance(0.25) ? r.int(2, 6) : 1;
    const cmds = Array.from({ length: n }, () => textCommand(r, o, flushed));
    const chunk = r.chance(0.1) ? r.int(1, 8) : 0;
    const alone = cmds.filter((c) => TOO_LONG_GET.test(c));
    const rest = cmds.filter((c) => !TOO_LONG_GET.test(c));
    if (rest.length) out.push(chunk ? { cmds: rest, chunk } : { cmds: rest });
    for (const c of alone) out.push({ cmds: [c] });
  }
  return out;
}

/** The script as a differential case. */
export function toCase(name: string, steps: GenStep[]): Case {
  return {
    name,
    steps: steps.map((s): string | Step =>
      s.chunk ? { send: s.cmds.join(""), chunk: s.chunk } : s.cmds.join("")
    ),
  };
}

/** Smaller variants of `steps`: one step dropped, one command dropped, a chunk undone. */
export function* shrinkCandidates<T>(steps: GenStep<T>[]): Generator<GenStep<T>[]> {
  for (let i = steps.length - 1; i >= 0; i--) yield [...steps.slice(0, i), ...steps.slice(i + 1)];
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i];
    if (s.cmds.length > 1) {
      for (let j = 0; j < s.cmds.length; j++) {
        const cmds = [...s.cmds.slice(0, j), ...s.cmds.slice(j + 1)];
        yield [...steps.slice(0, i), { ...s, cmds }, ...steps.slice(i + 1)];
      }
      // Unpipelined: each command its own step.
      yield [...steps.slice(0, i), ...s.cmds.map((c) => ({ cmds: [c] })), ...steps.slice(i + 1)];
    }
    if (s.chunk) yield [...steps.slice(0, i), { cmds: s.cmds }, ...steps.slice(i + 1)];
  }
}

/**
 * Greedy shrinking: keeps the first smaller variant that still fails, until
 * none does (or `budget` tries or `seconds` are spent).
 */
export async function shrink<T>(
  start: T[],
  candidates: (s: T[]) => Iterable<T[]>,
  fails: (s: T[]) => Promise<boolean>,
  budget = 400,
  seconds = 90,
): Promise<T[]> {
  let cur = start;
  let tries = 0;
  // Bounded in time too: a difference that shows only sometimes (a clock second) makes most
  // tries pass, each one a whole replay against both servers.
  const deadline = performance.now() + seconds * 1000;
  for (let progress = true; progress && tries < budget;) {
    progress = false;
    for (const c of candidates(cur)) {
      if (++tries > budget || performance.now() > deadline) break;
      if (await fails(c)) {
        cur = c;
        progress = true;
        break;
      }
    }
  }
  return cur;
}

/** The case as TypeScript to paste into differential_cases.ts. */
export function caseSource(c: Case): string {
  const steps = c.steps.map((s) =>
    typeof s === "string"
      ? `    ${JSON.stringify(s)},`
      : `    { send: ${JSON.stringify(s.send)}, chunk: ${s.chunk} },`
  );
  return `{\n  name: ${JSON.stringify(c.name)},\n  steps: [\n${steps.join("\n")}\n  ],\n},`;
}
