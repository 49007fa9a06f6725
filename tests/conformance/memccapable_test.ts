/**
 * libmemcached's protocol checker, `memccapable -a` (ASCII tests) and `-b`
 * (binary tests), run against `memrep serve` and against `memrep proxy` in
 * front of a memcached primary and backup. Each memccapable test becomes a
 * step; all must pass.
 */

import { fail, ok } from "../helpers/assert.ts";
import {
  binaryPath,
  ignoreUnless,
  type ProcessHandle,
  startMemcached,
  startMemrep,
} from "../helpers/process.ts";

/** The server under test and what it stands on. */
async function target(kind: string): Promise<{ port: number; stop: () => Promise<unknown> }> {
  if (kind === "serve") {
    const server = await startMemrep(["serve", "-m", "64", "-U", "0"]);
    return { port: server.port, stop: () => server.stop() };
  }
  const behind: ProcessHandle[] = [await startMemcached(), await startMemcached()];
  const proxy = await startMemrep([
    "proxy",
    "-s",
    `127.0.0.1:${behind[0].port}`,
    "-b",
    `127.0.0.1:${behind[1].port}`,
  ]);
  return {
    port: proxy.port,
    stop: () => Promise.all([proxy, ...behind].map((h) => h.stop())),
  };
}

for (const kind of ["serve", "proxy"]) {
  for (const [flag, protocol] of [["-a", "ascii"], ["-b", "binary"]]) {
    const NAME = `${kind} passes memccapable's ${protocol} protocol tests`;

    Deno.test({
      name: NAME,
      ignore: ignoreUnless(NAME, kind === "serve" ? ["memccapable"] : ["memccapable", "memcached"]),
      async fn(t) {
        const server = await target(kind);
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
}
