/**
 * One connection's authentication: the `authenticated` flag, memcached
 * 1.6's text login (`-Y`: the first command is `set <any> <any> <any> <n>`
 * whose data is `user pass`), and the binary SASL steps (list mechs 0x20,
 * auth 0x21, step 0x22) that the binary codec calls.
 * @module
 */

import { BINARY_STATUS_TEXT, BinaryStatus, REPLY, type Writer } from "../protocol/mod.ts";
import { type Authenticator, SASL_MECHANISMS } from "./authenticator.ts";

/** The counters memcached keeps for logins (`stats`: auth_cmds, auth_errors). */
export interface AuthCounters {
  /** Completed login attempts. */
  authCmds: number;
  /** Failed login attempts. */
  authErrors: number;
}

/** Binary protocol response status of a SASL reply. */
export const SaslStatus = {
  /** Logged in (body "Authenticated"), or the mechanism list. */
  SUCCESS: 0x00,
  /** memcached's PROTOCOL_BINARY_RESPONSE_AUTH_ERROR (body "Auth failure."). */
  AUTH_ERROR: 0x20,
  /** PROTOCOL_BINARY_RESPONSE_AUTH_CONTINUE: send SASL step (0x22) with the response. */
  AUTH_CONTINUE: 0x21,
} as const;

/** What a SASL opcode answers: status and body (no key, no extras). */
export interface SaslReply {
  /** A {@linkcode SaslStatus} value. */
  status: number;
  /** The response body. */
  body: Uint8Array;
}

/** Binary opcodes memcached serves before login (list mechs, auth, step, version). */
const OPEN_OPCODES = new Set([0x20, 0x21, 0x22, 0x0b]);

const enc = new TextEncoder();
const AUTHENTICATED = enc.encode("Authenticated");
const AUTH_FAILURE = enc.encode(BINARY_STATUS_TEXT[BinaryStatus.AUTH_ERROR]);
const MECHANISMS = enc.encode(SASL_MECHANISMS);
const EMPTY = new Uint8Array(0);

/** -S without -Y: text connections wait for a 24-byte header, then close (bad magic). */
const BINARY_HEADER = 24;
/** A login line this long without '\n' closes the connection (memcached). */
const MAX_LOGIN_LINE = 2048;
/** memcached's read buffer: a login token that cannot fit in it closes the connection. */
const READ_BUFFER = 16384;

const SASL_IDLE = 0, SASL_WAITING = 1, SASL_STARTED = 2;

/** Returned by {@linkcode AuthSession.readText}: close the connection. */
export const AUTH_CLOSE: number = -1;

/** The authentication state of one client connection. */
export class AuthSession {
  /** True once the client logged in; until then it can only log in. */
  authenticated = false;
  /** Bytes {@linkcode readText} wants buffered before it can go on (0: unknown). */
  need = 0;
  readonly #auth: Authenticator;
  readonly #counters: AuthCounters;
  #sasl = SASL_IDLE;
  /**
   * A SASL login succeeded on this connection and no auth has failed since:
   * memcached with Cyrus SASL then fails the next credentials (see saslAuth).
   */
  #spent = false;
  /** Length of the login token (with "\r\n") still awaited; -1: waiting for the command line. */
  #pending = -1;
  /** Where the last pre-login reply of this output batch starts and ends. */
  #replyStart = 0;
  #replyEnd = -1;

  /** A session checked by `auth`, counting attempts into `counters` (the thread's stats). */
  constructor(auth: Authenticator, counters: AuthCounters) {
    this.#auth = auth;
    this.#counters = counters;
  }

  /** The server's checks. */
  get authenticator(): Authenticator {
    return this.#auth;
  }

  // --- binary SASL (called by the binary codec) ---

  /**
   * May this binary opcode run now? Before login only list mechs, auth,
   * step and version may. memcached answers any other opcode with status
   * 0x20 "Auth failure." and closes the connection after the write.
   */
  binaryPermits(opcode: number): boolean {
    return this.authenticated || OPEN_OPCODES.has(opcode);
  }

  /**
   * SASL list mechs (0x20): status 0, body "PLAIN". As in memcached (its
   * init_sasl_conn), listing also ends a login done before.
   */
  listMechanisms(): SaslReply {
    this.authenticated = false;
    return { status: SaslStatus.SUCCESS, body: MECHANISMS };
  }

