/**
 * -d: run the same command again in the background and return once it is
 * listening, like memcached -d / magent -d / nutcracker -d.
 * @module
 */

import { v8FlagsArg } from "../v8_flags.ts";

/** Set in the background process's environment: its own -d is already done. */
const CHILD_ENV = "MEMREP_DAEMONIZED";

/** The command line that starts this program again (compiled or `deno run`). */
export function selfCommand(): { cmd: string; prefix: string[] } {
  const exec = Deno.execPath();
  const base = exec.split(/[\\/]/).pop() ?? "";
  if (base === "deno" || base === "deno.exe") {
    const main = new URL(Deno.mainModule);
    // memrep's own deno.json, also when the main module is a launcher elsewhere that imports memrep.
    const config = new URL("../../deno.json", import.meta.url);
    return {
      cmd: exec,
      prefix: ["run", "-q", "-P=memrep", v8FlagsArg(), "--config", config.pathname, main.pathname],
    };
  }
  return { cmd: exec, prefix: [] };
}

let daemonized: boolean | undefined;

/**
 * True in the process that -d started: it serves, its -d is done. Read once
 * (the variable is then removed, so that nothing it starts inherits it).
 */
export function isDaemonized(): boolean {
  daemonized ??= Deno.env.get(CHILD_ENV) === "1";
  Deno.env.delete(CHILD_ENV);
  return daemonized;
}

/**
 * Start this program again detached with the same arguments (`Deno.args`,
 * -d included, as a fork keeps them: `pkill -f`/`pgrep -f` on the command
 * line find the background process), wait until hostname:port (or the unix
 * socket `unixPath`) accepts connections, at most `waitMs`, and return the
 * exit code for the foreground process. Like memcached -d, a `verbose` daemon keeps logging
 * to this terminal's stderr (the seed's `-v -d` shows repcached's lines);
 * otherwise it is cut off from it.
 */
export async function daemonize(
  hostname: string,
  port: number,
  verbose = false,
  wait: { unixPath?: string; waitMs?: number } = {},
): Promise<number> {
  const { cmd, prefix } = selfCommand();
  const child = new Deno.Command(cmd, {
    args: [...prefix, ...Deno.args],
    env: { [CHILD_ENV]: "1" },
    stdin: "null",
    stdout: "null",
    stderr: verbose ? "inherit" : "null",
    detached: true,
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  const target = hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname;
  const deadline = Date.now() + (wait.waitMs ?? 5000);
  while (Date.now() < deadline && !exited) {
    try {
      const conn = wait.unixPath
        ? await Deno.connect({ transport: "unix", path: wait.unixPath })
        : await Deno.connect({ hostname: target, port });
      conn.close();
      child.unref();
      return 0;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  console.error(`memrep: background process ${exited ? "exited" : "did not start listening"}`);
  return 1;
}
