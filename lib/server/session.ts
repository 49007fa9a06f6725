/**
 * What a connection and the engine share: the per-connection state commands
 * read and set, and what the connection does after a command.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";
import type { AuthSession } from "../auth/mod.ts";
import type { Watcher } from "./watch.ts";

/** What the connection does after a command. */
export const Action = {
  /** Keep reading. */
  CONTINUE: 0,
  /** Send what is queued, then close (quit). */
  CLOSE: 1,
  /** Close now and stop the server (shutdown). */
  SHUTDOWN: 2,
} as const;

/** Per-connection state the engine needs. */
export interface Session {
  /**
   * A reply still being produced (metadump, `stats conns` over threads):
   * appends its next part and returns true once it is complete, or a
   * promise to wait for (outside the cache lock) before the next call. The
   * connection calls it until then.
   */
  more: ((out: Writer) => boolean | Promise<void>) | null;
  /**
   * Login state when the server requires authentication (-Y / -S), else
   * null. Until it is authenticated the connection only reads logins.
   */
  auth?: AuthSession | null;
  /** Clock seconds of the last request read (`stats conns`, idle_timeout). */
  lastCmd?: number;
  /** Set by `watch`: the connection then only receives these log lines. */
  watcher?: Watcher | null;
  /** True while a request waits for the rest of its data (`stats conns`: conn_nread). */
  nread?: boolean;
  /** Its `stats conns` id, also `cfd` in `watch` lines (memcached's fd); 0 until registered. */
  id?: number;
  /** The server closes it for a protocol error (watch's conn_close `reason=error`). */
  error?: boolean;
}
