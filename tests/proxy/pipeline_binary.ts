/**
 * The binary requests of tests/proxy/pipeline_model_test.ts's clients
 * (./pipeline_clients.ts): storage, cas, incr/decr, delete, touch, get/getk
 * and getkq groups ended by a noop, each reply checked by the model.
 * @module
 */

import {
  arithExtras,
  decodeResponse,
  OP,
  packet,
  responseEnd,
  setExtras,
  u32Extras,
} from "../helpers/binary.ts";
import { ABSENT, split } from "./pipeline_model.ts";
import {
  type Apply,
  concat,
  latin1,
  type ModelClient,
  type Req,
  STRICT,
} from "./pipeline_clients.ts";

/** Binary: one loud request, or a getkq group ended by a noop. */
export function binaryOp(c: ModelClient): Req[] {
  const seq = ++c.seq;
  const r = c.rnd();
  const key = c.pick(c.plain), ctr = c.pick(c.ctrs);
  const flags = Math.floor(c.rnd() * 4);
  const one = (
    bytes: Uint8Array,
    op: number,
    handle: (p: ReturnType<typeof decodeResponse>, calm: boolean) => void,
  ) =>
    c.req(seq, bytes, (b) => responseEnd(b), (b, calm) => {
      const p = decodeResponse(b);
      if (p.magic !== 0x81 || p.op !== op || p.opaque !== seq) {
        throw new Error(`packet op ${p.op} opaque ${p.opaque}, want ${op} ${seq}`);
      }
      if (p.status >= 0x80) {
        if (calm) c.tally.calmErrors++;
        else c.tally.faultErrors++;
        return handle(p, calm);
      }
      handle(p, calm);
    });
  const status = (p: { status: number }, ok: number[], no: number[]): "ok" | "no" | "err" => {
    if (ok.includes(p.status)) return "ok";
    if (no.includes(p.status)) return "no";
    if (p.status >= 0x80) return "err";
    throw new Error(`status 0x${p.status.toString(16)}`);
  };
  const dec = (b: Uint8Array) => latin1(b);
  if (r < 0.3) {
    const w = c.pick([OP.SET, OP.SET, OP.ADD, OP.REPLACE, OP.APPEND, OP.PREPEND]);
    const m = c.models.get(key)!,
      tok = w === OP.SET && c.rnd() < 0.3 ? m.token : undefined;
    const v = c.value(seq);
    const name = tok ? "bin cas" : `bin ${Object.entries(OP).find(([, o]) => o === w)![0]}`;
    c.count(name);
    const arith = w === OP.APPEND || w === OP.PREPEND;
    const bytes = packet({
      op: w,
      key,
      value: v,
      extras: arith ? undefined : setExtras(flags, 0),
      opaque: seq,
      cas: tok?.cas,
    });
    const apply: Apply = (s) => {
      if (w === OP.SET) return tok && s === ABSENT ? null : `${flags}|${v}`;
      if (w === OP.ADD) return s === ABSENT ? `${flags}|${v}` : null;
      if (s === ABSENT) return null;
      const [f, d] = split(s);
      return w === OP.REPLACE
        ? `${flags}|${v}`
        : w === OP.APPEND
        ? `${f}|${d}${v}`
        : `${f}|${v}${d}`;
    };
    return [one(bytes, w, (p, calm) => {
      const o = status(p, [0], [1, 2, 5]);
      if (tok) {
        if (o === "ok" && tok.state === "stale") {
          c.tally.bad("cas", `${key} #${seq}: binary cas with an old token stored`);
        }
        const fresh = o === "no" && tok.state === "fresh" && calm && !m.poss.has(ABSENT);
        // EXISTS (0x2): README Limits, counted apart but under MEMREP_MODEL_STRICT.
        if (fresh && !STRICT && p.status === 2) c.tally.casKnownExists++;
        else if (fresh) {
          c.tally.bad(
            "cas",
            `${key} #${seq}: binary cas with the token just read: 0x${p.status.toString(16)}`,
          );
        }
        if (o === "no") {
          if (p.status === 1) c.wrote(key, seq, "no", (s) => s === ABSENT ? null : s, calm);
          else c.wrote(key, seq, "no", (s) => s === ABSENT ? "" : null, calm);
          return;
        }
      }
      c.wrote(key, seq, o, apply, calm);
    })];
  }
  if (r < 0.42) {
    const incr = c.rnd() < 0.6, d = BigInt(Math.floor(c.rnd() * 50));
    c.count(incr ? "bin incr" : "bin decr");
    const apply = (s: string) => {
      if (s === ABSENT) return null;
      const [f, n] = split(s);
      const x = BigInt(n.trim());
      return `${f}|${incr ? x + d : x > d ? x - d : 0n}`;
    };
    if (c.rnd() < 0.3) {
      const v = String(Math.floor(c.rnd() * 1000));
      c.count("bin set ctr");
      return [
        one(
          packet({ op: OP.SET, key: ctr, value: v, extras: setExtras(flags, 0), opaque: seq }),
          OP.SET,
          (p, calm) => {
            c.wrote(ctr, seq, status(p, [0], []), () => `${flags}|${v}`, calm);
          },
        ),
      ];
    }
    const op = incr ? OP.INCR : OP.DECR;
    return [
      one(
        packet({ op, key: ctr, extras: arithExtras(d, 0n, 0xffffffff), opaque: seq }),
        op,
        (p, calm) => {
          const o = status(p, [0], [1]);
          if (o === "ok") {
            const num = String(new DataView(p.value.buffer, p.value.byteOffset).getBigUint64(0));
            const m = c.models.get(ctr)!;
            const fits = new Set(
              [...m.poss].map(apply).filter((x) => x !== null && split(x)[1] === num),
            );
            c.wrote(ctr, seq, "ok", (s) => {
              const x = apply(s);
              return x !== null && fits.has(x) ? x : null;
            }, calm);
          } else if (o === "no") {
            c.wrote(ctr, seq, "no", (s) => s === ABSENT ? null : "", calm);
          } else c.wrote(ctr, seq, "err", apply, calm);
        },
      ),
    ];
  }
  if (r < 0.5) {
    const k = c.rnd() < 0.2 ? ctr : key;
    c.count("bin delete");
    return [one(packet({ op: OP.DELETE, key: k, opaque: seq }), OP.DELETE, (p, calm) => {
      const o = status(p, [0], [1]);
      c.wrote(k, seq, o, (s) => s === ABSENT ? null : ABSENT, calm, true);
      if (o === "err") c.models.get(k)!.poss.add(ABSENT);
      if (o === "no") c.models.get(k)!.poss = new Set([ABSENT]);
    })];
  }
  if (r < 0.55) {
    c.count("bin touch");
    return [
      one(
        packet({ op: OP.TOUCH, key, extras: u32Extras(0), opaque: seq }),
        OP.TOUCH,
        (p, calm) => {
          c.touched(key, seq, status(p, [0], [1]), calm);
        },
      ),
    ];
  }
  const hit = (k: string, p: ReturnType<typeof decodeResponse>, calm: boolean) => {
    const f = new DataView(p.extras.buffer, p.extras.byteOffset).getUint32(0);
    c.check(k, seq, `${f}|${dec(p.value)}`, calm);
    c.token(k, p.cas, calm);
  };
  if (r < 0.75) {
    // getkq of several keys, then a noop: hits only, in order.
    const all = c.keys();
    const keys = [
      ...new Set(Array.from({ length: 2 + Math.floor(c.rnd() * 5) }, () => c.pick(all))),
    ];
    c.count("bin getkq multi");
    const noop = 0x40000000 + seq;
    const bytes = concat([
      ...keys.map((k) => packet({ op: OP.GETKQ, key: k, opaque: seq })),
      packet({ op: OP.NOOP, opaque: noop }),
    ]);
    const req = c.req(seq, bytes, () => -1, (b, calm) => {
      let off = 0, i = 0, blind = false;
      for (;;) {
        const e = responseEnd(b, off);
        const p = decodeResponse(b.slice(off, e));
        off = e;
        if (p.opaque === noop) {
          if (p.op !== OP.NOOP || off !== b.length) throw new Error("bad noop");
          break;
        }
        if (p.op !== OP.GETKQ || p.opaque !== seq) {
          throw new Error(`packet op ${p.op} in a getkq group`);
        }
        const k = dec(p.key);
        if (p.status >= 0x80) {
          // An error packet names no key: the misses of this group are not checked from here.
          if (calm) c.tally.calmErrors++;
          else c.tally.faultErrors++;
          blind = true;
          continue;
        }
        if (p.status !== 0) throw new Error(`getkq status ${p.status}`);
        while (i < keys.length && keys[i] !== k) {
          if (blind) i++;
          else c.check(keys[i++], seq, ABSENT, calm);
        }
        if (i === keys.length) throw new Error(`getkq ${k} out of order`);
        hit(keys[i++], p, calm);
      }
      while (i < keys.length && !blind) c.check(keys[i++], seq, ABSENT, calm);
    });
    req.untilOpaque = noop;
    return [req];
  }
  const k = c.rnd() < 0.2 ? ctr : key;
  const op = c.rnd() < 0.5 ? OP.GET : OP.GETK;
  c.count(op === OP.GET ? "bin get" : "bin getk");
  return [one(packet({ op, key: k, opaque: seq }), op, (p, calm) => {
    const o = status(p, [0], [1]);
    if (o === "no") c.check(k, seq, ABSENT, calm);
    else if (o === "ok") {
      if (op === OP.GETK && dec(p.key) !== k) throw new Error("getk key");
      hit(k, p, calm);
    }
  })];
}
