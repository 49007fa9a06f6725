/**
 * memrep's own version, in a module of its own so that any command can name
 * it without importing the command line's entry point.
 * @module
 */

/** memrep's own version. */
export const MEMREP_VERSION = "0.1.0";
