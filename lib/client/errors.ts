/**
 * Errors raised by the client; every message names the server.
 * @module
 */

import type { Reply } from "./reply.ts";

/** Why a connection failed. */
export type ClientErrorCode = "connect" | "timeout" | "closed" | "protocol" | "auth";

/**
 * The connection failed: could not connect, a request timed out, the
 * server closed it, a reply was unparseable, or the login was refused. The client is closed and all
 * outstanding requests reject with this error.
 */
export class ClientError extends Error {
  /** What went wrong. */
  readonly code: ClientErrorCode;
  /** `host:port` of the server. */
  readonly server: string;

  /** Builds the error; the message is prefixed with the server. */
  constructor(code: ClientErrorCode, server: string, message: string, options?: ErrorOptions) {
    super(`${server}: ${message}`, options);
    this.name = "ClientError";
    this.code = code;
    this.server = server;
  }
}

/**
 * The server answered a convenience call with ERROR, CLIENT_ERROR or
 * SERVER_ERROR (the connection stays usable).
 */
export class ReplyError extends Error {
  /** The reply. */
  readonly reply: Reply;
  /** `host:port` of the server. */
  readonly server: string;

  /** Builds the error from the reply's first line. */
  constructor(server: string, reply: Reply) {
    super(`${server}: ${reply.line}`);
    this.name = "ReplyError";
    this.reply = reply;
    this.server = server;
  }
}

/**
 * An error's message without the `host:port: ` prefix a {@linkcode ClientError}
 * or {@linkcode ReplyError} carries.
 */
export function errorDetail(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (err instanceof ClientError || err instanceof ReplyError) &&
      text.startsWith(err.server + ": ")
    ? text.slice(err.server.length + 2)
    : text;
}
