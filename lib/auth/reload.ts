/**
 * memcached reloads its `-Y` auth file on SIGHUP; so does every serve
 * thread. A file that became unreadable or malformed is reported and the
 * users loaded before stay in force.
 * @module
 */

import { log } from "../log.ts";
import type { Authenticator } from "./authenticator.ts";

/** Reload `auth`'s auth file on each SIGHUP (no-op where signals do not exist). */
export function reloadOnHangup(auth: Authenticator): void {
  if (!auth.text) return;
  try {
    Deno.addSignalListener("SIGHUP", () => {
      try {
        auth.reload();
        log.info(`memrep: reloaded ${auth.config.authFile}`);
      } catch (err) {
        log.warn(
          `memrep: ${err instanceof Error ? err.message : err}; keeping the users loaded before`,
        );
      }
    });
  } catch { /* not on this OS */ }
}
