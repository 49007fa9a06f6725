/**
 * memcached's TLS flags for `serve`: -Z and the ssl_* -o options (-l's
 * `notls:` is read with -l, listen_flags.ts), checked and loaded before
 * anything listens, with memcached's error texts where memcached has one.
 * @module
 */

import { MemcachedUsageError, UsageError } from "./flags.ts";
import { log } from "../log.ts";
import { errorText, listenTcp, type TlsMaterial } from "../transport/mod.ts";

/** What the TLS flags mean for the server. */
export interface ServeTls {
  /** Certificate and key when -Z is on, else undefined. */
  tls?: TlsMaterial;
  /** The -o items that are not ssl_* (for the caller's own handling). */
  otherExtended: string[];
  /** memcached's ssl_* lines of `stats settings`. */
  settings: Array<[string, string | number]>;
}

const MIN_VERSIONS = ["tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"];

/**
 * Parse -Z (`enable`) and the -o items (`extended`, comma separated as in
 * memcached); with -Z, read and check the PEM files (throws UsageError
 * naming the file, exit code 2).
 */
export function serveTls(
  enable: boolean,
  extended: string[],
  unixSocket: string | undefined,
): ServeTls {
  const ssl = new Map<string, string>();
  const otherExtended: string[] = [];
  for (const item of extended.flatMap((o) => o.split(","))) {
    const eq = item.indexOf("=");
    const name = eq < 0 ? item : item.slice(0, eq);
    if (name.startsWith("ssl_")) ssl.set(name, eq < 0 ? "" : item.slice(eq + 1));
    else if (item !== "") otherExtended.push(item);
  }
  const known = [
    "ssl_chain_cert",
    "ssl_key",
    "ssl_keyformat",
    "ssl_verify_mode",
    "ssl_ciphers",
    "ssl_ca_cert",
    "ssl_wbuf_size",
    "ssl_session_cache",
    "ssl_kernel_tls",
    "ssl_min_version",
  ];
  for (const name of ssl.keys()) {
    if (!known.includes(name)) throw new MemcachedUsageError(`Illegal suboption "${name}"`);
  }
  const verifyMode = smallInt(ssl, "ssl_verify_mode", 0, 3, "Invalid ssl_verify_mode");
  const keyFormat = smallInt(ssl, "ssl_keyformat", 1, 3, "Invalid ssl_keyformat");
  const minVersion = smallInt(ssl, "ssl_min_version", 2, 3, "Invalid ssl_min_version");
  const wbufKb = smallInt(ssl, "ssl_wbuf_size", 16, 1 << 20, "Invalid ssl_wbuf_size");
  const chainPath = ssl.get("ssl_chain_cert") || undefined;
  const keyPath = ssl.get("ssl_key") || undefined;
  const caPath = ssl.get("ssl_ca_cert") || undefined;
  const ciphers = ssl.get("ssl_ciphers") || undefined;

  let tls: TlsMaterial | undefined;
  if (enable) {
    if (unixSocket !== undefined) {
      throw new MemcachedUsageError("ERROR: You cannot enable SSL without a TCP port.");
    }
    // Deno's TLS (rustls) offers none of these knobs: refuse rather than pretend.
    if (verifyMode !== 0) {
      throw new UsageError(
        `ssl_verify_mode=${verifyMode}: memrep cannot verify client certificates ` +
          "(Deno's TLS listener has no client authentication); only 0 (none) is supported",
      );
    }
    if (keyFormat !== 1) {
      throw new UsageError(`ssl_keyformat=${keyFormat}: memrep reads PEM keys only (1)`);
    }
    if (ciphers !== undefined) {
      throw new UsageError(
        "ssl_ciphers: memrep cannot choose ciphers (it uses rustls' defaults, TLS 1.2 and 1.3)",
      );
    }
    if (minVersion === 3) {
      throw new UsageError("ssl_min_version=3: memrep cannot refuse TLS 1.2 (rustls' defaults)");
    }
    const cert = readPem(chainPath, "certificate chain", "CERTIFICATE");
    // memcached: without ssl_key, the key is in the chain file.
    const key = readPem(keyPath ?? chainPath, "key", "PRIVATE KEY", keyPath === undefined);
    if (caPath !== undefined) readPem(caPath, "CA certificate", "CERTIFICATE");
    tls = { cert, key };
    checkMaterial(tls, chainPath!, keyPath ?? chainPath!);
    if (caPath !== undefined) {
      log.info("memrep: ssl_ca_cert is only used to verify clients, which memrep does not do");
    }
    for (const name of ["ssl_session_cache", "ssl_kernel_tls", "ssl_wbuf_size"]) {
      if (ssl.has(name)) log.info(`memrep: -o ${name} accepted, no effect`);
    }
  }
  const settings: Array<[string, string | number]> = [
    ["ssl_enabled", enable ? "yes" : "no"],
    ["ssl_chain_cert", chainPath ?? "(null)"],
    ["ssl_key", keyPath ?? "(null)"],
    ["ssl_verify_mode", verifyMode],
    ["ssl_keyformat", keyFormat],
    ["ssl_ciphers", ciphers ?? "NULL"],
    ["ssl_ca_cert", caPath ?? "NULL"],
    ["ssl_wbuf_size", wbufKb * 1024],
    ["ssl_session_cache", "no"],
    ["ssl_kernel_tls", "no"],
    ["ssl_min_version", MIN_VERSIONS[minVersion]],
  ];
  return { tls, otherExtended, settings };
}

