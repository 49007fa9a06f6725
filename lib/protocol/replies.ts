/**
 * Every fixed reply line memrep sends, in one table, pre-encoded with its
 * "\r\n" so the hot path appends bytes, never strings.
 * @module
 */

import { ascii } from "./bytes.ts";
import { MEMCACHED_VERSION } from "../version.ts";

/**
 * What `version` answers (serve and proxy): exactly memcached's, because
 * clients parse it (npm `memcached` anchors a regex at the end and dies on
 * a suffix). memrep's own version is in `stats` as `memrep_version`.
 */
export const PROTOCOL_VERSION: string = MEMCACHED_VERSION;

/** What binary `version` answers: exactly memcached's (binary clients parse it). */
export const BINARY_PROTOCOL_VERSION: string = MEMCACHED_VERSION;

/** The reply texts (without line ending), named after their meaning. */
export const REPLY_TEXT = {
  STORED: "STORED",
  NOT_STORED: "NOT_STORED",
  EXISTS: "EXISTS",
  NOT_FOUND: "NOT_FOUND",
  DELETED: "DELETED",
  TOUCHED: "TOUCHED",
  OK: "OK",
  END: "END",
  RESET: "RESET",
  ERROR: "ERROR",
  HD: "HD",
  NS: "NS",
  EX: "EX",
  NF: "NF",
  EN: "EN",
  MN: "MN",
  BAD_FORMAT: "CLIENT_ERROR bad command line format",
  BAD_CHUNK: "CLIENT_ERROR bad data chunk",
  BAD_EXPTIME: "CLIENT_ERROR invalid exptime argument",
  BAD_DELTA: "CLIENT_ERROR invalid numeric delta argument",
  NON_NUMERIC: "CLIENT_ERROR cannot increment or decrement non-numeric value",
  DELETE_USAGE: "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
  TOO_LARGE: "SERVER_ERROR object too large for cache",
  NO_MEMORY: "SERVER_ERROR out of memory storing object",
  OUT_OF_MEMORY: "SERVER_ERROR out of memory",
  VIVIFY_NO_MEMORY: "SERVER_ERROR Out of memory allocating new item",
  META_DUPLICATE: "CLIENT_ERROR duplicate flag",
  META_INVALID_FLAG: "CLIENT_ERROR invalid flag",
  META_BAD_TOKEN: "CLIENT_ERROR bad token in command line format",
  META_BAD_KEY: "CLIENT_ERROR error decoding key",
  META_BAD_M: "CLIENT_ERROR incorrect length for M token",
  META_BAD_INITIAL: "CLIENT_ERROR invalid numeric initial value",
  META_BAD_DELTA: "CLIENT_ERROR invalid numeric delta value",
  META_MG_TOO_LONG: "CLIENT_ERROR options flags are too long",
  META_TOO_LONG: "CLIENT_ERROR options flags too long",
  META_INVALID_OR_DUP: "CLIENT_ERROR invalid or duplicate flag",
  META_OPAQUE_TOO_LONG: "CLIENT_ERROR opaque token too long",
  MS_BAD_MODE: "CLIENT_ERROR invalid mode for ms M token",
  MA_BAD_MODE: "CLIENT_ERROR invalid mode for ma M token",
  SHUTDOWN_DISABLED: "ERROR: shutdown not enabled",
  FLUSH_DISABLED: "CLIENT_ERROR flush_all not allowed",
  SHUTDOWN_BAD_MODE: "CLIENT_ERROR invalid shutdown mode",
  BAD_STATS: "CLIENT_ERROR bad command line",
  DETAIL_USAGE: "CLIENT_ERROR usage: stats detail on|off|dump",
  BAD_SLAB_ID: "CLIENT_ERROR Illegal slab id",
  BAD_CLASS: "BADCLASS invalid class id",
  NOT_STARTED: "NOTSTARTED no items to crawl",
  NOT_SUPPORTED: "SERVER_ERROR not supported",
  NO_BACKEND: "SERVER_ERROR no backend available",
  BACKEND_ERROR: "SERVER_ERROR backend error",
  READ_ONLY_COPYING: "SERVER_ERROR full copy in progress",
  REPL_PEER_UNAVAILABLE: "SERVER_ERROR replication peer unavailable",
  AUTH_REQUIRED: "CLIENT_ERROR unauthenticated",
  AUTH_FAILURE: "CLIENT_ERROR authentication failure",
  AUTH_BAD_TOKEN: "CLIENT_ERROR bad authentication token format",
  BAD_TERMINATION: "CLIENT_ERROR bad command line termination",
} as const;

/** Name of a reply in {@linkcode REPLY_TEXT}. */
export type ReplyName = keyof typeof REPLY_TEXT;

/** The same table, each entry encoded with its "\r\n". */
export const REPLY: Record<ReplyName, Uint8Array> = Object.fromEntries(
  Object.entries(REPLY_TEXT).map(([name, text]) => [name, ascii(text + "\r\n")]),
) as Record<ReplyName, Uint8Array>;
