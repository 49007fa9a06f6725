/**
 * The one logger: -v shows events (replication, backend health), -vv adds
 * detail. Lines go to stderr as plain text so they read like repcached's,
 * or to a file (`memrep proxy -c … -o file`, nutcracker's log file).
 * @module
 */

/** Log levels: 0 = warnings and errors only, 1 = -v, 2 = -vv. */
export const log = {
  /** Current level. */
  level: 0,
  /** Writes one line: to stderr unless replaced. */
  write(message: string): void {
    console.error(message);
  },
  /** An event shown with -v. */
  info(message: string): void {
    if (log.level >= 1) log.write(message);
  },
  /** Detail shown with -vv. */
  debug(message: string): void {
    if (log.level >= 2) log.write(message);
  },
  /** Always shown. */
  warn(message: string): void {
    log.write(message);
  },
};
