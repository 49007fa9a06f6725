/**
 * The one logger: -v shows events (replication, backend health), -vv adds
 * detail. Lines go to stderr as plain text so they read like repcached's.
 * @module
 */

/** Log levels: 0 = warnings and errors only, 1 = -v, 2 = -vv. */
export const log = {
  /** Current level. */
  level: 0,
  /** An event shown with -v. */
  info(message: string): void {
    if (log.level >= 1) console.error(message);
  },
  /** Detail shown with -vv. */
  debug(message: string): void {
    if (log.level >= 2) console.error(message);
  },
  /** Always shown. */
  warn(message: string): void {
    console.error(message);
  },
};
