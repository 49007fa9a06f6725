/**
 * memcached 1.6.18's start-up flags that change no protocol but must start
 * (or refuse) as memcached does: -D (prefix delimiter, stats detail on),
 * -X (memrep: --disable-dumping, as -X is repcached's replication port),
 * -N, -k, -r, -L, the long --slab-growth-factor; replies compared with
 * memcached started with the same flags (-N with memrep alone).
 */

import { equal, fail } from "../helpers/assert.ts";
import { connect } from "../helpers/conn.ts";
import { ignoreUnless, runMemrep, startMemcached, startMemrep } from "../helpers/process.ts";
import { type Case, describeDiff, runCase } from "./differential.ts";

interface Pair {
  /** memcached's flags. */
  ref: string[];
  /** memrep serve's flags for the same. */
  sut: string[];
  /** Scripts both must answer alike. */
  cases: Case[];
  /** `stats settings` lines both must show alike. */
  settings: string[];
}

const PAIRS: Pair[] = [
  {
    ref: ["-X"],
    sut: ["--disable-dumping"],
    cases: [{
      name: "-X: cachedump and metadump refused, the rest served",
      steps: [
        "set a 0 0 1\r\nx\r\n",
        "stats cachedump 1 10\r\n",
        "lru_crawler metadump all\r\n",
        "lru_crawler metadump hash\r\n",
        "get a\r\n",
      ],
    }],
    settings: ["dump_enabled"],
  },
  {
    ref: ["-D", "|"],
    sut: ["-D", "|"],
    cases: [{
      name: "-D '|': prefixes end at '|', counted from the start",
      steps: [
        "set foo|1 0 0 1\r\nx\r\n",
        "set foo:2 0 0 1\r\nx\r\n",
        "get foo|1\r\n",
        "get bar|9 foo:2\r\n",
        "delete foo|1\r\n",
        "stats detail dump\r\n",
      ],
    }],
    settings: ["stat_key_prefix", "detail_enabled"],
  },
  {
    // -N is left out: memcached -N closes loopback connections (they have no NAPI id).
    ref: ["-k", "-r", "-L", "--slab-growth-factor=1.5"],
    sut: ["-k", "-r", "-L", "--slab-growth-factor=1.5"],
    cases: [],
    settings: ["growth_factor", "stat_key_prefix", "dump_enabled", "num_napi_ids"],
  },
];

async function settingsOf(port: number, names: string[]): Promise<string> {
  const c = await connect(port);
  try {
    const text = await c.request("stats settings\r\n", "END\r\n");
    return names.map((n) => new RegExp(`^STAT ${n} .*$`, "m").exec(text)?.[0] ?? `${n}?`)
      .join("\n");
  } finally {
    await c.close();
  }
}

const NAME = "memcached's -D, -X, -N, -k, -r, -L and long flags start and answer as memcached";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn(t) {
    for (const pair of PAIRS) {
      await t.step(pair.ref.join(" "), async () => {
        const ref = await startMemcached(pair.ref);
        const sut = await startMemrep(["serve", "-t", "1", ...pair.sut]).catch(async (e) => {
          await ref.stop();
          throw e;
        });
        try {
          for (const c of pair.cases) {
            const [expected, actual] = await Promise.all([
              runCase(ref.port, c),
              runCase(sut.port, c),
            ]);
            const same = expected.normalised.join("\n") === actual.normalised.join("\n");
            if (!same) fail(describeDiff(c, expected, actual, "memcached", "memrep"));
          }
          equal(
            await settingsOf(sut.port, pair.settings),
            await settingsOf(ref.port, pair.settings),
          );
        } finally {
          await sut.stop();
          await ref.stop();
        }
      });
    }
  },
});

Deno.test("serve -N 3 starts and shows num_napi_ids 3", async () => {
  const sut = await startMemrep(["serve", "-t", "1", "-N", "3"]);
  try {
    equal(await settingsOf(sut.port, ["num_napi_ids"]), "STAT num_napi_ids 3");
  } finally {
    await sut.stop();
  }
});

Deno.test({
  name: "-N 0 and an empty -D are refused with memcached's messages (exit 2)",
  ignore: ignoreUnless("-N 0 / -D ''", ["memcached"]),
  async fn() {
    for (
      const [args, message] of [
        [["-N", "0"], "Maximum number of NAPI IDs must be greater than 0"],
        [["-D", ""], "No delimiter specified"],
      ] as const
    ) {
      const ref = new Deno.Command("memcached", {
        args: ["-u", "root", "-p", "0", "-U", "0", ...args],
        stdout: "null",
        stderr: "piped",
      }).outputSync();
      equal(new TextDecoder().decode(ref.stderr).trim(), message);
      const r = await runMemrep(["serve", ...args]);
      equal(r.stderr.trim(), message);
      equal(r.code, 2);
    }
  },
});
