/**
 * Errors shared by every layer: a configuration the user must fix.
 * Below the cli so replication and proxy can raise it; the cli prints it
 * and exits with code 2.
 * @module
 */

/** A user mistake on the command line or in a config (exit code 2). */
export class UsageError extends Error {
  /** Create a usage error with a message for the user. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * A refusal of one of memcached's own flags, worded as memcached words it:
 * `memrep serve` prints it as is (its stderr is memcached's); every other
 * usage error is printed after `memrep <command>: `.
 */
export class MemcachedUsageError extends UsageError {
  /** Create the error with memcached's message. */
  constructor(message: string) {
    super(message);
    this.name = "MemcachedUsageError";
  }
}
