/**
 * Runner for differential protocol scripts: the same bytes go to two servers,
 * the replies are normalised (CAS numbers, versions, fuzzy TTLs) and compared
 * byte for byte.
 *
 * A step's reply is delimited with a barrier: the step's bytes are followed by
 * `mn\r\n` and the reply runs until the `MN\r\n` it produces, so quiet
 * (noreply) commands are checked for silence without waiting on timers.
 * @module
 */

import { bytesToString, concatBytes, escapeBytes, toBytes } from "../helpers/bytes.ts";
import { connect, ReadError } from "../helpers/conn.ts";

/** Values captured from earlier replies of the same case, for `{cas}` style templates. */
export interface Vars {
  /** CAS of the most recent `VALUE ... <cas>` line or meta `c<cas>` token. */
  cas: string;
}

/** One step of a script. */
export interface Step {
  /** Bytes to send; `{cas}`, `{cas+1}`, `{now+N}` (unix time) are filled in. */
  send: string | Uint8Array;
  /**
   * How the reply ends: `sync` (default) appends the `mn` barrier; `idle` reads
   * until the line is quiet (for steps that leave the server mid-command);
   * `close` expects the server to close the connection.
   */
  mode?: "sync" | "idle" | "close";
  /** Send in chunks of this many bytes with tiny pauses (split-read tests). */
  chunk?: number;
  /** Quiet time for `idle` mode (ms, default 250). */
  idleMs?: number;
  /** Sleep this long before the step (ms), for expiry tests. */
  sleepMs?: number;
}

/** A named script. Strings are shorthand for `{ send }` sync steps. */
export interface Case {
  /** Behaviour the case checks. */
  name: string;
  /** Steps in order, on one connection. */
  steps: (string | Step)[];
  /**
   * For behaviour newer than the reference memcached (1.6.18): the exact raw
   * reply of each step (string, or RegExp on the whole reply). Such a case runs
   * on memrep only and is compared with this list instead of memcached.
   */
  expect?: (string | RegExp)[];
}

/** What one server answered for one case, before and after normalising. */
export interface Transcript {
  /** Per step: the raw reply bytes (escaped) and a trailing marker for close/timeout. */
  raw: string[];
  /** Per step: normalised text that is compared (escaped, never cut). */
  normalised: string[];
  /** Per step: the raw reply text (latin1), markers appended. */
  text: string[];
}

const BARRIER = toBytes("mn\r\n");
const BARRIER_REPLY = "MN\r\n";

function fill(send: string | Uint8Array, vars: Vars): Uint8Array {
  if (typeof send !== "string") return send;
  const now = Math.floor(Date.now() / 1000);
  const s = send
    .replaceAll("{cas}", vars.cas)
    .replaceAll("{cas+1}", (BigInt(vars.cas || "0") + 1n).toString())
    .replace(/\{now\+(\d+)\}/g, (_, n) => String(now + Number(n)));
  return toBytes(s);
}

function capture(reply: string, vars: Vars): void {
  for (const line of reply.split("\r\n")) {
    const v = /^VALUE \S+ \d+ \d+ (\d+)$/.exec(line);
    if (v) vars.cas = v[1];
    if (/^(HD|VA|EN|NF|NS|EX|ME)\b/.test(line)) {
      for (const tok of line.split(" ")) {
        const m = /^c(\d+)$/.exec(tok);
        if (m && m[1] !== "0") vars.cas = m[1];
      }
    }
  }
}

/**
 * Replaces values that legitimately differ between implementations with
 * stable placeholders: CAS numbers become `<cas1>`, `<cas2>`... in order of
 * first appearance (so equal CAS stays equal), the version string becomes
 * `<version>`, TTLs of 10 s or more are rounded to the nearest 10 s (test
 * TTLs are round numbers: a clock a second apart stays in the same bucket; a TTL past already,
 * which shows the server's uptime, becomes `t<past>`), and `l` (seconds
 * since last access) of 0-2 becomes `l<few>`.
 */
export class Normaliser {
  #cas = new Map<string, string>();

