/**
 * libmemcached's protocol checker, `memccapable -a` (ASCII tests) and `-b`
 * (binary tests), run against `memrep serve`. Each memccapable test becomes
 * a step; all must pass.
 */

import { fail, ok } from "../helpers/assert.ts";
import { binaryPath, ignoreUnless, startMemrep } from "../helpers/process.ts";

for (const [flag, protocol] of [["-a", "ascii"], ["-b", "binary"]]) {
  const NAME = `serve passes memccapable's ${protocol} protocol tests`;

  Deno.test({
    name: NAME,
    ignore: ignoreUnless(NAME, ["memccapable"]),
    async fn(t) {
      const server = await startMemrep(["serve", "-m", "64", "-U", "0"]);
      let out;
      try {
        const proc = new Deno.Command(binaryPath("memccapable")!, {
          args: [flag, "-t", "5", "-h", "127.0.0.1", "-p", String(server.port)],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const killer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
        try {
          out = await proc.output();
        } finally {
          clearTimeout(killer);
        }
      } finally {
        await server.stop();
      }
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      const results = [
        ...text.matchAll(new RegExp(`^(${protocol} .+?)\\s+\\[(\\w+)\\]\\s*$`, "gm")),
      ];
      ok(results.length >= 20, `memccapable ran too few tests:\n${text}`);
      for (const [, test, verdict] of results) {
        await t.step(test.trim(), () => {
          if (verdict !== "pass") fail(`memccapable: ${test.trim()} [${verdict}]\n${text}`);
        });
      }
      if (out.code !== 0 || !/All tests passed/.test(text)) {
        fail(`memccapable exited ${out.code}:\n${text}`);
      }
    },
  });
}
