/**
 * Behaviour that depends on how the server was started, checked against
 * memcached 1.6.18 started with the same flags: text/meta scripts
 * (differential.ts) and binary packet scripts (binary_differential.ts).
 * `-C` (no CAS): every CAS a client sees is 0, `cas` and meta `C` stores
 * answer EXISTS, md/ma/binary delete and incr with a CAS other than 0 answer
 * EXISTS, and a binary set that carries a CAS is a plain set; a flush_all
 * also drops what is stored later in its own second.
 * The cases use keys of their own and nothing flushes between them: under
 * -C a flush would take the next case's first write with it when both fall
 * in one second. Env: `DIFF_SHOW=1` prints the transcripts.
 */

import { ignoreUnless, startMemcached, startMemrep } from "../helpers/process.ts";
import { arithExtras, OP, packet, type PacketSpec, setExtras } from "../helpers/binary.ts";
import { type Case, describeDiff, runCase } from "./differential.ts";
import { type BinCase, runBinCase, stepDiffs } from "./binary_differential.ts";
import { connect } from "../helpers/conn.ts";

/** One group: the flags both servers start with and the scripts run on them. */
interface Group {
  flags: string[];
  text: Case[];
  binary: BinCase[];
}

let opaque = 0x2000;
function p(spec: PacketSpec): Uint8Array {
  return packet({ opaque: opaque++, ...spec });
}
function bset(key: string, value: string, op: number = OP.SET, cas = 0n): Uint8Array {
  return p({ op, key, value, extras: setExtras(0, 0), cas });
}

const NO_CAS: Group = {
  flags: ["-C"],
  text: [
    {
      name: "-C: gets shows CAS 0; cas with 0 or any other value is EXISTS, NOT_FOUND when missing",
      steps: [
        "set a 0 0 1\r\n1\r\n",
        "gets a\r\n",
        "cas a 0 0 1 0\r\n2\r\n",
        "cas a 0 0 1 12345\r\n3\r\n",
        "cas nope 0 0 1 1\r\n4\r\n",
        "gets a nope\r\n",
        "incr a 5\r\n",
        "gets a\r\n",
        "append a 0 0 1\r\nz\r\n",
        "gats 100 a\r\n",
      ],
    },
    {
      name: "-C: meta c returns 0, ms C is EX, md and ma compare their C with 0",
      steps: [
        "ms m 2 c\r\nhi\r\n",
        "mg m c v s\r\n",
        "ms m 2 C0 c\r\nho\r\n",
        "ms m 2 C77\r\nho\r\n",
        "ms none 2 C77\r\nho\r\n",
        "ma m c\r\n",
        "ms n 1\r\n5\r\n",
        "ma n C9 v\r\n",
        "ma n C0 v c\r\n",
        "md m C3\r\n",
        "md m C0 q\r\n",
        "mg m v\r\n",
      ],
    },
    {
      name: "-C: failed cas counts as cas_badval per slab class",
      steps: [
        "set s 0 0 1\r\n1\r\n",
        "cas s 0 0 1 5\r\n2\r\n",
        "cas s 0 0 1 0\r\n2\r\n",
      ],
    },
  ],
  binary: [
    {
      name: "-C: binary responses carry CAS 0, a set with a CAS is a plain set",
      steps: [
        bset("b", "v1"),
        p({ op: OP.GET, key: "b" }),
        bset("b", "v2", OP.SET, 999n),
        bset("b", "v3", OP.REPLACE, 5n),
        bset("nob", "v", OP.SET, 7n),
        p({ op: OP.GETK, key: "b" }),
        bset("b", "+", OP.APPEND, 3n),
        p({ op: OP.GET, key: "b" }),
      ],
    },
    {
      name: "-C: binary delete and incr with a CAS other than 0 are EEXISTS",
      steps: [
        bset("d", "1"),
        p({ op: OP.INCR, key: "d", extras: arithExtras(1n, 0n, 0), cas: 4n }),
        p({ op: OP.INCR, key: "d", extras: arithExtras(1n, 0n, 0) }),
        p({ op: OP.DELETE, key: "d", cas: 4n }),
        p({ op: OP.DELETE, key: "d" }),
        p({ op: OP.DELETE, key: "d" }),
      ],
    },
  ],
};