  /**
   * SASL auth (0x21), `mech` the key and `data` the value. PLAIN with the
   * credentials logs in (0x00 "Authenticated"); PLAIN without data asks for
   * them (0x21, empty body: send them with step 0x22); anything else is
   * 0x20 "Auth failure." and the connection stays open. Any attempt first
   * ends an earlier login, as in memcached.
   */
  saslAuth(mech: Uint8Array, data: Uint8Array): SaslReply {
    this.authenticated = false;
    this.#sasl = SASL_IDLE;
    if (!this.#auth.sasl || !this.#auth.isPlain(mech)) return this.#saslDone(false);
    if (data.length === 0) {
      this.#sasl = SASL_WAITING;
      return { status: SaslStatus.AUTH_CONTINUE, body: EMPTY };
    }
    this.#sasl = SASL_STARTED;
    return this.#saslDone(this.#verify(data));
  }

  /**
   * SASL step (0x22): the credentials after an auth that answered 0x21.
   * Without such an auth, or after a step that logged in, it fails (0x20);
   * after a failed step another may try again (memcached with Cyrus SASL).
   */
  saslStep(_mech: Uint8Array, data: Uint8Array): SaslReply {
    this.authenticated = false;
    if (this.#sasl !== SASL_WAITING) return this.#saslDone(false, false);
    const ok = !this.#spent && this.#auth.verifyPlain(data);
    if (ok) this.#sasl = SASL_STARTED;
    return this.#saslDone(ok, false);
  }

  /**
   * The credentials of an auth with data. As memcached 1.6.18 with Cyrus
   * SASL (verified): after a successful login the connection's next
   * credentials fail whoever they name, by auth or by step; that failed
   * auth (or any failed auth) clears this, a failed step does not.
   */
  #verify(data: Uint8Array): boolean {
    return !this.#spent && this.#auth.verifyPlain(data);
  }

  /** Count the attempt; `auth`: a 0x21 (its failure clears {@linkcode #spent}). */
  #saslDone(ok: boolean, auth = true): SaslReply {
    if (ok) this.#spent = true;
    else if (auth) this.#spent = false;
    this.#count(ok);
    this.authenticated = ok;
    return ok
      ? { status: SaslStatus.SUCCESS, body: AUTHENTICATED }
      : { status: SaslStatus.AUTH_ERROR, body: AUTH_FAILURE };
  }

  #count(ok: boolean): void {
    this.#counters.authCmds++;
    if (!ok) this.#counters.authErrors++;
  }

  // --- text login (memcached's try_read_command_asciiauth) ---

  /**
   * Read the not yet logged-in text client's bytes buf[start, end): either
   * the login `set` line, its `user pass` token, or any other line, which
   * gets `CLIENT_ERROR unauthenticated`. Appends the reply to `out` and
   * returns the bytes used, 0 when more are needed ({@linkcode need}), or
   * {@linkcode AUTH_CLOSE}. Byte for byte as memcached 1.6.18 -Y, quirks
   * included: in one output batch a pre-login reply replaces the one before
   * it (memcached reuses its response object), a `set` whose length does
   * not fit its 16 KiB read buffer closes, and with -S but no auth file
   * text is refused as memcached's binary-only port does.
   */
  readText(buf: Uint8Array, start: number, end: number, out: Writer): number {
    const avail = end - start;
    this.need = 0;
    if (!this.#auth.text) {
      if (avail >= BINARY_HEADER) return AUTH_CLOSE;
      this.need = BINARY_HEADER;
      return 0;
    }
    if (this.#pending >= 0) return this.#readToken(buf, start, avail, out);
    if (avail < 2) return 0;
    const nl = indexIn(buf, 10, start, end);
    if (nl < 0) return avail > MAX_LOGIN_LINE ? AUTH_CLOSE : 0;
    const size = loginSize(buf, start, nl);
    if (size < 0) {
      this.#reply(out, REPLY.AUTH_REQUIRED);
      return nl + 1 - start;
    }
    // memcached keeps (n + 2) in an int: a huge n wraps.
    this.#pending = (size + 2) | 0;
    const used = nl + 1 - start;
    const token = this.#readToken(buf, start + used, avail - used, out);
    return token <= 0 ? (token === 0 ? used : token) : used + token;
  }

  /** The login token: `len` bytes (with "\r\n") of `user pass`. */
  #readToken(buf: Uint8Array, start: number, avail: number, out: Writer): number {
    const len = this.#pending;
    if (len < 0 || len > READ_BUFFER) {
      // memcached closes once its buffer is full; until then it waits.
      if (avail >= READ_BUFFER) return AUTH_CLOSE;
      this.need = READ_BUFFER;
      return 0;
    }
    if (avail < len) {
      this.need = len;
      return 0;
    }
    this.#pending = -1;
    if (len < 2 || buf[start + len - 2] !== 13 || buf[start + len - 1] !== 10) {
      this.#reply(out, REPLY.BAD_TERMINATION);
      return len;
    }
    const t = tokens(buf, start, start + len - 2, 2);
    if (t.length < 4) {
      this.#reply(out, REPLY.AUTH_BAD_TOKEN);
      return len;
    }
    const ok = this.#auth.checkText(buf.subarray(t[0], t[1]), buf.subarray(t[2], t[3]));
    this.#count(ok);
    this.#reply(out, ok ? REPLY.STORED : REPLY.AUTH_FAILURE);
    if (ok) this.authenticated = true;
    return len;
  }

  #reply(out: Writer, reply: Uint8Array): void {
    // Same batch (nothing flushed since): replace the previous pre-login reply.
    if (out.length === this.#replyEnd) out.length = this.#replyStart;
    this.#replyStart = out.length;
    out.bytes(reply);
    this.#replyEnd = out.length;
  }
}

