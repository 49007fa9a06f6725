/**
 * Runner for binary protocol scripts: the same packets go to memcached and
 * to memrep, the response packets are rendered field by field (CAS values
 * as labels in order of appearance, so equal stays equal) and compared.
 * @module
 */

import { connect, type TestConn } from "../helpers/conn.ts";
import { escapeBytes } from "../helpers/bytes.ts";
import {
  BARRIER_OPAQUE,
  decodeResponse,
  OP,
  packet,
  type Response,
  responseEnd,
  roundTrip,
  splitResponses,
} from "../helpers/binary.ts";

/** Values captured from earlier responses of a case. */
export interface BinVars {
  /** CAS of the latest response that carried one (0n before). */
  cas: bigint;
}

/** One step: packets to send (or a function of the captured values) and how the reply ends. */
export interface BinStep {
  /** Bytes to send. */
  send: Uint8Array | ((v: BinVars) => Uint8Array);
  /**
   * `sync` (default): a noop barrier follows and the reply runs up to its
   * response; `close`: the server must close; `idle`: read until quiet.
   */
  mode?: "sync" | "close" | "idle";
  /** Stat replies: compare the framing of each packet, not the names and values. */
  statsShape?: boolean;
  /** Stat replies: compare the framing, and these stats by name and value. */
  statsKeys?: string[];
  /** Sleep before the step (ms). */
  sleepMs?: number;
  /** Send in pieces of this many bytes. */
  chunk?: number;
  /**
   * `sync` mode's barrier opcode (default noop): before a SASL login only
   * version is answered, so such steps end with a version request.
   */
  barrier?: number;
}

/** A named script on one connection. */
export interface BinCase {
  /** Behaviour checked. */
  name: string;
  /** Steps in order. */
  steps: (Uint8Array | BinStep)[];
  /** Runs at the same time as the next concurrent cases (own keys, no flush): saves their sleeps. */
  concurrent?: boolean;
}

/** Renders responses with CAS labels. */
class Render {
  #cas = new Map<bigint, string>();

  label(c: bigint): string {
    if (c === 0n) return "0";
    let l = this.#cas.get(c);
    if (!l) this.#cas.set(c, l = `<cas${this.#cas.size + 1}>`);
    return l;
  }

