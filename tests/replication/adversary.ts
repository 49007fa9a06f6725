/**
 * A model of acknowledged writes for adversarial replication runs. Every
 * write is a meta command returning its version (`c`), so the model knows
 * which write is newest per the README's merge rules (newest version wins,
 * deletes tombstone, flush_all leaves an epoch). A delete or flush_all has
 * no version in its reply: it lies strictly between the versions of the
 * replies before and after it on the same connection (a node's clock only
 * grows, and one connection's requests run in order), and each is followed
 * by a probe write to bound it closely.
 *
 * At the end every node's contents are checked against the model:
 * - stale: a key holds an older version than a write acknowledged for it;
 * - resurrected: a key holds a version older than an acknowledged delete
 *   (DELETED) or flush_all of it;
 * - lost: a key is absent though its newest acknowledged write is newer
 *   than every delete or flush_all that may have removed it;
 * - wrong: a key holds the version of a known write with other bytes, or a
 *   version no write of the model returned while every write of the key
 *   had a known outcome.
 * @module
 */

import type { Client } from "../../lib/client/mod.ts";
import { Op, type OpCode } from "../../lib/protocol/mod.ts";
import { client, contents, type Node } from "./pair.ts";

const enc = new TextEncoder(), dec = new TextDecoder();

/** A write whose reply gave its version; `value` undefined: bytes not known (append, incr). */
interface Write {
  version: number;
  value: string | undefined;
}

/** A delete or flush_all between versions lo and hi (hi Infinity: no later reply). */
interface Removal {
  lo: number;
  hi: number;
  /** A delete answered DELETED (or a flush_all OK): it certainly removed what it found. */
  sure: boolean;
}

/** Acknowledged writes, deletes and flushes of a run. */
export class Model {
  /** Keys of the model (probe keys excluded). */
  readonly keys = new Set<string>();
  #writes = new Map<string, Write[]>();
  /** Writes of unknown outcome per key (no reply, or SERVER_ERROR: stored here, unconfirmed). */
  #unknown = new Map<string, number>();
  #removals = new Map<string, Removal[]>();
  #flushes: Removal[] = [];
  /** Counts for the report. */
  readonly counts = { writes: 0, deletes: 0, flushes: 0, unknown: 0, refused: 0 };

  /** A write acknowledged with `version`. */
  wrote(key: string, version: number, value: string | undefined): void {
    this.keys.add(key);
    let list = this.#writes.get(key);
    if (list === undefined) this.#writes.set(key, list = []);
    list.push({ version, value });
    this.counts.writes++;
  }

  /** A write or delete whose outcome is not known (its bytes may be stored somewhere). */
  unknownWrite(key: string | null): void {
    this.counts.unknown++;
    if (key === null) return;
    this.keys.add(key);
    this.#unknown.set(key, (this.#unknown.get(key) ?? 0) + 1);
  }

  /** A delete (sure: DELETED) between versions lo and hi; `hi` may be resolved later. */
  removed(key: string | null, r: Removal): void {
    if (key === null) {
      this.#flushes.push(r);
      this.counts.flushes++;
      return;
    }
    this.keys.add(key);
    let list = this.#removals.get(key);
    if (list === undefined) this.#removals.set(key, list = []);
    list.push(r);
    this.counts.deletes++;
  }

