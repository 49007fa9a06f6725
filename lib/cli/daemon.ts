/**
 * -d: run the same command again in the background and return once it is
 * listening, like memcached -d / magent -d.
 * @module
 */

import type { FlagSpec } from "./flags.ts";
import { v8FlagsArg } from "../v8_flags.ts";

/** The command line that starts this program again (compiled or `deno run`). */
export function selfCommand(): { cmd: string; prefix: string[] } {
  const exec = Deno.execPath();
  const base = exec.split(/[\\/]/).pop() ?? "";
  if (base === "deno" || base === "deno.exe") {
    const main = new URL(Deno.mainModule);
    const config = new URL("./deno.json", main);
    return {
      cmd: exec,
      prefix: ["run", "-q", "-P=memrep", v8FlagsArg(), "--config", config.pathname, main.pathname],
    };
  }
  return { cmd: exec, prefix: [] };
}

/**
 * Start `args` (without the daemon flag) detached, wait until
 * hostname:port (or the unix socket `unixPath`) accepts connections, at
 * most `waitMs`, and return the exit code for the foreground process. Like memcached -d, a `verbose` daemon keeps logging
 * to this terminal's stderr (the seed's `-v -d` shows repcached's lines);
 * otherwise it is cut off from it.
 */
export async function daemonize(
  args: string[],
  hostname: string,
  port: number,
  verbose = false,
  wait: { unixPath?: string; waitMs?: number } = {},
): Promise<number> {
  const { cmd, prefix } = selfCommand();
  const child = new Deno.Command(cmd, {
    args: [...prefix, ...args],
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

/**
 * Remove the daemon flag from an argument list: `-d`, `--daemon`, or the `d`
 * of a group of on/off short flags (`-vd`). Other arguments may carry a
 * value (`-P/run/d.pid`) and are kept as they are.
 */
export function withoutDaemonFlag(args: string[], spec: FlagSpec): string[] {
  const onOff = new Set(
    Object.values(spec).filter((o) => o.type === "boolean" && o.short).map((o) => o.short),
  );
  return args.flatMap((a) => {
    if (a === "-d" || a === "--daemon") return [];
    const group = /^-[^-]/.test(a) && [...a.slice(1)].every((c) => onOff.has(c));
    if (!group || !a.includes("d")) return [a];
    const rest = a.replaceAll("d", "");
    return rest === "-" ? [] : [rest];
  });
}
