/**
 * memcached's -l for `serve`, read as memcached 1.6.18 reads it: the
 * accumulated list (`stats settings` inter) and its entries,
 * `[notls:][proto[..]:][tag[..]:]host[:port]` with `[v6]:port` for IPv6,
 * refused with memcached's messages (exit code 2, memrep's rule).
 * @module
 */

import { MemcachedUsageError, UsageError } from "./flags.ts";
import { log } from "../log.ts";
import type { ListenAddress } from "../server/mod.ts";

/**
 * The -l values joined as memcached joins them (comma separated); a value
 * already contained in the list so far is dropped, as memcached's strstr
 * check does (so `-l 127.0.0.1:2000 -l 127.0.0.1:200` listens on 2000 only).
 * Undefined without -l.
 */
export function listenArg(values: string[]): string | undefined {
  let inter: string | undefined;
  for (const v of values) {
    if (inter === undefined) inter = v;
    else if (!inter.includes(v)) inter = `${inter},${v}`;
  }
  return inter;
}

/**
 * The listeners of `inter` (see {@linkcode listenArg}): an entry without a
 * port uses `port` (-p's; 0: the one the system picks, shared by them),
 * `*` is every interface (0.0.0.0), `notls:` needs `tls` (-Z). Without -l:
 * every interface (IPv4 and IPv6) on -p's port. Throws memcached's messages for what memcached
 * refuses, and a UsageError for what memrep cannot serve.
 */
export function parseListen(
  inter: string | undefined,
  tls: boolean,
  port: number,
): ListenAddress[] {
  if (inter === undefined) return [{ hostname: "0.0.0.0", dual: true }];
  const out: ListenAddress[] = [];
  // memcached goes on past a failed lookup (and a bind that finds the address in use), and
  // stops at the first entry it cannot parse; then one line names the whole list.
  const lines: string[] = [];
  let inUse = false;
  const seen = new Set<string>();
  for (const token of inter.split(/[;,]/)) {
    if (token === "") continue;
    const entry = parseEntry(token, tls);
    if (typeof entry === "string") {
      lines.push(entry);
      break;
    }
    if (entry.hostname === "") {
      lines.push("getaddrinfo(): Name or service not known\n");
      continue;
    }
    if (entry.port !== undefined && entry.port < 0) {
      lines.push("getaddrinfo(): Servname not supported for ai_socktype\n");
      continue;
    }
    // A second bind of the same address fails (Address already in use), with or without threads.
    const bound = entry.port ?? port;
    const key = `${entry.hostname} ${bound}`;
    if (bound !== 0 || entry.port === undefined) {
      if (seen.has(key)) {
        inUse = true;
        continue;
      }
      seen.add(key);
    }
    out.push(entry);
  }
  if (lines.length > 0 || inUse) {
    throw new MemcachedUsageError(
      `${lines.join("")}failed to listen on one of interface(s) ${inter}: ${
        inUse ? "Address already in use" : "Success"
      }`,
    );
  }
  // (memcached with an -l of separators only listens nowhere; memrep keeps its default.)
  return out.length > 0 ? out : [{ hostname: "0.0.0.0" }];
}

/** One entry; a string is memcached's refusal (ending the list). A negative port: a failed lookup. */
function parseEntry(token: string, tls: boolean): ListenAddress | string {
  let p = token;
  let plain = false;
  if (p.startsWith("notls")) {
    if (!tls) return "'notls' option is valid only when SSL is enabled\n";
    plain = true;
    p = p.slice("notls".length + 1); // and the ':' after it
  }
  if (p.startsWith("proto")) {
    p = p.slice("proto".length);
    if (p.startsWith("[")) {
      const end = p.indexOf("]");
      if (end < 0) return `Invalid protocol spec: "${p}"\n`;
      throw new UsageError(
        `-l ${token}: memrep has no per-listener protocol (-B sets every listener's)`,
      );
    }
  }
  if (p.startsWith("tag")) {
    p = p.slice("tag".length);
    if (p.startsWith("[")) {
      const end = p.indexOf("]");
      if (end < 0) return `Invalid tag in socket config: "${p}"\n`;
      const tag = p.slice(1, end);
      if (tag.length < 1 || tag.length > 8) {
        return `Listener tags must be between 1 and 8 characters: "${tag}"\n`;
      }
      // Tags name listeners for memcached's built-in proxy, which memrep does not have.
      log.info(`memrep: -l tag[${tag}] ignored`);
      p = p.slice(end + 2);
    }
  }
  let bracketed: string | undefined;
  if (p.startsWith("[")) {
    const end = p.indexOf("]");
    // (memcached prints this one without a newline.)
    if (end < 0) return `Invalid IPV6 address: "${p}"`;
    bracketed = p.slice(1, end);
    p = p.slice(end + 1);
  }
  let port: number | undefined;
  const colon = p.indexOf(":");
  // More than one ':' without brackets: an IPv6 address without a port.
  if (colon >= 0 && (bracketed !== undefined || !p.includes(":", colon + 1))) {
    const text = p.slice(colon + 1);
    const n = strtol(text);
    if (n === undefined) return `Invalid port number: "${text}"\n`;
    if (n > 65535) {
      // (memcached's getaddrinfo takes it modulo 65536.)
      throw new UsageError(`-l ${token}: port ${n} is out of range (0-65535)`);
    }
    port = n === -1 ? 0 : n; // memcached: -1 is a port the system picks
    p = p.slice(0, colon);
  }
  const host = (bracketed ?? p).trim();
  return {
    hostname: host === "*" ? "0.0.0.0" : host,
    ...(port === undefined ? {} : { port }),
    ...(plain ? { plain } : {}),
  };
}

/** memcached's safe_strtol: a decimal (spaces before, a space or nothing after) as an int32. */
function strtol(text: string): number | undefined {
  const m = /^[\t\n\v\f\r ]*([+-]?\d+)(?:[\t\n\v\f\r ]|$)/.exec(text);
  if (!m) return undefined;
  const n = BigInt(m[1]);
  if (n > 2n ** 63n - 1n || n < -(2n ** 63n)) return undefined; // ERANGE
  return Number(BigInt.asIntN(32, n));
}

/** `host:port`, an IPv6 host in brackets (for messages). */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
