/**
 * How memrep's clients of other servers log in and speak TLS, as flags:
 * `proxy --backend-auth*` / `--backend-tls*` and `replicate --auth*` /
 * `--tls*` read them alike.
 * @module
 */

import { type FlagValues, stringFlag, UsageError } from "./flags.ts";
import { errorText } from "../transport/mod.ts";
import { readPem } from "./tls_flags.ts";

/**
 * `--<inline> user:password` or `--<file> <path>` (its first line): the
 * login memcached's text clients send to a `-Y` server; undefined when
 * neither is given.
 */
export function loginFlags(
  v: FlagValues,
  inline: string,
  file: string,
): { user: string; password: string } | undefined {
  const text = stringFlag(v, inline);
  const path = stringFlag(v, file);
  if (text !== undefined && path !== undefined) {
    throw new UsageError(`use either --${inline} or --${file}, not both`);
  }
  let entry = text;
  if (path !== undefined) {
    try {
      entry = Deno.readTextFileSync(path).split("\n")[0].replace(/\r$/, "");
    } catch (err) {
      throw new UsageError(`--${file}: cannot read ${path}: ${errorText(err)}`);
    }
  }
  if (entry === undefined) return undefined;
  const colon = entry.indexOf(":");
  const user = entry.slice(0, colon), password = entry.slice(colon + 1);
  // The login token is "user password" on one text line.
  if (colon <= 0 || password === "" || /[\s\0]/.test(user) || /[\s\0]/.test(password)) {
    throw new UsageError(
      `--${inline}: expected user:password without spaces (memcached's text login)`,
    );
  }
  return { user, password };
}

/**
 * `--<enable>` / `--<ca> <pem>` (which implies it): TLS to the servers,
 * trusting that CA (Deno's roots without one); undefined when off.
 */
export function clientTlsFlags(
  v: FlagValues,
  enable: string,
  ca: string,
): { ca?: string } | undefined {
  const caPath = stringFlag(v, ca);
  if (v[enable] !== true && caPath === undefined) return undefined;
  if (caPath === undefined) return {};
  try {
    return { ca: readPem(caPath, "CA certificate", "CERTIFICATE") };
  } catch (err) {
    throw new UsageError(`--${ca}: ${(err as Error).message}`);
  }
}
