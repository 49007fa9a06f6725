/**
 * memrep's own version, at the bottom of the layers so the server (stats),
 * the proxy and the command line all report the same one.
 * @module
 */

/** memrep's release version (`memrep --version`, `STAT memrep_version`). */
export const MEMREP_VERSION = "0.1.0";
