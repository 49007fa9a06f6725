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