  #casLabel(n: string): string {
    if (n === "0") return "0";
    let l = this.#cas.get(n);
    if (!l) {
      l = `<cas${this.#cas.size + 1}>`;
      this.#cas.set(n, l);
    }
    return l;
  }

  /** Normalises one reply (latin1 text). */
  normalise(reply: string): string {
    return reply.split("\r\n").map((line) => {
      const v = /^(VALUE \S+ \d+ \d+) (\d+)$/.exec(line);
      if (v) return `${v[1]} ${this.#casLabel(v[2])}`;
      if (/^VERSION /.test(line)) return "VERSION <version>";
      // `me` shows internals (last access, CAS, slab class, item size): keep what is portable.
      const me = /^ME (\S+) (.*)$/.exec(line);
      if (me) {
        return `ME ${me[1]} ` + me[2].split(" ").map((kv) => {
          const [k, v] = kv.split("=");
          // (1.6.18 shows a TTL negated: exp=-100; a second may tick between set and me.)
          if (k === "exp" && Math.abs(Number(v)) >= 10) {
            return `exp=~${Math.round(Number(v) / 10) * 10}`;
          }
          return ["exp", "fetch"].includes(k) ? kv : `${k}=<${v === undefined ? "?" : "n"}>`;
        }).join(" ");
      }
      if (/^(HD|VA|EN|NF|NS|EX|ME)\b/.test(line)) {
        return line.split(" ").map((tok) => {
          let m = /^c(\d+)$/.exec(tok);
          if (m) return "c" + this.#casLabel(m[1]);
          m = /^t(\d+)$/.exec(tok);
          // An exptime already past shows as (1 - the server's clock) mod 2^32: its uptime.
          if (m && Number(m[1]) >= 2 ** 31) return "t<past>";
          if (m && Number(m[1]) >= 10) return `t~${Math.round(Number(m[1]) / 10) * 10}`;
          m = /^l(\d+)$/.exec(tok);
          if (m && Number(m[1]) <= 2) return "l<few>";
          return tok;
        }).join(" ");
      }
      return line;
    }).join("\r\n");
  }
}

/** Runs a case on a fresh connection to `port` and records every step's reply. */
export async function runCase(port: number, c: Case, timeoutMs = 3000): Promise<Transcript> {
  const conn = await connect(port);
  const vars: Vars = { cas: "0" };
  const norm = new Normaliser();
  const out: Transcript = { raw: [], normalised: [], text: [] };
  try {
    for (const s of c.steps) {
      const step: Step = typeof s === "string" ? { send: s } : s;
      if (step.sleepMs) await new Promise((r) => setTimeout(r, step.sleepMs));
      const mode = step.mode ?? "sync";
      let bytes = fill(step.send, vars);
      if (mode === "sync") bytes = concatBytes(bytes, BARRIER);
      let marker = "";
      let reply: Uint8Array;
      try {
        if (step.chunk) await conn.sendSlowly(bytes, step.chunk, 1);
        else await conn.send(bytes);
      } catch {
        marker = "<send failed: closed>";
      }
      if (mode === "sync") {
        try {
          // Scripts may hold their own `mn`: wait for one MN per mn sent.
          const want = countMn(bytes);
          reply = await conn.readUntil(
            (b) => endsWith(b, BARRIER_REPLY) && countMN(b) >= want ? b.length : -1,
            timeoutMs,
          );
          reply = reply.subarray(0, reply.length - BARRIER_REPLY.length);
        } catch (e) {
          reply = e instanceof ReadError ? e.received : new Uint8Array();
          await conn.readIdle(1, 1); // consume what ReadError reported
          marker = conn.eof ? "<closed>" : "<timeout: no MN barrier reply>";
        }
      } else if (mode === "idle") {
        reply = await conn.readIdle(step.idleMs ?? 250, timeoutMs);
        if (conn.eof) marker = "<closed>";
      } else {
        const closed = await conn.waitClosed(timeoutMs);
        reply = await conn.readIdle(1, 1);
        marker = closed ? "<closed>" : "<still open>";
      }
      const text = bytesToString(reply);
      capture(text, vars);
      out.raw.push(escapeBytes(text) + marker);
      out.text.push(text + marker);
      // Whole, not cut in the middle: a difference there must not hide.
      out.normalised.push(escapeWhole(norm.normalise(text)) + marker);
      if (conn.eof) break;
    }
  } finally {
    await conn.close();
  }
  return out;
}

