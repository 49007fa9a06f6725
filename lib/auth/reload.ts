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
 * What reloads `auth`'s auth file and gives its bytes to `loaded`, keeping
 * the users it had when the file became unreadable or malformed; undefined
 * when it has no file.
 */
export function authReloader(
  auth: Authenticator,
  loaded: (bytes: Uint8Array) => void = () => {},
): (() => void) | undefined {
  if (!auth.text) return undefined;
  return () => {
    try {
      const bytes = auth.reload();
      log.info(`memrep: reloaded ${auth.config.authFile}`);
      if (bytes) loaded(bytes);
    } catch (err) {
      log.warn(
        `memrep: ${err instanceof Error ? err.message : err}; keeping the users loaded before`,
      );
    }
  };
}

/** Reload `auth`'s auth file on each SIGHUP (no-op where signals do not exist). */
export function reloadOnHangup(auth: Authenticator): void {
  const reload = authReloader(auth);
  if (!reload) return;
  try {
    Deno.addSignalListener("SIGHUP", reload);
  } catch { /* not on this OS */ }
}
