/**
 * The command line: `memrep serve | proxy | replicate`, help, version and
 * exit codes (2 for usage errors).
 * @module
 */

import { UsageError, usageText } from "./flags.ts";
import { MEMREP_VERSION } from "../version.ts";

export { MEMREP_VERSION };

// Subcommands load lazily: one command's start-up never pays for the others. Their
// specifiers are not literals, or Deno would read every command's sources before any runs
// (compile.sh --include's them).
const SERVE_URL = new URL("./serve.ts", import.meta.url).href;
const PROXY_URL = new URL("./proxy.ts", import.meta.url).href;
const REPLICATE_URL = new URL("./replicate.ts", import.meta.url).href;

async function serveMain(args: string[]): Promise<number> {
  const serve: typeof import("./serve.ts") = await import(SERVE_URL);
  return await serve.serveMain(args);
}

const HELP = `memrep ${MEMREP_VERSION} - memcached, highly available

Usage:
  memrep serve [options]       memcached-compatible server; --replicate pairs two servers
  memrep proxy [options]       proxy over many memcached with backups (magent-compatible)
  memrep replicate [options]   copy, warm, dump or restore a cache

Run 'memrep <command> --help' for a command's options.
  -h, --help       this help
  -V, --version    print the version
`;

/** Run memrep with its arguments; resolves to the process exit code. */
export async function runMain(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "serve":
        return await serveMain(rest);
      case "proxy": {
        const proxy: typeof import("./proxy.ts") = await import(PROXY_URL);
        return await proxy.proxyMain(rest);
      }
      case "replicate": {
        const replicate: typeof import("./replicate.ts") = await import(REPLICATE_URL);
        return await replicate.replicateMain(rest);
      }
      case undefined:
      case "-h":
      case "--help":
      case "help":
        console.log(HELP);
        return command === undefined ? 2 : 0;
      case "-V":
      case "--version":
      case "version":
        console.log(`memrep ${MEMREP_VERSION}`);
        return 0;
      default:
        // memcached's own command line (memrep -p 11211 -m 64 ...) means serve.
        if (command.startsWith("-")) return await serveMain(args);
        throw new UsageError(`memrep: unknown command '${command}' (try memrep --help)`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      const sub = command === "proxy" || command === "replicate"
        ? command
        : command === "serve" || command?.startsWith("-")
        ? "serve"
        : undefined;
      console.error(sub === undefined ? err.message : usageText(sub, err));
      return 2;
    }
    throw err;
  }
}
