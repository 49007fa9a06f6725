/**
 * memcached 1.6.18's dispatch of the binary SASL opcodes (proto_bin.c:
 * dispatch_bin_command, bin_list_sasl_mechs, process_bin_sasl_auth), as one
 * call for the binary codec: it passes a request whose body it has read and
 * writes the answer this returns.
 * @module
 */

import { BINARY_STATUS_TEXT, type BinaryRequest, BinaryStatus } from "../protocol/mod.ts";
import { SASL_MAX_MECH_LENGTH } from "./authenticator.ts";
import type { AuthSession } from "./session.ts";

/** Binary opcodes of SASL. */
export const SaslOpcode = {
  /** SASL list mechs: no extras, key or value. */
  LIST_MECHS: 0x20,
  /** SASL auth: key = mechanism, value = initial response. */
  AUTH: 0x21,
  /** SASL step: value = the response to a 0x21 challenge. */
  STEP: 0x22,
} as const;

/** memcached's status for a malformed request (PROTOCOL_BINARY_RESPONSE_EINVAL). */
export const STATUS_EINVAL: number = BinaryStatus.EINVAL;
/** memcached's status without -S (PROTOCOL_BINARY_RESPONSE_UNKNOWN_COMMAND). */
export const STATUS_UNKNOWN_COMMAND: number = BinaryStatus.UNKNOWN_COMMAND;

/** The answer to one SASL request. */
export interface SaslAction {
  /** Response status: 0x00, 0x04, 0x20, 0x21 or 0x81. */
  status: number;
  /** Response body (no key, no extras, CAS 0). */
  body: Uint8Array;
  /** Close the connection once the answer is written (memcached's protocol errors). */
  close: boolean;
  /**
   * memcached answers while it skips the data (conn_swallow), so the answer
   * is not transmitted at once but with the replies that follow.
   */
  swallow?: boolean;
}

// The bodies are memcached's write_bin_error texts: one table, lib/protocol's.
const enc = new TextEncoder();
const EINVAL = enc.encode(BINARY_STATUS_TEXT[BinaryStatus.EINVAL]);
const UNKNOWN = enc.encode(BINARY_STATUS_TEXT[BinaryStatus.UNKNOWN_COMMAND]);
const AUTH_FAILURE = enc.encode(BINARY_STATUS_TEXT[BinaryStatus.AUTH_ERROR]);

/**
 * Answer SASL opcode `opcode` (0x20..0x22) as memcached does. `session` is
 * the connection's login state, null when serve runs without -S (then
 * memcached answers 0x81 "Unknown command" and the connection stays).
 * Lengths that break the opcode's shape are 0x04 "Invalid arguments" and
 * close; a mechanism name over 32 bytes is 0x04 and the connection stays.
 * (Data too large for memcached's SASL item never gets here: the binary
 * parser answers it, 0x82 "Out of memory".)
 */
/** {@linkcode binarySasl} for a parsed request (its opcode, extras length, key and value). */
export function binarySaslRequest(session: AuthSession | null, req: BinaryRequest): SaslAction {
  return binarySasl(
    session,
    req.opcode,
    req.extlen,
    req.keyBuf.subarray(req.keyStart, req.keyEnd),
    req.buf.subarray(req.dataStart, req.dataEnd),
  );
}

export function binarySasl(
  session: AuthSession | null,
  opcode: number,
  extlen: number,
  key: Uint8Array,
  value: Uint8Array,
): SaslAction {
  const sasl = session !== null && session.authenticator.sasl;
  if (opcode === SaslOpcode.LIST_MECHS) {
    if (extlen !== 0 || key.length !== 0 || value.length !== 0) return invalid(true);
    if (!sasl) return { status: STATUS_UNKNOWN_COMMAND, body: UNKNOWN, close: false };
    return { ...session.listMechanisms(), close: false };
  }
  if (extlen !== 0 || key.length === 0) return invalid(true);
  if (!sasl) return { status: STATUS_UNKNOWN_COMMAND, body: UNKNOWN, close: false };
  if (key.length > SASL_MAX_MECH_LENGTH) return { ...invalid(false), swallow: true };
  const reply = opcode === SaslOpcode.AUTH
    ? session.saslAuth(key, value)
    : session.saslStep(key, value);
  return { ...reply, close: false };
}

function invalid(close: boolean): SaslAction {
  return { status: STATUS_EINVAL, body: EINVAL, close };
}

/**
 * Before login (with -S) a binary opcode other than SASL's and version is
 * refused: answer status 0x20, body "Auth failure.", then close.
 */
export function binaryRefusal(): SaslAction {
  return { status: BinaryStatus.AUTH_ERROR, body: AUTH_FAILURE, close: true };
}
