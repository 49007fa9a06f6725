/**
 * Who may use the server: the password files behind `-Y` (text) and `-S`
 * (binary SASL), loaded by memcached's rules, and the SASL PLAIN check.
 * One Authenticator per serve thread; one {@linkcode AuthSession} per
 * connection.
 * @module
 */

import { BINARY_SASL_MAX_MECH } from "../protocol/mod.ts";
import { checkCredentials, checkPwdb, type Credential, parseAuthFile } from "./password_file.ts";

/** What `serve` was asked to check (plain data: it crosses to worker threads). */
export interface AuthConfig {
  /** `-S`: binary SASL authentication. */
  sasl: boolean;
  /** `-Y`/`--auth-file`: text authentication, and SASL's users unless `pwdbFile` is set. */
  authFile?: string;
  /** `MEMCACHED_SASL_PWDB`: SASL's users, read again at every attempt (memcached's pwdb). */
  pwdbFile?: string;
  /**
   * The auth file's bytes as the main serve thread holds them: a thread it starts takes these
   * (and each reload's, see {@linkcode Authenticator.adopt}) instead of reading the file, so
   * every thread has the same users whenever the file changes or breaks.
   */
  authBytes?: Uint8Array;
}

/** A password file that cannot be used; the message is memcached's wording. */
export class AuthFileError extends Error {
  /** Create the error with a message for the user. */
  constructor(message: string) {
    super(message);
    this.name = "AuthFileError";
  }
}

/** The mechanism list a PLAIN-only server sends for SASL list mechs (0x20). */
export const SASL_MECHANISMS = "PLAIN";

/** memcached refuses longer mechanism names in SASL auth/step with EINVAL (0x04). */
export const SASL_MAX_MECH_LENGTH: number = BINARY_SASL_MAX_MECH;

const PLAIN = new TextEncoder().encode("PLAIN");

/** The checks of one serve thread. */
export class Authenticator {
  /** The configuration it was loaded from. */
  readonly config: AuthConfig;
  #entries: Credential[];
  #bytes: Uint8Array | undefined;

  private constructor(config: AuthConfig, bytes: Uint8Array | undefined) {
    this.config = { sasl: config.sasl, authFile: config.authFile, pwdbFile: config.pwdbFile };
    this.#bytes = bytes;
    this.#entries = bytes === undefined ? [] : parsedAuthFile(config.authFile!, bytes);
  }

  /**
   * Load the files of `config`. Throws {@linkcode AuthFileError} when the
   * auth file cannot be read or has a malformed line, or when SASL has no
   * password file at all.
   */
  static load(config: AuthConfig): Authenticator {
    if (config.sasl && !config.authFile && !config.pwdbFile) {
      throw new AuthFileError(
        "-S needs a password file: --auth-file <file> or MEMCACHED_SASL_PWDB=<file>",
      );
    }
    if (config.pwdbFile) readFile(config.pwdbFile, "sasl database");
    if (config.authFile === undefined) return new Authenticator(config, undefined);
    return new Authenticator(config, config.authBytes ?? readFile(config.authFile, "authfile"));
  }

  /** The configuration for a thread that starts now: the users in force here. */
  get current(): AuthConfig {
    return { ...this.config, authBytes: this.#bytes };
  }

  /** True when binary clients must log in with SASL (`-S`). */
  get sasl(): boolean {
    return this.config.sasl;
  }

  /** True when text clients must log in with the `set` token (`-Y`/`--auth-file`). */
  get text(): boolean {
    return this.config.authFile !== undefined;
  }

  /**
   * Read the auth file again (memcached does on SIGHUP); its bytes, for the
   * other threads. On error the users loaded before stay in force and the
   * error is thrown for logging.
   */
  reload(): Uint8Array | undefined {
    const path = this.config.authFile;
    if (path === undefined) return undefined;
    const bytes = readFile(path, "authfile");
    this.adopt(bytes);
    return bytes;
  }

  /** Take the users of auth file bytes another thread loaded (and checked). */
  adopt(bytes: Uint8Array): void {
    if (this.config.authFile === undefined) return;
    this.#entries = parsedAuthFile(this.config.authFile, bytes);
    this.#bytes = bytes;
  }

  /** The text protocol's check: `user pass` against the auth file. */
  checkText(user: Uint8Array, pass: Uint8Array): boolean {
    return checkCredentials(this.#entries, user, pass);
  }

  /** SASL's check: against MEMCACHED_SASL_PWDB when set, else the auth file. */
  checkSasl(user: Uint8Array, pass: Uint8Array): boolean {
    if (user.length === 0 || pass.length === 0) return false;
    const pwdb = this.config.pwdbFile;
    if (pwdb === undefined) return checkCredentials(this.#entries, user, pass);
    let db: Uint8Array;
    try {
      db = Deno.readFileSync(pwdb); // re-read per attempt, as memcached: edits apply at once
    } catch {
      return false;
    }
    return checkPwdb(db, user, pass);
  }

  /**
   * A SASL PLAIN message (RFC 4616: `[authzid] NUL authcid NUL passwd`, as
   * Cyrus SASL takes it): exactly two NULs; an authzid other than the user
   * is refused (no proxy authorization); then the password check.
   */
  verifyPlain(message: Uint8Array): boolean {
    const a = message.indexOf(0);
    if (a < 0) return false;
    const b = message.indexOf(0, a + 1);
    if (b < 0 || message.indexOf(0, b + 1) >= 0) return false;
    const authzid = message.subarray(0, a);
    const user = message.subarray(a + 1, b);
    const pass = message.subarray(b + 1);
    if (authzid.length > 0 && !sameBytes(authzid, user)) return false;
    return this.checkSasl(user, pass);
  }

  /** True when `mech` names PLAIN (case-insensitive, as Cyrus SASL). */
  isPlain(mech: Uint8Array): boolean {
    if (mech.length !== PLAIN.length) return false;
    for (let i = 0; i < mech.length; i++) if ((mech[i] & 0xdf) !== PLAIN[i]) return false;
    return true;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function readFile(path: string, what: string): Uint8Array {
  try {
    return Deno.readFileSync(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/ \(os error \d+\).*$/s, "") : err;
    throw new AuthFileError(`Could not open ${what} [${path}] for reading, error ${reason}`);
  }
}

function parsedAuthFile(path: string, bytes: Uint8Array): Credential[] {
  const parsed = parseAuthFile(bytes);
  if (!parsed.ok) {
    throw new AuthFileError(
      `Authfile [${path}] has a malformed entry. Should be 'user:password' (line ${parsed.line}: ${parsed.reason})`,
    );
  }
  return parsed.entries;
}