  /** What `node` holds that breaks the merge rules, one line per key. */
  async violations(node: Node, name: string): Promise<string[]> {
    const held = await contents(node);
    const out: string[] = [];
    for (const key of this.keys) {
      const raw = held.get(key);
      const writes = this.#writes.get(key) ?? [];
      const removals = [...(this.#removals.get(key) ?? []), ...this.#flushes];
      const newest = writes.reduce((m, w) => Math.max(m, w.version), 0);
      if (raw === undefined) {
        if (newest === 0) continue;
        if (removals.some((r) => r.hi > newest)) continue;
        out.push(`${name} lost ${key}: absent, acknowledged v${newest}, no removal after it`);
        continue;
      }
      const [, casText] = raw.split(":", 2);
      const cas = Number(casText);
      const value = raw.slice(raw.indexOf(":", raw.indexOf(":", raw.indexOf(":") + 1) + 1) + 1);
      if (cas < newest) {
        out.push(`${name} stale ${key}: holds v${cas}, acknowledged v${newest}`);
        continue;
      }
      const killer = removals.find((r) => r.sure && r.lo >= cas);
      if (killer !== undefined) {
        out.push(`${name} resurrected ${key}: holds v${cas}, removed after v${killer.lo}`);
        continue;
      }
      const same = writes.find((w) => w.version === cas);
      if (same !== undefined && same.value !== undefined && same.value !== value) {
        out.push(`${name} wrong ${key}: v${cas} is ${value.slice(0, 30)}, written ${same.value}`);
      } else if (same === undefined && (this.#unknown.get(key) ?? 0) === 0) {
        out.push(`${name} wrong ${key}: v${cas} (${value.slice(0, 30)}) was never written`);
      }
    }
    return out;
  }
}

/** One request of a writer and how its reply enters the model. */
interface Step {
  bytes: Uint8Array;
  op: OpCode;
  /** The model key (null: a flush_all, or a probe when `probe`). */
  key: string | null;
  kind: "set" | "update" | "delete" | "flush" | "probe";
  value?: string;
  /** A compare-and-swap: a write only when answered HD. */
  cas?: boolean;
}

/** Options of {@linkcode runWriter}. */
export interface WriterMix {
  /** Keys `m0`.. (the smaller, the more conflicts). */
  keys: number;
  /** One in this many steps is a flush_all (0: none). */
  flushEvery?: number;
  /** Requests pipelined per batch. */
  batch?: number;
  /** Also compare-and-swap sets (`ms C<cas>`) with the CAS a previous `mg` returned. */
  cas?: boolean;
}

function step(
  rnd: () => number,
  tag: string,
  i: number,
  mix: WriterMix,
  seenCas: Map<string, string>,
): Step[] {
  const key = `m${Math.floor(rnd() * mix.keys)}`;
  const r = rnd();
  const req = (s: string) => enc.encode(s);
  if (mix.cas && rnd() < 0.1) {
    const cas = seenCas.get(key);
    if (cas !== undefined) {
      const v = `${tag}.${i}cas`;
      return [{
        bytes: req(`ms ${key} ${v.length} C${cas} c\r\n${v}\r\n`),
        op: Op.MS,
        key,
        kind: "set",
        value: v,
        cas: true,
      }];
    }
  }
  if (mix.flushEvery && Math.floor(rnd() * mix.flushEvery) === 0) {
    return [
      { bytes: req("flush_all\r\n"), op: Op.FLUSH_ALL, key: null, kind: "flush" },
      probe(tag),
    ];
  }
  if (r < 0.45) {
    const v = `${tag}.${i}${"x".repeat(Math.floor(rnd() * 20))}`;
    return [{
      bytes: req(`ms ${key} ${v.length} c\r\n${v}\r\n`),
      op: Op.MS,
      key,
      kind: "set",
      value: v,
    }];
  }
  if (r < 0.6) {
    const v = `+${tag}.${i}`;
    return [{
      bytes: req(`ms ${key} ${v.length} MA c\r\n${v}\r\n`),
      op: Op.MS,
      key,
      kind: "update",
    }];
  }
  if (r < 0.72) {
    const ctr = `c${Math.floor(rnd() * 5)}`;
    const mode = rnd() < 0.8 ? "" : " MD";
    return [{ bytes: req(`ma ${ctr} N0 J100 c${mode}\r\n`), op: Op.MA, key: ctr, kind: "update" }];
  }
  if (r < 0.92) {
    return [
      { bytes: req(`md ${key}\r\n`), op: Op.MD, key, kind: "delete" },
      probe(tag),
    ];
  }
  return [{ bytes: req(`mg ${key} v c\r\n`), op: Op.MG, key, kind: "probe" }];
}

function probe(tag: string): Step {
  const b = enc.encode(`ms _probe.${tag} 1 c\r\np\r\n`);
  return { bytes: b, op: Op.MS, key: null, kind: "probe" };
}

/**
 * Seeded writes of every kind on `node` through one connection until `stop`
 * (or the node dies), each entered in `model` with its version bounds.
 */
export async function runWriter(
  node: Node,
  model: Model,
  rnd: () => number,
  tag: string,
  mix: WriterMix,
  stop: () => boolean,
): Promise<void> {
  let c: Client;
  try {
    c = await client(node);
  } catch {
    return; // the node is down (stopped or killed by the scenario)
  }
  let last = 0; // newest version this connection saw
  const seenCas = new Map<string, string>(); // key -> CAS an mg returned (for mix.cas)
  const open: Removal[] = []; // removals waiting for a later version
  const seen = (v: number) => {
    last = Math.max(last, v);
    for (const r of open.splice(0)) r.hi = v;
  };
  try {
    for (let i = 0; !stop(); i++) {
      const steps: Step[] = [];
      const n = mix.batch ?? 4;
      for (let k = 0; k < n; k++) steps.push(...step(rnd, tag, i * n + k, mix, seenCas));
      const replies = steps.map((s) => c.request(s.bytes, s.op).catch(() => null));
      for (let k = 0; k < steps.length; k++) {
        const s = steps[k];
        const reply = await replies[k];
        if (reply === null) {
          // No reply (the node died): the write may be stored anywhere, with any version.
          for (const rest of steps.slice(k)) {
            if (rest.kind !== "probe") model.unknownWrite(rest.key);
            if (rest.kind === "delete" || rest.kind === "flush") {
              model.removed(rest.key, { lo: last, hi: Infinity, sure: false });
            }
          }
          return;
        }
        const text = dec.decode(reply.bytes);
        if (reply.isError) {
          // SERVER_ERROR replication peer unavailable: stored here, not confirmed.
          model.counts.refused++;
          if (s.kind === "delete" || s.kind === "flush") {
            const r = { lo: last, hi: Infinity, sure: false };
            model.removed(s.key, r);
            open.push(r);
          }
          if (s.kind !== "probe") model.unknownWrite(s.key);
          continue;
        }
        const version = reply.cas === undefined ? 0 : Number(reply.cas);
        if (s.kind === "delete" || s.kind === "flush") {
          const r = { lo: last, hi: Infinity, sure: s.kind === "flush" || text.startsWith("HD") };
          model.removed(s.key, r);
          open.push(r);
        } else if (s.kind === "probe") {
          if (s.op === Op.MS && version > 0) seen(version);
          if (s.op === Op.MG && s.key !== null && reply.cas !== undefined) {
            seenCas.set(s.key, String(reply.cas));
          }
        } else if (s.cas && !text.startsWith("HD")) {
          // A compare-and-swap that lost (EX, NF): no write.
        } else if (version > 0) {
          model.wrote(s.key!, version, s.kind === "set" ? s.value : undefined);
          seen(version);
        }
      }
    }
  } finally {
    c.close();
  }
}
