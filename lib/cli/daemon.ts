/**
 * -d: run the same command again in the background and return once it is
 * listening, like memcached -d / magent -d.
 * @module
 */

/** The command line that starts this program again (compiled or `deno run`). */
export function selfCommand(): { cmd: string; prefix: string[] } {
  const exec = Deno.execPath();
  const base = exec.split(/[\\/]/).pop() ?? "";
  if (base === "deno" || base === "deno.exe") {
    const main = new URL(Deno.mainModule);
    const config = new URL("./deno.json", main);
    return {
      cmd: exec,
      prefix: ["run", "-q", "-P=memrep", "--config", config.pathname, main.pathname],
    };
  }
  return { cmd: exec, prefix: [] };
}

/**
 * Start `args` (without the daemon flag) detached, wait until
 * hostname:port accepts connections, and return the exit code for the
 * foreground process. Like memcached -d, a `verbose` daemon keeps logging
 * to this terminal's stderr (the seed's `-v -d` shows repcached's lines);
 * otherwise it is cut off from it.
 */
export async function daemonize(
  args: string[],
  hostname: string,
  port: number,
  verbose = false,
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
  for (let i = 0; i < 100 && !exited; i++) {
    try {
      const conn = await Deno.connect({ hostname: target, port });
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

/** Remove the daemon flags from an argument list. */
export function withoutDaemonFlag(args: string[]): string[] {
  return args.filter((a) => a !== "-d" && a !== "--daemon").map((a) =>
    /^-[^-]*d/.test(a) && !a.startsWith("--") ? a.replace("d", "") : a
  ).filter((a) => a !== "-");
}