/**
 * The login line buf[start, nl): memcached's check that it is
 * `set <key> <flags> <exptime> <bytes> ...` (split on spaces only, cut at a
 * NUL, flags and exptime unread) with `bytes` accepted by its
 * safe_strtoul. Returns that 32-bit length, or -1.
 */
function loginSize(buf: Uint8Array, start: number, nl: number): number {
  const t = tokens(buf, start, nl, 5);
  if (t.length < 10) return -1;
  if (t[1] - t[0] !== 3 || buf[t[0]] !== 115 || buf[t[0] + 1] !== 101 || buf[t[0] + 2] !== 116) {
    return -1;
  }
  return safeStrtoul(buf, t[8], t[9]);
}

/**
 * Up to `max` tokens of buf[start, end) split on ' ' as memcached's
 * tokenize_command (which stops at a NUL): [start0, end0, start1, ...].
 */
function tokens(buf: Uint8Array, start: number, end: number, max: number): number[] {
  const nul = indexIn(buf, 0, start, end);
  if (nul >= 0) end = nul;
  const out: number[] = [];
  let i = start;
  while (i < end && out.length < 2 * max) {
    while (i < end && buf[i] === 32) i++;
    if (i >= end) break;
    const s = i;
    while (i < end && buf[i] !== 32) i++;
    out.push(s, i);
  }
  return out;
}

/** The first `byte` in buf[start, end), or -1 (never looks past `end`). */
function indexIn(buf: Uint8Array, byte: number, start: number, end: number): number {
  for (let i = start; i < end; i++) if (buf[i] === byte) return i;
  return -1;
}

function isCSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * memcached's safe_strtoul on the token buf[start, end): strtoul (leading
 * C spaces, a sign, decimal digits, range of a 64-bit long) followed by a
 * space or the token's end; a '-' is refused only when the result looks
 * negative as a long; then cut to 32 bits. Returns -1 when refused.
 */
function safeStrtoul(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && isCSpace(buf[i])) i++;
  let neg = false;
  if (i < end && (buf[i] === 43 || buf[i] === 45)) neg = buf[i++] === 45;
  const digits = i;
  let v = 0n;
  while (i < end && buf[i] >= 48 && buf[i] <= 57) {
    v = v * 10n + BigInt(buf[i] - 48);
    if (v > U64_MAX) return -1; // ERANGE
    i++;
  }
  if (i === digits) return -1;
  if (i < end && !isCSpace(buf[i])) return -1;
  if (neg) v = (U64_MAX + 1n - v) & U64_MAX;
  if (v >= 1n << 63n && buf.subarray(start, end).includes(45)) return -1;
  return Number(v & 0xffffffffn);
}