/**
 * escapeBytes' escapes of a latin1 string, never cut, by one native replace: escaping a reply of
 * megabytes char by char held the event loop past the other server's read timeout.
 */
function escapeWhole(s: string): string {
  return s.replace(/[^\x20-\x5b\x5d-\x7e]/g, (c) => {
    if (c === "\r") return "\\r";
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\\") return "\\\\";
    return "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0");
  });
}

function countMn(sent: Uint8Array): number {
  return (bytesToString(sent).match(/(?<=^|\n)mn\r?\n/g) ?? []).length;
}

function countMN(reply: Uint8Array): number {
  return (bytesToString(reply).match(/(?<=^|\n)MN\r\n/g) ?? []).length;
}

function endsWith(b: Uint8Array, s: string): boolean {
  if (b.length < s.length) return false;
  for (let i = 0; i < s.length; i++) {
    if (b[b.length - s.length + i] !== s.charCodeAt(i)) return false;
  }
  return true;
}

/** Renders a failing comparison: the script and both transcripts, step by step, escaped. */
export function describeDiff(
  c: Case,
  expected: Transcript,
  actual: Transcript,
  expectedName: string,
  actualName: string,
): string {
  const lines = [`case: ${c.name}`];
  const n = Math.max(c.steps.length, expected.normalised.length, actual.normalised.length);
  for (let i = 0; i < n; i++) {
    const s = c.steps[i];
    const send = s === undefined ? "" : typeof s === "string" ? s : s.send;
    const same = expected.normalised[i] === actual.normalised[i];
    lines.push(`${same ? "  " : "✗ "}step ${i + 1}: send "${escapeBytes(send, 400)}"`);
    lines.push(`    ${expectedName.padEnd(10)}: "${expected.raw[i] ?? "<not run>"}"`);
    lines.push(`    ${actualName.padEnd(10)}: "${actual.raw[i] ?? "<not run>"}"`);
    if (!same) {
      const [e, a] = [expected.normalised[i], actual.normalised[i]];
      // From the first byte that differs (the normalised text is whole, its head may be long).
      let at = 0;
      while (e !== undefined && a !== undefined && at < e.length && e[at] === a[at]) at++;
      const from = (s: string | undefined) =>
        s === undefined
          ? "<not run>"
          : (at > 200 ? `...${s.slice(at - 100, at + 300)}` : s.slice(0, 600));
      lines.push(`    normalised ${expectedName}: "${from(e)}"`);
      lines.push(`    normalised ${actualName}: "${from(a)}"`);
    }
  }
  return lines.join("\n");
}

/** Compares a transcript with a case's literal `expect` list; returns a report or "" when it matches. */
export function checkExpected(c: Case, actual: Transcript, replies: string[]): string {
  const exp = c.expect ?? [];
  let bad = false;
  const lines = [`case: ${c.name} (expected replies from memcached after 1.6.18)`];
  for (let i = 0; i < Math.max(exp.length, replies.length); i++) {
    const e = exp[i];
    const r = replies[i];
    const ok = e !== undefined && r !== undefined &&
      (typeof e === "string" ? e === r : e.test(r));
    if (!ok) bad = true;
    const s = c.steps[i];
    const send = s === undefined ? "" : typeof s === "string" ? s : s.send;
    lines.push(`${ok ? "  " : "✗ "}step ${i + 1}: send "${escapeBytes(send, 400)}"`);
    lines.push(
      `    expected : ${
        e === undefined ? "<nothing>" : typeof e === "string" ? `"${escapeBytes(e)}"` : e
      }`,
    );
    lines.push(`    memrep   : "${actual.raw[i] ?? "<not run>"}"`);
  }
  return bad ? lines.join("\n") : "";
}