/** An integer -o value within [0, max], memcached's error otherwise. */
function smallInt(
  ssl: Map<string, string>,
  name: string,
  fallback: number,
  max: number,
  invalid: string,
): number {
  const text = ssl.get(name);
  if (text === undefined) return fallback;
  if (!/^\s*-?\d+\s*$/.test(text)) {
    throw new MemcachedUsageError(`could not parse argument to ${name}`);
  }
  const n = Number(text);
  if (n < 0 || n > max) throw new MemcachedUsageError(`${invalid}. Use help to see valid options.`);
  return n;
}

/** The PEM text of `path`, which must hold a `label` block. */
export function readPem(
  path: string | undefined,
  what: string,
  label: string,
  fromChain = false,
): string {
  const shown = fromChain ? "(null)" : path ?? "(null)";
  if (path === undefined) {
    throw new MemcachedUsageError(
      `Error loading the ${what}: (null) : no file given (-o ssl_chain_cert=<file>,ssl_key=<file>)`,
    );
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new MemcachedUsageError(`Error loading the ${what}: ${shown} : ${errorText(err)}`);
  }
  if (!text.includes(`-----BEGIN `) || !new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(text)) {
    throw new MemcachedUsageError(`Error loading the ${what}: ${path} : no PEM ${label} in it`);
  }
  return text;
}

/**
 * Binds a throwaway TLS listener: rustls checks the chain, the key and that
 * they belong together, so a mistake is reported now, naming the files.
 */
function checkMaterial(tls: TlsMaterial, chainPath: string, keyPath: string): void {
  try {
    listenTcp({ hostname: "127.0.0.1", port: 0, reusePort: false, tls }).close();
  } catch (err) {
    throw new MemcachedUsageError(
      `Error loading the certificate chain and key: ${chainPath}, ${keyPath} : ${errorText(err)}`,
    );
  }
}

/**
 * `--repl-tls-cert`/`--repl-tls-key` (both or neither) and `--repl-tls-ca`:
 * the replication link's TLS, read now (UsageError naming the file).
 * Undefined when none is given.
 */
export function replTls(
  certPath: string | undefined,
  keyPath: string | undefined,
  caPath: string | undefined,
): (TlsMaterial & { ca?: string }) | undefined {
  if (certPath === undefined && keyPath === undefined && caPath === undefined) return undefined;
  if (certPath === undefined || keyPath === undefined) {
    throw new UsageError(
      "--repl-tls-cert and --repl-tls-key go together (--repl-tls-ca needs both)",
    );
  }
  const read = (path: string, flag: string, label: string) => {
    try {
      return readPem(path, label === "CERTIFICATE" ? "certificate" : "key", label);
    } catch (err) {
      throw new UsageError(`${flag}: ${err instanceof Error ? err.message : err}`);
    }
  };
  const material = {
    cert: read(certPath, "--repl-tls-cert", "CERTIFICATE"),
    key: read(keyPath, "--repl-tls-key", "PRIVATE KEY"),
  };
  try {
    checkMaterial(material, certPath, keyPath);
  } catch (err) {
    throw new UsageError(`--repl-tls-cert/--repl-tls-key: ${(err as Error).message}`);
  }
  const ca = caPath === undefined ? undefined : read(caPath, "--repl-tls-ca", "CERTIFICATE");
  return { ...material, ca };
}

/**
 * `proxy --tls-cert/--tls-key` (both or neither): the client side's TLS,
 * read and checked now (UsageError naming the file). Undefined when neither.
 */
export function proxyTls(
  certPath: string | undefined,
  keyPath: string | undefined,
): TlsMaterial | undefined {
  if (certPath === undefined && keyPath === undefined) return undefined;
  if (certPath === undefined || keyPath === undefined) {
    throw new UsageError("memrep proxy: --tls-cert and --tls-key go together");
  }
  const cert = readPem(certPath, "certificate", "CERTIFICATE");
  const key = readPem(keyPath, "key", "PRIVATE KEY");
  checkMaterial({ cert, key }, certPath, keyPath);
  return { cert, key };
}
