/**
 * Binary protocol differential conformance: every script in
 * binary_differential_cases.ts goes to real memcached 1.6.18 (`-B auto`,
 * its default) and to `memrep serve`; the rendered response packets must be
 * identical (CAS values as labels). Env: `DIFF_FILTER=<regex>`, `DIFF_SHOW=1`.
 */

import { ignoreUnless, startMemcached, startMemrep } from "../helpers/process.ts";
import { runBinCases, stepDiffs } from "./binary_differential.ts";
import { BINARY_CASES } from "./binary_differential_cases.ts";

const SERVER_ARGS = ["-m", "64", "-I", "1m"];
const NAME = "serve answers binary packets byte-identically to memcached 1.6 (differential)";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn(t) {
    const filter = Deno.env.get("DIFF_FILTER");
    const cases = filter
      ? BINARY_CASES.filter((c) => new RegExp(filter).test(c.name))
      : BINARY_CASES;
    const ref = await startMemcached(SERVER_ARGS);
    const sut = await startMemrep(["serve", "-t", "1", ...SERVER_ARGS]);
    try {
      // One case at a time (each starts flushed), but concurrent ones together.
      const results = await runBinCases(ref.port, sut.port, cases, true);
      for (const c of cases) {
        await t.step(c.name, () => {
          const [expected, actual] = results.get(c.name)!;
          if (Deno.env.get("DIFF_SHOW")) console.log(c.name, "\n", expected.join("\n---\n"));
          const lines = stepDiffs(expected, actual);
          if (lines.length) throw new Error(`replies differ\n${lines.join("\n")}`);
        });
      }
    } finally {
      await sut.stop();
      await ref.stop();
    }
  },
});
