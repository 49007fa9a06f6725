/**
 * Command-line parsing for every subcommand, behind one small module so
 * @std/cli can replace node:util's parseArgs later. Bad flags raise
 * {@linkcode UsageError}; main.ts prints it and exits with code 2.
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { errorText, type HostPort } from "../transport/mod.ts";
import { MemcachedUsageError, UsageError } from "../errors.ts";

export { MemcachedUsageError, UsageError };

/** Option table in node:util parseArgs form. */
export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** Parsed option values by long name. */
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/**
 * The line a usage error of `memrep <command>` prints: the message after
 * `memrep <command>: ` (once), but memcached's own refusals under serve
 * as memcached prints them.
 */
export function usageText(command: string, err: UsageError): string {
  const prefix = `memrep ${command}: `;
  if (command === "serve" && err instanceof MemcachedUsageError) return err.message;
  return err.message.startsWith(prefix) ? err.message : prefix + err.message;
}

/** Parse args strictly against spec; positionals are refused. */
export function parseFlags(args: string[], spec: FlagSpec, command: string): FlagValues {
  try {
    const { values } = parseArgs({
      args: dashValues(args, spec),
      options: spec,
      strict: true,
      allowPositionals: false,
    });
    return values as FlagValues;
  } catch (err) {
    const message = errorText(err);
    throw new UsageError(`memrep ${command}: ${message.replace(/\. To specify .*$/s, "")}`);
  }
}

/**
 * getopt's rule, which memcached's flags follow: an option that takes a
 * value takes the next argument even when it starts with `-` (`-c -1`).
 * parseArgs refuses that form, so it is joined (`-c-1`, `--name=-1`).
 */
function dashValues(args: string[], spec: FlagSpec): string[] {
  const takes = new Set<string>();
  for (const [name, o] of Object.entries(spec)) {
    if (o.type !== "string") continue;
    takes.add(`--${name}`);
    if (o.short) takes.add(`-${o.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i], next = args[i + 1];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (takes.has(a) && next !== undefined && next.startsWith("-") && next !== "--") {
      out.push(a.startsWith("--") ? `${a}=${next}` : a + next);
      i++;
    } else out.push(a);
  }
  return out;
}

/** A string flag's value (the last one if repeated). */
export function stringFlag(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  if (Array.isArray(v)) return v.length ? String(v[v.length - 1]) : undefined;
  return typeof v === "string" ? v : undefined;
}

/** Every value of a repeatable string flag. */
export function listFlag(values: FlagValues, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

/** How many times a repeatable boolean flag was given (-v, -vv). */
export function countFlag(values: FlagValues, name: string): number {
  const v = values[name];
  return Array.isArray(v) ? v.length : v ? 1 : 0;
}

/** Parse a non-negative integer flag, or throw a usage error naming it. */
export function intFlag(
  values: FlagValues,
  name: string,
  fallback: number,
  min = 0,
  max = 2 ** 31,
): number {
  const text = stringFlag(values, name);
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name}: not a number: ${text}`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`--${name}: ${n} is out of range (${min}..${max})`);
  return n;
}

/** Parse a size like memcached's -I: bytes, or with k/m/g suffix. */
export function sizeFlag(values: FlagValues, name: string, fallback: number): number {
  const text = stringFlag(values, name);
  if (text === undefined) return fallback;
  const m = /^(\d+)([kKmMgG]?)$/.exec(text);
  if (!m) throw new UsageError(`--${name}: not a size: ${text} (use bytes or a k/m/g suffix)`);
  const unit =
    { "": 1, k: 1024, m: 1048576, g: 1073741824 }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * unit;
}

export type { HostPort };

/** Parse "host:port" (or "[v6]:port"), or throw a usage error naming the flag. */
export function parseHostPort(text: string, flag: string, defaultPort?: number): HostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:\s]+)(?::(\d+))?$/.exec(text);
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!m || port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`${flag}: expected host:port, got '${text}'`);
  }
  return { host: m[1], port };
}
