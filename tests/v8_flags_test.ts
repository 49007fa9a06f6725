/**
 * lib/v8_flags.ts is what every launcher passes: the tests' memrep (so the
 * tests run what compile.sh builds), compile.sh itself (run here with a
 * `deno` on PATH that records its compile command), `-d` from source, and
 * the `serve` task of deno.json.
 * @module
 */

import { equal, ok } from "./helpers/assert.ts";
import { REPO_ROOT, startMemrep } from "./helpers/mod.ts";
import { V8_FLAGS, v8FlagsArg } from "../lib/v8_flags.ts";
import { selfCommand } from "../lib/cli/daemon.ts";

function cmdline(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a !== "");
}

Deno.test("the flags are V8 flags, one per entry", () => {
  ok(V8_FLAGS.length > 0);
  for (const f of V8_FLAGS) ok(/^--[a-z0-9-]+(=\S+)?$/.test(f), f);
  equal(v8FlagsArg(), `--v8-flags=${V8_FLAGS.join(",")}`);
});

Deno.test({
  name: "a memrep the tests start runs with them (threads included: V8's flags are per process)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const server = await startMemrep(["serve", "-t", "2", "-U", "0"]);
    try {
      const args = cmdline(server.pid);
      const main = args.findIndex((a) => a.endsWith("/main.ts"));
      ok(main > 0, args.join(" "));
      ok(args.slice(0, main).includes(v8FlagsArg()), args.join(" "));
    } finally {
      await server.stop();
    }
  },
});

Deno.test("-d from source starts itself again with them", () => {
  const { prefix } = selfCommand(); // this test runs under `deno`: the source form
  ok(prefix.includes(v8FlagsArg()), prefix.join(" "));
  ok(prefix.indexOf(v8FlagsArg()) < prefix.findIndex((a) => a.endsWith(".ts")));
});

Deno.test("deno.json's serve task passes them", () => {
  const config = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}/deno.json`));
  const task: string = config.tasks.serve;
  ok(task.split(/\s+/).includes(v8FlagsArg()), task);
});

Deno.test({
  name: "compile.sh compiles with them",
  ignore: Deno.build.os === "windows",
  async fn() {
    // A `deno` first on PATH: `compile` only records its arguments, anything else is the real deno.
    const dir = await Deno.makeTempDir({ prefix: "memrep-compile-" });
    const log = `${dir}/compile.args`;
    try {
      await Deno.writeTextFile(
        `${dir}/deno`,
        [
          "#!/usr/bin/env bash",
          `if [ "$1" = compile ]; then printf '%s\\n' "$@" > '${log}'; exit 0; fi`,
          `exec '${Deno.execPath()}' "$@"`,
          "",
        ].join("\n"),
      );
      await Deno.chmod(`${dir}/deno`, 0o755);
      const out = await new Deno.Command("bash", {
        args: [`${REPO_ROOT}/compile.sh`, "--host"],
        env: { PATH: `${dir}:${Deno.env.get("PATH") ?? ""}` },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stderr);
      equal(out.code, 0, text);
      const args = (await Deno.readTextFile(log)).split("\n").filter((a) => a !== "");
      equal(args[0], "compile");
      ok(args.includes(v8FlagsArg()), args.join(" "));
      ok(args.indexOf(v8FlagsArg()) < args.indexOf("main.ts"), args.join(" "));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
