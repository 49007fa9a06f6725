/**
 * memcached reloads its `-Y` auth file on SIGHUP; so does serve's main
 * thread, which hands what it read to the other threads. A file that became
 * unreadable or malformed is reported and the users loaded before stay in
 * force.
 * @module
 */

import { log } from "../log.ts";
import type { Authenticator } from "./authenticator.ts";

/**
 * Reload `auth`'s auth file on each SIGHUP (no-op where signals do not
 * exist), then give its bytes to `loaded`.
 */
export function reloadOnHangup(
  auth: Authenticator,
  loaded: (bytes: Uint8Array) => void = () => {},
): void {
  if (!auth.text) return;
  try {
    Deno.addSignalListener("SIGHUP", () => {
      try {
        const bytes = auth.reload();
        log.info(`memrep: reloaded ${auth.config.authFile}`);
        if (bytes) loaded(bytes);
      } catch (err) {
        log.warn(
          `memrep: ${err instanceof Error ? err.message : err}; keeping the users loaded before`,
        );
      }
    });
  } catch { /* not on this OS */ }
}
