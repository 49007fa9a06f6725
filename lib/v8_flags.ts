/**
 * The V8 flags memrep runs with. V8 reads them once per process, before
 * any isolate exists, so they reach the serve threads (Workers) too, and
 * they cannot be set from inside the program (`node:v8`'s
 * setFlagsFromString is ignored once V8 is up): every launcher passes them.
 * `compile.sh` bakes them into the executable (`deno compile --v8-flags`),
 * `-d` from source passes them on (cli/daemon.ts), and so do the tests' and
 * benches' launchers (tests/helpers/process.ts, bench/checkouts.ts).
 *
 * A larger inlining budget for TurboFan: with V8's default (callees up to
 * 460 bytes of bytecode, 920 in all per function) the parser, the command
 * dispatch and the get path stay separate calls from the connection loop;
 * with these the hot path is compiled as one. Measured under memcaslap (see
 * the README's benchmark notes, fourth pass): 1.1x the throughput of V8's
 * defaults at the same CPU per request.
 * @module
 */

/** The flags, one per entry. */
export const V8_FLAGS: readonly string[] = [
  "--max-inlined-bytecode-size=1000",
  "--max-inlined-bytecode-size-cumulative=4000",
];

/** The flags as one `--v8-flags=` argument of `deno run` / `deno compile`. */
export function v8FlagsArg(): string {
  return `--v8-flags=${V8_FLAGS.join(",")}`;
}