  packet(r: Response): string {
    return `[magic=${hex(r.magic)} op=${hex(r.op)} status=${hex(r.status)} dt=${r.datatype} ` +
      `opaque=${hex(r.opaque)} cas=${this.label(r.cas)} ext=${hexBytes(r.extras)} ` +
      `key="${escapeBytes(r.key)}" value="${escapeBytes(r.value)}"]`;
  }
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

function hexBytes(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** A stat reply's framing: every packet a well-formed stat echoing `opaque`, then the empty one. */
function statsShape(packets: Response[], opaque: number): string {
  const bad = packets.filter((r, i) => {
    const last = i === packets.length - 1;
    return r.magic !== 0x81 || r.op !== OP.STAT || r.status !== 0 || r.extras.length !== 0 ||
      r.cas !== 0n || r.opaque !== opaque ||
      (last ? r.key.length + r.value.length !== 0 : r.key.length === 0);
  });
  const many = packets.length > 1 ? "stats" : "no stats";
  return `${many}, ${bad.length} malformed, ends ${packets.length ? "with empty packet" : "never"}`;
}

/** Run a case on a fresh connection; one rendered string per step. */
export async function runBinCase(port: number, c: BinCase, timeoutMs = 3000): Promise<string[]> {
  const conn = await connect(port);
  const vars: BinVars = { cas: 0n };
  const render = new Render();
  const out: string[] = [];
  try {
    for (const s of c.steps) {
      const step: BinStep = s instanceof Uint8Array ? { send: s } : s;
      if (step.sleepMs) await new Promise((r) => setTimeout(r, step.sleepMs));
      const bytes = typeof step.send === "function" ? step.send(vars) : step.send;
      out.push(await runStep(conn, step, bytes, vars, render, timeoutMs));
      if (conn.eof) break;
    }
  } finally {
    await conn.close();
  }
  return out;
}

async function runStep(
  conn: TestConn,
  step: BinStep,
  bytes: Uint8Array,
  vars: BinVars,
  render: Render,
  timeoutMs: number,
): Promise<string> {
  const mode = step.mode ?? "sync";
  let send = bytes;
  const barrierOp = step.barrier ?? OP.NOOP;
  if (mode === "sync") {
    const barrier = packet({ op: barrierOp, opaque: BARRIER_OPAQUE });
    send = new Uint8Array(bytes.length + barrier.length);
    send.set(bytes);
    send.set(barrier, bytes.length);
  }
  let marker = "";
  try {
    if (step.chunk) await conn.sendSlowly(send, step.chunk, 1);
    else await conn.send(send);
  } catch {
    marker = " <send failed>";
  }
  let raw: Uint8Array;
  if (mode === "sync") {
    try {
      raw = await conn.readUntil((b) => barrierEnd(b, barrierOp), timeoutMs);
    } catch {
      raw = await conn.readIdle(1, 1);
      marker += conn.eof ? " <closed>" : " <no barrier reply>";
    }
  } else if (mode === "idle") {
    raw = await conn.readIdle(300, timeoutMs);
    if (conn.eof) marker += " <closed>";
  } else {
    const closed = await conn.waitClosed(timeoutMs);
    raw = await conn.readIdle(1, 1);
    marker += closed ? " <closed>" : " <still open>";
  }
  const { packets, rest } = splitResponses(raw);
  if (mode === "sync" && !marker) packets.pop(); // the barrier's own response
  for (const r of packets) if (r.cas !== 0n) vars.cas = r.cas;
  if (step.statsShape || step.statsKeys) {
    const opaque = packets.length ? packets[0].opaque : 0;
    const values = (step.statsKeys ?? []).map((k) => {
      const r = packets.find((p) => escapeBytes(p.key) === k);
      return `${k}=${r ? escapeBytes(r.value) : "<absent>"}`;
    });
    return [statsShape(packets, opaque), ...values].join(" ") +
      (rest.length ? ` +"${escapeBytes(rest)}"` : "") + marker;
  }
  return packets.map((r) => render.packet(r)).join("\n") +
    (rest.length ? ` +"${escapeBytes(rest)}"` : "") + marker;
}

function barrierEnd(b: Uint8Array, op: number): number {
  let p = 0;
  for (;;) {
    const e = responseEnd(b, p);
    if (e < 0) return -1;
    const r = decodeResponse(b.subarray(p, e));
    if (r.op === op && r.opaque === BARRIER_OPAQUE) return e;
    p = e;
  }
}

/** Flush a server with a binary flush (every differential case starts flushed). */
export async function binaryFlush(port: number): Promise<void> {
  const c = await connect(port);
  try {
    const r = await roundTrip(c, packet({ op: OP.FLUSH, opaque: 1 }));
    if (r.length !== 1 || r[0].status !== 0) throw new Error(`flush on ${port} failed`);
  } finally {
    await c.close();
  }
}

/**
 * The steps whose rendered replies differ, each as memcached's and `who`'s
 * (empty: identical, the number of steps included).
 */
export function stepDiffs(expected: string[], actual: string[], who = "memrep"): string[] {
  const lines: string[] = [];
  const label = `${who}:`.padEnd("memcached:".length);
  for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
    if (expected[i] !== actual[i]) {
      lines.push(`step ${i}:\n  memcached: ${expected[i]}\n  ${label} ${actual[i]}`);
    }
  }
  return lines;
}

/**
 * Runs `cases` on both servers, each group from a flushed cache: one case
 * at a time, or with `together`, runs of concurrent cases side by side.
 * Returns each case's rendered replies, memcached's first.
 */
export async function runBinCases(
  refPort: number,
  sutPort: number,
  cases: BinCase[],
  together: boolean,
): Promise<Map<string, [string[], string[]]>> {
  const results = new Map<string, [string[], string[]]>();
  const todo = [...cases];
  while (todo.length) {
    let n = 1;
    while (together && todo[0].concurrent && todo[n]?.concurrent) n++;
    const group = todo.splice(0, n);
    await Promise.all([binaryFlush(refPort), binaryFlush(sutPort)]);
    await Promise.all(group.map(async (c) => {
      const [expected, actual] = await Promise.all([
        runBinCase(refPort, c),
        runBinCase(sutPort, c),
      ]);
      results.set(c.name, [expected, actual]);
    }));
  }
  return results;
}
