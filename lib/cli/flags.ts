/**
 * Command-line parsing for every subcommand, behind one small module so
 * @std/cli can replace it later. Bad flags raise {@linkcode UsageError};
 * main.ts prints it and exits with code 2.
 *
 * The parser is getopt's (an option that takes a value takes the next
 * argument even when it starts with `-`: `-c -1`, as memcached's flags do),
 * with node:util parseArgs's option table and messages. It is not
 * node:util's own because loading node's compatibility layer costs a
 * server 20 ms of start-up (client test kits give a spawned memcached
 * 100 ms to answer).
 * @module
 */

import type { HostPort } from "../transport/mod.ts";
import { MemcachedUsageError, UsageError } from "../errors.ts";

export { MemcachedUsageError, UsageError };

/** One option: a switch or one that takes a value, with its one-letter form. */
export interface FlagOption {
  /** "boolean" takes no value; "string" takes one. */
  type: "boolean" | "string";
  /** The one-letter form (`-p`). */
  short?: string;
  /** Kept as a list of every occurrence (else the last one wins). */
  multiple?: boolean;
}

/** Option table by long name (node:util parseArgs's form). */
export type FlagSpec = Record<string, FlagOption>;

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
  const fail = (message: string): never => {
    throw new UsageError(`memrep ${command}: ${message}`);
  };
  const byShort = new Map<string, string>();
  for (const [name, o] of Object.entries(spec)) if (o.short) byShort.set(o.short, name);
  const values: FlagValues = {};
  const set = (name: string, value: string | boolean) => {
    if (!spec[name].multiple) values[name] = value;
    else ((values[name] ??= []) as (string | boolean)[]).push(value);
  };
  const shown = (name: string) => {
    const short = spec[name].short;
    return short ? `-${short}, --${name}` : `--${name}`;
  };
  // A value-taking option's value: the rest of its argument, else the next one.
  let i = 0;
  const value = (name: string, rest: string): string => {
    if (rest !== "") return rest;
    const next = args[i + 1];
    if (next === undefined || next === "--") {
      fail(`Option '${shown(name)} <value>' argument missing`);
    }
    i++;
    return next;
  };
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      if (i + 1 < args.length) unexpected(args[i + 1]);
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const o = Object.hasOwn(spec, name) ? spec[name] : undefined;
      if (!o) fail(`Unknown option '${eq < 0 ? a : a.slice(0, eq)}'`);
      else if (o.type === "boolean") {
        if (eq >= 0) fail(`Option '${shown(name)}' does not take an argument`);
        set(name, true);
      } else set(name, eq >= 0 ? a.slice(eq + 1) : value(name, ""));
    } else if (a.startsWith("-") && a.length > 1) {
      // A group of one-letter switches (-vv), the last or a value-taking one ending it.
      for (let j = 1; j < a.length; j++) {
        const name = byShort.get(a[j]);
        if (name === undefined) fail(`Unknown option '-${a[j]}'`);
        else if (spec[name].type === "boolean") set(name, true);
        else {
          set(name, value(name, a.slice(j + 1)));
          break;
        }
      }
    } else unexpected(a);
  }
  return values;

  function unexpected(arg: string): never {
    return fail(`Unexpected argument '${arg}'. This command does not take positional arguments`);
  }
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
