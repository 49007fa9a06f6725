/**
 * Grammar-based generator of binary protocol scripts for the random
 * differential: every opcode memcached 1.6.18 runs (quiet forms included),
 * random flags, expirations, CAS (the latest one seen, zero, or one no item
 * has), opaques, arithmetic past 2^64-1, and now and then a packet with wrong
 * extras, which memcached answers "Invalid arguments" and closes on.
 * Packets are built by tests/helpers/binary.ts.
 *
 * Left out, and why: stat (names and values are each server's own; the
 * framing is checked by binary_differential_cases.ts); quit/quitq and a bad
 * magic byte (they end the connection, which ends the script; covered by
 * hand-written cases); SASL opcodes (auth_differential_test.ts); a body
 * length past the bytes sent (both wait: a timeout tells nothing); values
 * near `-I` (memrep's item headers, README Limits); expirations of 1-9 s
 * (they race the clock); counters of 2^63 and more (random_scripts.ts).
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
import { concatBytes } from "../helpers/bytes.ts";
import type { BinCase, BinStep } from "./binary_differential.ts";
import { BINARY_ONLY_KEYS, type GenStep, key, Rand, value } from "./random_scripts.ts";

/** One generated packet: its fields, its extras as source, and whether it takes the latest CAS. */
export interface BinCmd {
  /** Packet fields (cas is replaced when `useCas`). */
  spec: PacketSpec;
  /** How `spec.extras` was made, for the printed case. */
  extrasSrc?: string;
  /** Send the CAS of the latest response that carried one. */
  useCas?: boolean;
}

const EXPIRIES = [0, 0, 0, 100, 3600, 0xffffffff, 2592001];
const FLAGS = [0, 0, 1, 0xffffffff, 123];
const DELTAS = [1n, 0n, 5n, 100n];
/** Deltas of 2^63 and more, for decr only: memcached 1.6.18 reads past a counter that large. */
const BIG_DELTAS = [2n ** 64n - 1n, 2n ** 63n];
const INITIALS = [0n, 10n, 2n ** 62n, 42n];
/**
 * Keys binary adds to the text ones. A key of 251 bytes or an empty one
 * answer "Invalid arguments" and close (as malformed packets do): those only
 * in a script's last step.
 */
const BIN_KEYS = [...BINARY_ONLY_KEYS, "k".repeat(250)];

function binKey(r: Rand): string {
  const k = r.chance(0.05) ? r.pick(BIN_KEYS) : key(r);
  return k.length > 250 ? k.slice(0, 250) : k;
}

function cas(r: Rand, cmd: BinCmd): BinCmd {
  const k = r.int(0, 9);
  if (k < 2) cmd.useCas = true;
  else if (k === 2) cmd.spec.cas = 99999999999999n;
  return cmd;
}

function store(r: Rand, op: number): BinCmd {
  const flags = r.pick(FLAGS), exp = r.pick(EXPIRIES);
  const spec: PacketSpec = { op, key: binKey(r), value: value(r), extras: setExtras(flags, exp) };
  return cas(r, { spec, extrasSrc: `setExtras(${flags}, ${exp})` });
}

function concat(r: Rand, op: number): BinCmd {
  return cas(r, { spec: { op, key: binKey(r), value: value(r) } });
}

function arith(r: Rand, op: number): BinCmd {
  const decr = op === OP.DECR || op === OP.DECRQ;
  const d = r.pick(decr ? [...DELTAS, ...BIG_DELTAS] : DELTAS), i = r.pick(INITIALS);
  const exp = r.pick([0xffffffff, 0xffffffff, 0, 100]);
  const spec: PacketSpec = { op, key: binKey(r), extras: arithExtras(d, i, exp) };
  return cas(r, { spec, extrasSrc: `arithExtras(${d}n, ${i}n, ${exp})` });
}

function expiry(r: Rand, op: number, keyed = true): BinCmd {
  const exp = r.pick(EXPIRIES);
  const spec: PacketSpec = { op, extras: u32Extras(exp) };
  if (keyed) spec.key = binKey(r);
  return { spec, extrasSrc: `u32Extras(${exp})` };
}

/** Wrong extras (or a key where none belongs): "Invalid arguments", then memcached closes. */
function malformed(r: Rand): BinCmd {
  return r.pick<() => BinCmd>([
    () => ({ spec: { op: OP.GET, key: "a", extras: u32Extras(1) }, extrasSrc: "u32Extras(1)" }),
    () => ({ spec: { op: OP.SET, key: "a", value: "x" } }),
    () => ({ spec: { op: OP.INCR, key: "a", extras: u32Extras(0) }, extrasSrc: "u32Extras(0)" }),
    () => ({ spec: { op: OP.NOOP, key: "a" } }),
    () => ({ spec: { op: OP.TOUCH, key: "a" } }),
    () => ({ spec: { op: OP.DELETE } }),
  ])();
}

