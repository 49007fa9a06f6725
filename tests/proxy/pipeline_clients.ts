/**
 * The clients of tests/proxy/pipeline_model_test.ts: one connection owns
 * its keys and pipelines random batches of text, meta or binary requests,
 * then reads every reply in order and runs it through the model
 * (./pipeline_model.ts): each read must be the state after all earlier
 * requests of the connection.
 * @module
 */

import { connect, ReadError, retrievalEnd, type TestConn } from "../helpers/mod.ts";
import { metaEnd } from "../helpers/conn.ts";
import { decodeResponse, responseEnd } from "../helpers/binary.ts";
import { binaryOp } from "./pipeline_binary.ts";
import {
  ABSENT,
  checkRead,
  classify,
  clock,
  KeyModel,
  present,
  split,
  type Tally,
  write,
} from "./pipeline_model.ts";

/** Fault state shared with the fault loop: reads are strict only while calm. */
export interface Weather {
  /** Bumped at each fault's start. */
  epoch: number;
  /** No fault active and the proxy healthy since the last one ended. */
  calm: boolean;
  /** Stop after the current batch. */
  stop: boolean;
}

/** A killed primary's keys may be missed but not read stale (see ModelClient.lose). */
/** MEMREP_MODEL_STRICT: see pipeline_model_test.ts. */
export const STRICT = Deno.env.get("MEMREP_MODEL_STRICT") !== undefined;
/** At most this many states of a key whose state is unknown (its primary was killed). */
const WILD_STATES = 256;
/** States kept per write of such a key, for classifying a read (the newest ones). */
const WILD_MADE = 16;

/** A write's effect on one possible state (null: not applied). */
export type Apply = (s: string) => string | null;

/** One pipelined request: its bytes, where its reply ends, what the reply means. */
export interface Req {
  seq: number;
  bytes: Uint8Array;
  /** Text: end of the reply in the buffer, or -1. Binary: replies are packets. */
  end: (b: Uint8Array) => number;
  /** Binary: packets this request expects (getkq groups: until the noop's opaque). */
  untilOpaque?: number;
  handle: (reply: Uint8Array, calm: boolean) => void;
  sentAt: number;
  epoch: number;
  calm: boolean;
}

const enc = new TextEncoder();
/** Bytes as latin1 text. */
export function latin1(b: Uint8Array): string {
  // In chunks: spreading a large reply into one call overflows the stack.
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}
const lineEnd = (b: Uint8Array) => {
  for (let i = 1; i < b.length; i++) if (b[i] === 10 && b[i - 1] === 13) return i + 1;
  return -1;
};

/** A pipelining client's owned keys and model. */
export class ModelClient {
  /** This client's seeded random source. */
  readonly rnd: () => number;
  /** Where violations are counted. */
  readonly tally: Tally;
  readonly #w: Weather;
  readonly #binary: boolean;
  /** Plain keys (values, appends). */
  readonly plain: string[];
  /** Counter keys (numbers). */
  readonly ctrs: string[];
  /** Each key's model. */
  readonly models = new Map<string, KeyModel>();
  readonly #tag: string;
  /** Requests made so far (the last one's number; binary opaques). */
  seq = 0;
  #conn: TestConn | undefined;
  /** Where a key is now, on every server (reports). */
  inspect: ((key: string) => Promise<string>) | undefined;
  /** Requests sent, per kind, for the report. */
  readonly sent = new Map<string, number>();

  /** A client of `keys` plain keys and a few counters named after `tag`. */
  constructor(rnd: () => number, t: Tally, w: Weather, tag: string, binary: boolean, keys: number) {
    this.rnd = rnd;
    this.tally = t;
    this.#w = w;
    this.#tag = tag;
    this.#binary = binary;
    this.plain = Array.from({ length: keys }, (_, i) => `${tag}k${i}`);
    this.ctrs = Array.from({ length: 3 }, (_, i) => `${tag}n${i}`);
    for (const k of [...this.plain, ...this.ctrs]) this.models.set(k, new KeyModel());
  }

  /** Every key this client owns. */
  keys(): string[] {
    return [...this.plain, ...this.ctrs];
  }

