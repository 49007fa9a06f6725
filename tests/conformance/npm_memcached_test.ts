/**
 * The npm `memcached` client (574k downloads a month) parses `version` with
 * a regex anchored at the end: a suffix such as `1.6.18-memrep` made its
 * Node process die. It must read memrep's version as memcached's.
 */

import { deepEqual, equal } from "../helpers/assert.ts";
import { REPO_ROOT, startMemrep } from "../helpers/process.ts";

Deno.test("serve's version reply is parsed by the npm memcached client, which then sets and gets", async () => {
  const server = await startMemrep(["serve", "-U", "0"]);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unsafe-proto", // the client assigns Object.prototype.__proto__
        `${REPO_ROOT}/tests/conformance/npm_memcached_client.ts`,
        String(server.port),
      ],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    equal(out.code, 0, `client process failed:\n${stderr}`);
    const result = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    deepEqual(result, { version: "1.6.18", major: "1", value: "hello" });
  } finally {
    await server.stop();
  }
});