function command(r: Rand): BinCmd {
  const n = r.int(0, 96);
  let c: BinCmd;
  if (n < 22) {
    c = store(r, r.pick([OP.SET, OP.SET, OP.ADD, OP.REPLACE, OP.SETQ, OP.ADDQ, OP.REPLACEQ]));
  } else if (n < 44) {
    c = { spec: { op: r.pick([OP.GET, OP.GETQ, OP.GETK, OP.GETKQ]), key: binKey(r) } };
  } else if (n < 52) c = concat(r, r.pick([OP.APPEND, OP.PREPEND, OP.APPENDQ, OP.PREPENDQ]));
  else if (n < 64) c = arith(r, r.pick([OP.INCR, OP.DECR, OP.INCRQ, OP.DECRQ]));
  else if (n < 71) c = cas(r, { spec: { op: r.pick([OP.DELETE, OP.DELETEQ]), key: binKey(r) } });
  else if (n < 82) {
    c = expiry(r, r.pick([OP.TOUCH, OP.GAT, OP.GATQ, OP.GATK, OP.GATKQ]));
  } else if (n < 86) {
    c = r.chance(0.5) ? expiry(r, r.pick([OP.FLUSH, OP.FLUSHQ]), false) : {
      spec: { op: r.pick([OP.FLUSH, OP.FLUSHQ]) },
    };
    // A delayed flush that comes due within the script would race the clock.
    const ex = c.spec.extras;
    if (ex && new DataView(ex.buffer).getUint32(0) !== 0) {
      c = { spec: { op: c.spec.op, extras: u32Extras(0) }, extrasSrc: "u32Extras(0)" };
    }
  } else if (n < 94) c = { spec: { op: r.pick([OP.NOOP, OP.VERSION]) } };
  else c = { spec: { op: r.pick([0x30, 0x45, 0xfe, OP.VERBOSITY]) } };
  c.spec.opaque = r.chance(0.3) ? 0 : r.int(0, 0xffffffff);
  return c;
}

/** A binary script of `n` steps for `seed`. */
export function binaryScript(seed: number, n = 30): GenStep<BinCmd>[] {
  const r = new Rand(seed ^ 0x5bd1e995);
  const out: GenStep<BinCmd>[] = [];
  for (let i = 0; i < n; i++) {
    const k = r.chance(0.3) ? r.int(2, 6) : 1;
    const step: GenStep<BinCmd> = { cmds: Array.from({ length: k }, () => command(r)) };
    if (r.chance(0.1)) step.chunk = r.int(1, 30);
    out.push(step);
  }
  // What closes the connection ends the script: one in three ends so.
  if (r.chance(0.33)) {
    const bad = r.chance(0.3)
      ? { spec: { op: r.pick([OP.GET, OP.GATQ, OP.DELETE]), key: r.pick(["k".repeat(251), ""]) } }
      : malformed(r);
    bad.spec.opaque = r.int(0, 0xffffffff);
    out.push({ cmds: r.chance(0.5) ? [command(r), bad, command(r)] : [bad] });
  }
  return out;
}

function bytesOf(cmd: BinCmd, cas: bigint): Uint8Array {
  return packet(cmd.useCas ? { ...cmd.spec, cas } : cmd.spec);
}

/** The script as a binary differential case. */
export function toBinCase(name: string, steps: GenStep<BinCmd>[]): BinCase {
  return {
    name,
    steps: steps.map((s): BinStep => ({
      send: (v) => concatBytes(...s.cmds.map((c) => bytesOf(c, v.cas))),
      chunk: s.chunk,
    })),
  };
}

function opName(op: number): string {
  const e = Object.entries(OP).find(([, v]) => v === op);
  return e ? `OP.${e[0]}` : `0x${op.toString(16)}`;
}

function str(s: string | Uint8Array | undefined): string {
  return JSON.stringify(typeof s === "string" ? s : String.fromCharCode(...(s ?? [])));
}

function specSource(c: BinCmd, cas: string): string {
  const s = c.spec;
  const parts = [`op: ${opName(s.op)}`];
  if (s.key !== undefined) parts.push(`key: ${str(s.key)}`);
  if (s.extras) parts.push(`extras: ${c.extrasSrc ?? `new Uint8Array([${[...s.extras]}])`}`);
  if (s.value !== undefined) parts.push(`value: ${str(s.value)}`);
  if (c.useCas) parts.push(`cas: ${cas}`);
  else if (s.cas) parts.push(`cas: ${s.cas}n`);
  parts.push(`opaque: 0x${(s.opaque ?? 0).toString(16)}`);
  return `packet({ ${parts.join(", ")} })`;
}

/** The script as TypeScript to paste into binary_differential_cases.ts. */
export function binCaseSource(name: string, steps: GenStep<BinCmd>[]): string {
  const lines = steps.map((s) => {
    const useCas = s.cmds.some((c) => c.useCas);
    const pk = s.cmds.map((c) => specSource(c, "v.cas"));
    const bytes = pk.length > 1 ? `cat(${pk.join(", ")})` : pk[0];
    const send = useCas ? `(v: BinVars) => ${bytes}` : bytes;
    return s.chunk || useCas ? `    { send: ${send}, chunk: ${s.chunk} },` : `    ${send},`;
  });
  return `{\n  name: ${JSON.stringify(name)},\n  steps: [\n${lines.join("\n")}\n  ],\n},`;
}