  /**
   * Marks `keys` (their primary was killed at `at`) as unsure: see
   * KeyModel.wildSince. MEMREP_MODEL_STRICT: they may be missed (gone with
   * it, the backups' copies failed), never read with an older value.
   */
  lose(keys: Iterable<string>, at: number): void {
    for (const k of keys) {
      const m = this.models.get(k);
      if (m === undefined) continue;
      m.token = undefined;
      if (STRICT && m.wildSince === undefined) {
        m.lostAt = at;
        m.poss.add(ABSENT);
      } else m.wildSince = at;
    }
  }

  /** Batches until the weather says stop, then (calm) one read of every key. */
  async run(port: number): Promise<void> {
    this.#conn = await connect(port);
    try {
      while (!this.#w.stop) {
        if (!await this.#batch(1 + Math.floor(this.rnd() * 40))) return;
        if (this.rnd() < 0.3) await new Promise((r) => setTimeout(r, this.rnd() * 20));
      }
    } finally {
      await this.#conn.close();
    }
  }

  /** Reads every key once more (the caller made sure the proxy is healthy and calm). */
  async final(port: number): Promise<void> {
    this.#conn = await connect(port);
    try {
      const reqs = this.keys().map((k) => this.#read(k, false));
      await this.#send(reqs);
    } finally {
      await this.#conn.close();
    }
  }

  /** A random element. */
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)];
  }

  /** Counts a request kind (report). */
  count(kind: string): void {
    this.sent.set(kind, (this.sent.get(kind) ?? 0) + 1);
  }

  async #batch(n: number): Promise<boolean> {
    const reqs: Req[] = [];
    for (let i = 0; i < n; i++) reqs.push(...this.#binary ? binaryOp(this) : this.#textOp());
    return await this.#send(reqs);
  }

  /** Sends `reqs` in one write, reads every reply, then models them in order. */
  async #send(reqs: Req[]): Promise<boolean> {
    const c = this.#conn!;
    const now = Date.now();
    for (const r of reqs) {
      r.sentAt = now;
      r.epoch = this.#w.epoch;
      r.calm = this.#w.calm;
    }
    const total = reqs.reduce((a, r) => a + r.bytes.length, 0);
    const all = new Uint8Array(total);
    let o = 0;
    for (const r of reqs) all.set(r.bytes, o), o += r.bytes.length;
    const sending = c.send(all).catch(() => {});
    const replies: Uint8Array[] = [];
    try {
      for (const r of reqs) {
        if (r.untilOpaque === undefined) replies.push(await c.readUntil(r.end, 30_000));
        else {
          // A getkq group: hit packets, then the noop.
          const parts: Uint8Array[] = [];
          for (;;) {
            const p = await c.readUntil((b) => responseEnd(b), 30_000);
            parts.push(p);
            if (decodeResponse(p).opaque === r.untilOpaque) break;
          }
          replies.push(concat(parts));
        }
      }
    } catch (e) {
      this.tally.bad(e instanceof ReadError ? "hang" : "shape", `${this.#tag}: ${e}`);
      await sending;
      return false;
    }
    await sending;
    const pending: Parameters<typeof classify>[1] = [];
    this.#pending = pending;
    reqs.forEach((r, i) => {
      const calm = r.calm && this.#w.calm && r.epoch === this.#w.epoch;
      this.#sentAt = clock.now = r.sentAt;
      this.#head = latin1(r.bytes.subarray(0, 40));
      try {
        r.handle(replies[i], calm);
      } catch (e) {
        this.tally.bad(
          "shape",
          `${this.#tag} #${r.seq}: ${e} in ${JSON.stringify(latin1(replies[i]).slice(0, 200))}`,
        );
      }
    });
    const bad = [...pending.filter((p) => !p.wild).map((p) => p.key), ...this.#missed];
    this.#missed.length = 0;
    classify(this.tally, pending);
    if (this.inspect !== undefined && bad.length > 0 && this.tally.reports.length < 20) {
      for (const k of new Set(bad)) this.tally.reports.push(`  ${k} now: ${await this.inspect(k)}`);
    }
    return true;
  }

  #pending: Parameters<typeof classify>[1] = [];
  /** Keys whose read was counted lost in the batch being modelled (inspected for the report). */
  readonly #missed: string[] = [];
  /** Last requests per key (reports). */
  readonly #trail = new Map<string, string[]>();

  #trace(key: string, s: string): void {
    const t = this.#trail.get(key) ?? [];
    t.push(s);
    if (t.length > 8) t.shift();
    this.#trail.set(key, t);
  }

  /** The start of the request being modelled (reports). */
  #head = "";
  /** When the request being modelled was sent. */
  #sentAt = 0;

  /** A read of `key` answered `got` (ABSENT: a miss). */
  check(key: string, seq: number, got: string, calm: boolean): void {
    const m = this.models.get(key)!;
    if (got !== ABSENT && this.ctrs.includes(key)) got = got.replace(/ +$/, "");
    const before = this.tally.total() + this.#pending.length, wild = m.wildSince !== undefined;
    checkRead(this.tally, key, m, seq, got, calm, this.#pending);
    const shown = got === ABSENT ? "miss" : JSON.stringify(got.slice(0, 16));
    if (this.tally.total() + this.#pending.length > before && !wild) {
      if (got === ABSENT) this.#missed.push(key);
      this.tally.reports.push(`  trail of ${key}: ${this.#trail.get(key)?.join(", ")}`);
    }
    this.#trace(key, `#${seq}@${this.#sentAt % 100000} read ${shown}${calm ? "" : " (fault)"}`);
  }

  /** A write's outcome into the model; a reply no state explains is counted. */
  wrote(
    key: string,
    seq: number,
    outcome: "ok" | "no" | "err",
    apply: Apply,
    calm: boolean,
    del = false,
  ) {
    const m = this.models.get(key)!;
    this.#trace(
      key,
      `#${seq}@${this.#sentAt % 100000} ${JSON.stringify(this.#head.slice(0, 24))} ${outcome}${
        calm ? "" : " (fault)"
      }`,
    );
    if (outcome === "err") {
      if (calm) this.tally.calmErrors++;
      else this.tally.faultErrors++;
    } else this.tally.writes++;
    if (m.wildSince !== undefined) {
      if (outcome === "no") return m.poss.add(ABSENT), undefined;
      // The state is unknown: a write that sets it whatever it was, sent after the kill, ends that.
      const on = (s: string) => {
        try {
          return apply(s);
        } catch {
          return null; // a counter's delta on a non-number: depends on the state
        }
      };
      const fixed = del ? ABSENT : on(ABSENT), again = del ? ABSENT : on(`0|${this.#tag}`);
      const total = outcome === "ok" && fixed !== null && fixed === again;
      if (total && this.#sentAt > m.wildSince) {
        m.wildSince = undefined;
        m.poss = new Set([fixed]);
        m.wrote(seq, [fixed], del, true);
      } else {
        const made = [...m.poss].map(on).filter((x) => x !== null) as string[];
        // Every write keeps its states (events): appends of large values would keep gigabytes.
        m.wrote(seq, made.slice(-WILD_MADE), del, outcome === "ok");
        // Appends while the state is unknown double it: keep the newest states only (a read of
        // a dropped one is then not classified, never wrongly blamed).
        m.poss = new Set([...m.poss, ...made, ABSENT].slice(-WILD_STATES));
      }
      return;
    }
    // A fault's "not stored/found" may be a server that lost the key (or a retry refused):
    // it proves nothing about the others.
    if (outcome === "no" && !calm) return;
    if (write(m, seq, outcome, apply, del)) {
      if (m.lostAt !== undefined) {
        // Sent before the kill: it may be gone with the primary too. After it: it is the value.
        if (this.#sentAt <= m.lostAt) m.poss.add(ABSENT);
        else if (outcome === "ok") m.lostAt = undefined;
      }
      // Failed appends double the states (each one applied or not): past the bound the state
      // is unknown as after a kill (only a later write's value is then wrong; a dropped state
      // is never blamed), or the test runner runs out of memory (seed 14).
      if (m.poss.size > WILD_STATES) {
        m.wildSince = this.#sentAt;
        m.token = undefined;
      }
      return;
    }
    if (outcome === "no" && !calm) return; // a fault's answer: the write went nowhere
    this.tally.bad(
      "wrong_reply",
      `${key} #${seq}: ${outcome} fits none of ${show(m.poss)}; trail: ${
        this.#trail.get(key)?.join(", ")
      }`,
    );
    // Unknown from here until a write that sets the key whatever it held.
    m.wildSince = this.#sentAt;
    m.token = undefined;
  }

  /** A touch's outcome: the item stays (no new value, CAS kept), or it says there is none. */
  touched(key: string, seq: number, o: "ok" | "no" | "err", calm: boolean): void {
    if (o === "err") return;
    const m = this.models.get(key)!;
    this.#trace(key, `#${seq}@${this.#sentAt % 100000} touch ${o}${calm ? "" : " (fault)"}`);
    if (m.wildSince !== undefined || !calm) return;
    const keep = o === "ok" ? present(m.poss) : m.poss.has(ABSENT) ? [ABSENT] : [];
    if (keep.length > 0) m.poss = new Set(keep);
    else {
      this.tally.bad("wrong_reply", `${key} #${seq}: touch ${o} fits none of ${show(m.poss)}`);
      m.wildSince = this.#sentAt;
      m.token = undefined;
    }
  }

  /** A new value naming request `seq`; one in 20 is 5-45 KB. */
  value(seq: number): string {
    const n = this.rnd() < 0.05
      ? 5000 + Math.floor(this.rnd() * 40_000)
      : Math.floor(this.rnd() * 20);
    return `${this.#tag}.${seq}_${"x".repeat(n)}`;
  }

  /** One request: bytes, where its reply ends, what it means. */
  req(
    seq: number,
    bytes: string | Uint8Array,
    end: Req["end"],
    handle: Req["handle"],
  ): Req {
    return {
      seq,
      bytes: typeof bytes === "string" ? enc.encode(bytes) : bytes,
      end,
      handle,
      sentAt: 0,
      epoch: 0,
      calm: false,
    };
  }

  /** A text read of one key (get, gets or mg). */
  #read(key: string, random = true): Req {
    const seq = ++this.seq;
    const r = random ? this.rnd() : 0;
    if (r < 0.6) return this.#multi([key], seq, random && this.rnd() < 0.5 ? "gets" : "get");
    this.count("mg");
    return this.req(seq, `mg ${key} v f c\r\n`, metaEnd, (b, calm) => {
      const s = latin1(b);
      if (s === "EN\r\n") return this.check(key, seq, ABSENT, calm);
      const m = /^VA (\d+) f(\d+) c(\d+)\r\n/.exec(s);
      if (!m) return this.#error(s, calm);
      const data = s.slice(m[0].length, m[0].length + Number(m[1]));
      this.check(key, seq, `${m[2]}|${data}`, calm);
      this.token(key, BigInt(m[3]), calm);
    });
  }

  /** A read returned this CAS for `key`. */
  token(key: string, cas: bigint, calm: boolean): void {
    const m = this.models.get(key)!;
    m.read(cas, calm && m.wildSince === undefined);
    this.#trace(key, `token ${cas}`);
  }

  /** A reply that is an error line: allowed, counted (during a fault or not). */
  #error(s: string, calm: boolean): void {
    if (!/^(SERVER_ERROR [^\r\n]*)\r\n$/.test(s)) {
      throw new Error(`not a reply: ${JSON.stringify(s.slice(0, 80))}`);
    }
    if (calm) this.tally.calmErrors++;
    else this.tally.faultErrors++;
  }

  #multi(keys: string[], seq: number, word: "get" | "gets"): Req {
    this.count(keys.length > 1 ? `${word} multi` : word);
    return this.req(seq, `${word} ${keys.join(" ")}\r\n`, retrievalEnd, (b, calm) => {
      const s = latin1(b);
      if (s.startsWith("SERVER_ERROR")) return this.#error(s, calm);
      let off = 0, i = 0;
      const re = /^VALUE (\S+) (\d+) (\d+)( \d+)?\r\n/;
      for (;;) {
        if (s.slice(off) === "END\r\n") break;
        const m = re.exec(s.slice(off));
        if (!m || (word === "gets") !== (m[4] !== undefined)) throw new Error("bad VALUE line");
        while (i < keys.length && keys[i] !== m[1]) this.check(keys[i++], seq, ABSENT, calm);
        if (i === keys.length) throw new Error(`VALUE ${m[1]} out of order`);
        const data = s.slice(off + m[0].length, off + m[0].length + Number(m[3]));
        if (
          s.slice(off + m[0].length + data.length, off + m[0].length + data.length + 2) !== "\r\n"
        ) {
          throw new Error("bad data block");
        }
        this.check(keys[i], seq, `${m[2]}|${data}`, calm);
        if (m[4] !== undefined) this.token(keys[i], BigInt(m[4]), calm);
        i++;
        off += m[0].length + data.length + 2;
      }
      while (i < keys.length) this.check(keys[i++], seq, ABSENT, calm);
    });
  }

  /** The line of a text write: "ok", "no", "err" by the words memcached uses. */
  #line(b: Uint8Array, ok: string[], no: string[], calm: boolean): "ok" | "no" | "err" {
    const s = latin1(b);
    const w = s.slice(0, -2);
    if (ok.includes(w)) return "ok";
    if (no.includes(w)) return "no";
    this.#error(s, calm);
    return "err";
  }

  #textOp(): Req[] {
    const seq = ++this.seq;
    const r = this.rnd();
    const key = this.pick(this.plain), ctr = this.pick(this.ctrs);
    const flags = Math.floor(this.rnd() * 4);
    if (r < 0.25) {
      const w = this.pick(["set", "set", "add", "replace", "append", "prepend"] as const);
      const v = this.value(seq);
      this.count(w);
      const apply: Apply = (s) => {
        if (w === "set") return `${flags}|${v}`;
        if (w === "add") return s === ABSENT ? `${flags}|${v}` : null;
        if (s === ABSENT) return null;
        const [f, d] = split(s);
        return w === "replace"
          ? `${flags}|${v}`
          : w === "append"
          ? `${f}|${d}${v}`
          : `${f}|${v}${d}`;
      };
      return [
        this.req(seq, `${w} ${key} ${flags} 0 ${v.length}\r\n${v}\r\n`, lineEnd, (b, calm) => {
          this.wrote(key, seq, this.#line(b, ["STORED"], ["NOT_STORED"], calm), apply, calm);
        }),
      ];
    }
    if (r < 0.31) {
      const m = this.models.get(key)!, tok = m.token;
      if (tok === undefined) return [this.#read(key)];
      const v = this.value(seq);
      this.count("cas");
      return [
        this.req(
          seq,
          `cas ${key} ${flags} 0 ${v.length} ${tok.cas}\r\n${v}\r\n`,
          lineEnd,
          (b, calm) => {
            const o = this.#line(b, ["STORED"], ["EXISTS", "NOT_FOUND"], calm);
            const was = tok.state;
            if (o === "ok") {
              this.tally.casStored++;
              if (was === "stale") {
                this.tally.bad(
                  "cas",
                  `${key} #${seq}: cas ${tok.cas} with a token from before a write stored; trail: ${
                    this.#trail.get(key)?.join(", ")
                  }`,
                );
              }
            }
            const fresh = o === "no" && was === "fresh" && calm &&
              present(m.poss).length === m.poss.size;
            if (fresh && !STRICT && latin1(b) === "EXISTS\r\n") this.tally.casKnownExists++;
            else if (fresh) {
              this.tally.bad(
                "cas",
                `${key} #${seq}: cas ${tok.cas} with the token just read failed: ${
                  latin1(b).trim()
                }; trail: ${this.#trail.get(key)?.join(", ")}`,
              );
            }
            const apply: Apply = (s) => s === ABSENT ? null : `${flags}|${v}`;
            // EXISTS leaves the item; NOT_FOUND says there is none.
            if (o === "no" && latin1(b) === "NOT_FOUND\r\n") {
              this.wrote(key, seq, "no", (s) => s === ABSENT ? null : s, calm);
            } else if (o === "no") {
              this.wrote(key, seq, "no", (s) => s === ABSENT ? "" : null, calm);
            } else this.wrote(key, seq, o, apply, calm);
          },
        ),
      ];
    }
    if (r < 0.42) {
      // Counters: set a number, incr/decr (text or ma).
      const k = ctr;
      const q = this.rnd();
      if (q < 0.3) {
        const v = String(Math.floor(this.rnd() * 1000));
        this.count("set ctr");
        return [
          this.req(seq, `set ${k} ${flags} 0 ${v.length}\r\n${v}\r\n`, lineEnd, (b, calm) => {
            this.wrote(k, seq, this.#line(b, ["STORED"], [], calm), () => `${flags}|${v}`, calm);
          }),
        ];
      }
      const d = BigInt(Math.floor(this.rnd() * 50));
      const incr = this.rnd() < 0.6;
      const apply = (s: string) => {
        if (s === ABSENT) return null;
        const [f, n] = split(s);
        const x = BigInt(n.trim());
        return `${f}|${incr ? x + d : x > d ? x - d : 0n}`;
      };
      const arith = (k: string, num: string | undefined, calm: boolean) => {
        if (num === undefined) {
          return this.wrote(k, seq, "no", (s) => s === ABSENT ? null : "", calm);
        }
        const m = this.models.get(k)!;
        const fits = new Set(
          [...m.poss].map(apply).filter((x) => x !== null && split(x)[1] === num),
        );
        this.wrote(k, seq, "ok", (s) => {
          const x = apply(s);
          return x !== null && fits.has(x) ? x : null;
        }, calm);
      };
      if (q < 0.65) {
        this.count(incr ? "incr" : "decr");
        return [this.req(seq, `${incr ? "incr" : "decr"} ${k} ${d}\r\n`, lineEnd, (b, calm) => {
          const s = latin1(b);
          if (/^\d+\r\n$/.test(s)) return arith(k, s.slice(0, -2), calm);
          if (s === "NOT_FOUND\r\n") return arith(k, undefined, calm);
          this.#error(s, calm);
          this.wrote(k, seq, "err", apply, calm);
        })];
      }
      this.count("ma");
      return [this.req(seq, `ma ${k} v${incr ? "" : " MD"} D${d}\r\n`, metaEnd, (b, calm) => {
        const s = latin1(b);
        const m = /^VA (\d+)\r\n(\d+)\r\n$/.exec(s);
        if (m) return arith(k, m[2], calm);
        if (s === "NF\r\n") return arith(k, undefined, calm);
        this.#error(s, calm);
        this.wrote(k, seq, "err", apply, calm);
      })];
    }
    if (r < 0.5) {
      const meta = this.rnd() < 0.4;
      this.count(meta ? "md" : "delete");
      const del: Apply = (s) => s === ABSENT ? null : ABSENT;
      const k = this.rnd() < 0.2 ? ctr : key;
      return [this.req(seq, meta ? `md ${k}\r\n` : `delete ${k}\r\n`, lineEnd, (b, calm) => {
        const o = this.#line(b, [meta ? "HD" : "DELETED"], [meta ? "NF" : "NOT_FOUND"], calm);
        this.wrote(k, seq, o, del, calm, true);
        if (o !== "ok") this.models.get(k)!.poss.add(ABSENT);
        if (o === "no") this.models.get(k)!.poss = new Set([ABSENT]);
      })];
    }
    if (r < 0.54) {
      this.count("touch");
      return [this.req(seq, `touch ${key} 0\r\n`, lineEnd, (b, calm) => {
        this.touched(key, seq, this.#line(b, ["TOUCHED"], ["NOT_FOUND"], calm), calm);
      })];
    }
    if (r < 0.62) {
      const mode = this.pick(["S", "E", "R", "A", "P"] as const);
      const v = this.value(seq);
      this.count(`ms M${mode}`);
      const apply: Apply = (s) => {
        if (mode === "S") return `${flags}|${v}`;
        if (mode === "E") return s === ABSENT ? `${flags}|${v}` : null;
        if (s === ABSENT) return null;
        const [f, d] = split(s);
        return mode === "R" ? `${flags}|${v}` : mode === "A" ? `${f}|${d}${v}` : `${f}|${v}${d}`;
      };
      return [
        this.req(
          seq,
          `ms ${key} ${v.length} F${flags} M${mode}\r\n${v}\r\n`,
          lineEnd,
          (b, calm) => {
            this.wrote(key, seq, this.#line(b, ["HD"], ["NS"], calm), apply, calm);
          },
        ),
      ];
    }
    if (r < 0.8) {
      const n = 2 + Math.floor(this.rnd() * 5);
      const all = this.keys();
      const keys = [...new Set(Array.from({ length: n }, () => this.pick(all)))];
      return [this.#multi(keys, seq, this.rnd() < 0.5 ? "gets" : "get")];
    }
    this.seq--;
    return [this.#read(this.rnd() < 0.2 ? ctr : key)];
  }
}

/** Possible states, short, for reports. */
export function show(poss: Set<string>): string {
  return [...poss].map((x) => x === ABSENT ? "<miss>" : JSON.stringify(x.slice(0, 30))).join("|");
}

/** Concatenated bytes. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}