/** Default flags: what -C changes, as memcached answers it with CAS on. */
const WITH_CAS: Group = {
  flags: [],
  text: [{
    name: "cas with a CAS of 0 is EXISTS and counts as cas_badval in its slab class",
    steps: ["set z 0 0 1\r\n1\r\n", "cas z 0 0 1 0\r\n2\r\n", "gets z\r\n"],
  }],
  binary: [],
};

/** `stats slabs` lines naming cas counters (class ids differ between the two: summed). */
async function casCounters(port: number): Promise<string> {
  const c = await connect(port);
  try {
    const text = await c.request("stats slabs\r\n", "END\r\n");
    const sums = new Map<string, number>();
    for (const m of text.matchAll(/^STAT \d+:(cas_hits|cas_badval) (\d+)\r$/gm)) {
      sums.set(m[1], (sums.get(m[1]) ?? 0) + Number(m[2]));
    }
    return [...sums].map(([k, v]) => `${k}=${v}`).sort().join(" ");
  } finally {
    await c.close();
  }
}

/**
 * memcached -C: flush_all, set, get in one second (by the server's `time`)
 * finds nothing. Tried until one round falls within a second (the first,
 * nearly always); returns what that round's get answered.
 */
async function flushSameSecond(port: number): Promise<string> {
  const c = await connect(port);
  try {
    for (let round = 0; round < 20; round++) {
      const t0 = (await c.stats()).get("time");
      await c.request("flush_all\r\n");
      await c.request("set fs 0 0 3\r\nnew\r\n");
      const got = await c.request("get fs\r\n", "END\r\n");
      if ((await c.stats()).get("time") === t0) return got;
    }
    throw new Error("no round of flush_all, set, get fell within one second");
  } finally {
    await c.close();
  }
}

const NAME = "replies and counters with and without -C, as memcached 1.6.18's";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn(t) {
    for (const g of [WITH_CAS, NO_CAS]) {
      const ref = await startMemcached(["-U", "0", ...g.flags]);
      let sut;
      try {
        sut = await startMemrep(["serve", "-t", "1", ...g.flags]);
        for (const c of g.text) {
          await t.step(c.name, async () => {
            const before = await Promise.all([casCounters(ref.port), casCounters(sut!.port)]);
            const [expected, actual] = await Promise.all([
              runCase(ref.port, c),
              runCase(sut!.port, c),
            ]);
            const diff = describeDiff(c, expected, actual, "memcached", "memrep");
            if (Deno.env.get("DIFF_SHOW")) console.log(diff);
            const same = expected.normalised.length === actual.normalised.length &&
              expected.normalised.every((e, i) => e === actual.normalised[i]);
            if (!same) throw new Error(`replies differ\n${diff}`);
            const after = await Promise.all([casCounters(ref.port), casCounters(sut!.port)]);
            const delta = (b: string, a: string) => `${b} -> ${a}`;
            if (delta(before[0], after[0]) !== delta(before[1], after[1])) {
              throw new Error(
                `stats slabs cas counters: memcached ${delta(before[0], after[0])}, ` +
                  `memrep ${delta(before[1], after[1])}`,
              );
            }
          });
        }
        for (const c of g.binary) {
          await t.step(c.name, async () => {
            const [expected, actual] = await Promise.all([
              runBinCase(ref.port, c),
              runBinCase(sut!.port, c),
            ]);
            if (Deno.env.get("DIFF_SHOW")) console.log(c.name, "\n", expected.join("\n---\n"));
            const lines = stepDiffs(expected, actual);
            if (lines.length) throw new Error(`replies differ\n${lines.join("\n")}`);
          });
        }
        if (g.flags.includes("-C")) {
          await t.step("-C: a set in the same second as flush_all is flushed too", async () => {
            const [expected, actual] = await Promise.all([
              flushSameSecond(ref.port),
              flushSameSecond(sut!.port),
            ]);
            if (expected !== "END\r\n" || actual !== expected) {
              throw new Error(
                `memcached ${JSON.stringify(expected)}, memrep ${JSON.stringify(actual)}`,
              );
            }
          });
        }
      } finally {
        await Promise.all([ref.stop(), sut?.stop()]);
      }
    }
  },
});
